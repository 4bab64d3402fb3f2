"""Running the platform: the job catalogue, the job runner, ``hmco serve`` and scheduler exports.

:func:`default_catalogue` holds every scheduled job (the seven shipped pipelines, upkeep, backups, the
freshness watch); :class:`JobRunner` runs one under its lease; :class:`Serve` runs them all on their
cron triggers with Prometheus ``/metrics``; :mod:`hmco.schedule.dolphinscheduler` exports them as
DolphinScheduler workflows.
"""

from hmco.schedule.catalogue import Catalogue, Job, default_catalogue, shipped_specs
from hmco.schedule.runner import JobResult, JobRunner
from hmco.schedule.serve import Serve

__all__ = ["Catalogue", "Job", "JobResult", "JobRunner", "Serve", "default_catalogue", "shipped_specs"]
