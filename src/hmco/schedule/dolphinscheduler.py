"""The job catalogue as Apache DolphinScheduler workflows, built with its official Python API.

Each :class:`~hmco.schedule.catalogue.Job` becomes one workflow (``pydolphinscheduler.core.workflow.Workflow``)
holding one ``Shell`` task that runs ``hmco schedule run <job>``, on the job's Quartz schedule and time zone,
with its retries and timeout. The definitions are built and exported offline (no server): task codes are
derived from the names instead of asked from the Java gateway, and :func:`write_workflows` writes the YAML
that DolphinScheduler's own ``pydolphinscheduler yaml -f FILE`` submits. :func:`submit` needs a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shlex
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from hmco.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from pydolphinscheduler.core.workflow import Workflow

    from hmco.schedule.catalogue import Catalogue, Job

__all__ = ["definitions", "export_workflows", "submit", "task_code", "workflow_yaml", "write_workflows"]

#: What a task does when it runs past its timeout (DolphinScheduler's ``TaskTimeoutStrategy``).
TIMEOUT_STRATEGY = "FAILED"
_CODE_SPACE = 2**53 - 1  # task codes stay exact in the web UI's JavaScript numbers
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Strings the ``pydolphinscheduler yaml`` loader rewrites ($ENV{..}, $FILE{..}, ${CONFIG..}, $WORKFLOW{..}).
_YAML_TOKENS = re.compile(r"\$ENV\{|\$FILE\{|\$\{CONFIG\.|\$WORKFLOW\{")


@contextlib.contextmanager
def _quiet_gateway_probe() -> Iterator[None]:
    """Silence what importing pydolphinscheduler emits when no gateway listens (py4j's ERROR, the
    default-token warning, the "version unknown" warning) and keep its ``logging.basicConfig()`` from
    configuring the host application's root logger."""
    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    quiet = [logging.getLogger("py4j"), logging.getLogger("pydolphinscheduler.configuration")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"Using unmatched version.*version unknown", category=UserWarning
            )
            yield
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
        if placeholder is not None:
            root.removeHandler(placeholder)


@cache
def _pyds() -> tuple[Any, Any]:
    """The ``Workflow`` and ``Shell`` classes, imported on first use (the import probes the gateway)."""
    try:
        with _quiet_gateway_probe():
            from pydolphinscheduler.core.workflow import Workflow
            from pydolphinscheduler.tasks.shell import Shell
    except ImportError as exc:
        raise MissingDependency(
            "pydolphinscheduler is needed to export DolphinScheduler workflows but is not installed: "
            f"pip install 'hmco[dolphinscheduler]' ({exc})"
        ) from None
    return Workflow, Shell


@cache
def _offline_shell() -> Any:
    """``Shell`` whose code comes from :func:`task_code` instead of the gateway's ``getCodeAndVersion``."""
    _, shell = _pyds()

    class OfflineShell(shell):  # type: ignore[misc, valid-type]
        """A ``Shell`` task whose code is derived from its project, workflow and task names."""

        def gen_code_and_version(self) -> tuple[int, int]:
            return task_code(self.workflow._project, self.workflow.name, self.name), 1

    return OfflineShell


def task_code(project: str, workflow: str, task: str) -> int:
    """A stable task code for ``task`` of ``workflow`` in ``project``, in DolphinScheduler's code range.

    The same names give the same code on every export, so re-submitting updates the task in place.
    """
    digest = hashlib.sha256(f"{project}\0{workflow}\0{task}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _CODE_SPACE + 1


def _minutes(delta: timedelta) -> int:
    """Whole minutes, rounded up and at least 1: DolphinScheduler's retry interval and timeout unit."""
    return max(1, ceil(delta.total_seconds() / 60))


def _script(job: Job, environment: Mapping[str, str] | None, command_prefix: str | None) -> str:
    """The task's shell script: ``export`` lines for ``environment``, then the (prefixed) job command."""
    lines = []
    for key, value in (environment or {}).items():
        if not _ENV_NAME.fullmatch(key):
            raise ConfigError(f"environment variable name {key!r} is not a valid shell name")
        lines.append(f"export {key}={shlex.quote(value)}")
    command = shlex.join(job.command)
    lines.append(f"{command_prefix.strip()} {command}" if command_prefix else command)
    script = "\n".join(lines)
    if _YAML_TOKENS.search(script):
        raise ConfigError(
            "the task script contains a token the pydolphinscheduler YAML loader would rewrite "
            f"($ENV{{, $FILE{{, ${{CONFIG., $WORKFLOW{{): {script!r}"
        )
    return script


def export_workflows(
    catalogue: Catalogue | Iterable[Job],
    *,
    project: str = "hmco",
    user: str | None = None,
    worker_group: str = "default",
    warning_type: str = "NONE",
    execution_type: str = "SERIAL_DISCARD",
    release_state: Literal["online", "offline"] = "online",
    start_time: datetime | str | None = None,
    environment: Mapping[str, str] | None = None,
    command_prefix: str | None = None,
    codes: Literal["offline", "gateway"] = "offline",
) -> list[Workflow]:
    """One DolphinScheduler ``Workflow`` per job, each with one ``Shell`` task running the job's command.

    Args:
        catalogue: the jobs (e.g. :func:`~hmco.schedule.catalogue.default_catalogue`).
        project: the DolphinScheduler project the workflows belong to (created on submit if missing).
        user: the DolphinScheduler user submitting them (default: pydolphinscheduler's configuration,
            ``PYDS_WORKFLOW_USER``); the tenant is that user's (``PYDS_USER_TENANT``).
        worker_group: the worker group the tasks run on.
        warning_type: when DolphinScheduler alerts (NONE, FAILURE, SUCCESS, ALL); hmco alerts on its own.
        execution_type: what a run does while the previous one still runs; ``SERIAL_DISCARD`` skips it,
            like ``hmco serve``.
        release_state: ``online`` schedules the workflows as soon as they are submitted.
        start_time: when the schedules start (default: now, when the definition is read or submitted).
        environment: variables ``export``-ed before the command (no secrets: they land in the files).
        command_prefix: shell text before the command, e.g. ``source /opt/hmco/bin/activate &&``.
        codes: ``offline`` derives task codes with :func:`task_code` (no server needed); ``gateway`` asks
            the Java gateway for them, as pydolphinscheduler does by default.
    """
    workflow_cls, shell_cls = _pyds()
    task_cls = _offline_shell() if codes == "offline" else shell_cls
    options: dict[str, Any] = {"user": user} if user is not None else {}
    workflows = []
    for job in catalogue:
        script = _script(job, environment, command_prefix)
        with workflow_cls(
            name=job.name,
            description=job.description or None,
            schedule=job.cron.quartz(),
            online_schedule=release_state == "online",
            start_time=start_time,
            timezone=job.cron.timezone,
            project=project,
            worker_group=worker_group,
            warning_type=warning_type,
            execution_type=execution_type,
            release_state=release_state,
            **options,
        ) as workflow:
            task_cls(
                name=job.name,
                command=script,
                description=job.description or None,
                worker_group=worker_group,
                fail_retry_times=job.retries,
                fail_retry_interval=_minutes(job.retry_delay),
                timeout=_minutes(job.timeout),
                timeout_notify_strategy=TIMEOUT_STRATEGY,
            )
        workflows.append(workflow)
    return workflows


def definitions(workflows: Sequence[Workflow]) -> list[dict[str, Any]]:
    """Each workflow as the plain data pydolphinscheduler sends the gateway (``get_define()`` + schedule)."""
    out = []
    for workflow in workflows:
        define = {k: v for k, v in workflow.get_define().items() if k != "tasks"}  # "tasks" holds objects
        define["schedule"] = workflow.schedule_json
        define["onlineSchedule"] = workflow.online_schedule
        out.append(json.loads(json.dumps(define, default=str)))
    return out


def workflow_yaml(workflow: Workflow) -> dict[str, Any]:
    """The workflow in the YAML layout ``pydolphinscheduler yaml -f FILE`` loads and submits."""
    spec: dict[str, Any] = {
        "name": workflow.name,
        "description": workflow.description,
        "project": workflow.project.name,
        "user": workflow.user.name,
        "schedule": workflow.schedule,
        "timezone": workflow.timezone,
        "online_schedule": workflow.online_schedule,
        "release_state": "online" if workflow.release_state == 1 else "offline",
        "worker_group": workflow.worker_group,
        "warning_type": workflow.warning_type,
        "execution_type": workflow.execution_type,
    }
    if workflow.start_time is not None:
        spec["start_time"] = workflow.start_time.strftime("%Y-%m-%d %H:%M:%S")
    names = {task.code: task.name for task in workflow.task_list}
    tasks = []
    for task in workflow.task_list:
        if task.task_type != "SHELL":
            raise ConfigError(f"task {task.name!r} is {task.task_type}: only shell tasks are exported")
        deps = [
            names[r["preTaskCode"]]
            for r in workflow.task_relation_json
            if r["postTaskCode"] == task.code and r["preTaskCode"] in names  # code 0 marks a root task
        ]
        entry = {
            "name": task.name,
            "task_type": "Shell",
            "command": task.raw_script,
            "description": task.description,
            "worker_group": task.worker_group,
            "fail_retry_times": task.fail_retry_times,
            "fail_retry_interval": task.fail_retry_interval,
            "timeout": task.timeout,
            "timeout_notify_strategy": task.timeout_notify_strategy,
        }
        tasks.append({**entry, "deps": deps} if deps else entry)
    return {"workflow": {k: v for k, v in spec.items() if v is not None}, "tasks": tasks}


def write_workflows(
    workflows: Sequence[Workflow], directory: str | Path, *, fmt: Literal["yaml", "json"] = "yaml"
) -> list[Path]:
    """Write one file per workflow into ``directory``: ``<name>.yaml`` for ``pydolphinscheduler yaml -f``,
    or ``<name>.json`` holding :func:`definitions` (with task codes). Returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for workflow, define in zip(workflows, definitions(workflows), strict=True):
        path = out / f"{workflow.name}.{fmt}"
        if fmt == "yaml":
            text = yaml.safe_dump(workflow_yaml(workflow), sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(define, indent=2, sort_keys=True) + "\n"
        path.write_text(text)
        paths.append(path)
    return paths


def submit(workflows: Iterable[Workflow]) -> list[int]:
    """Create or update each workflow on a DolphinScheduler server (``Workflow.submit()``); returns codes.

    Needs a running DolphinScheduler (3.2.x) Python gateway at ``PYDS_JAVA_GATEWAY_ADDRESS``/``_PORT`` with
    ``PYDS_JAVA_GATEWAY_AUTH_TOKEN``; it creates the user and project if missing. Untested here: no server.
    """
    return [workflow.submit() for workflow in workflows]
