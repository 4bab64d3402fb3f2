"""The DolphinScheduler export: one workflow per catalogue job, built with pydolphinscheduler, offline."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hmco.errors import ConfigError, MissingDependency
from hmco.schedule import dolphinscheduler as ds
from hmco.schedule.catalogue import Catalogue, default_catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


@pytest.fixture(scope="module")
def defines(catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in ds.definitions(ds.export_workflows(catalogue))}


def _task(define: dict[str, Any]) -> dict[str, Any]:
    (task,) = define["taskDefinitionJson"]
    return task


def test_one_workflow_per_job_with_its_schedule(
    catalogue: Catalogue, defines: dict[str, dict[str, Any]]
) -> None:
    assert list(defines) == [job.name for job in catalogue]
    for job in catalogue:
        define = defines[job.name]
        assert define["project"] == "hmco"
        assert define["releaseState"] == 1  # online
        assert define["onlineSchedule"] is True
        assert define["executionType"] == "SERIAL_DISCARD"
        assert define["schedule"]["crontab"] == job.cron.quartz()
        assert define["schedule"]["timezoneId"] == job.cron.timezone
        assert len(define["schedule"]["crontab"].split()) == 7


def test_each_workflow_runs_the_job_command_once_with_its_retries_and_timeout(
    catalogue: Catalogue, defines: dict[str, dict[str, Any]]
) -> None:
    for job in catalogue:
        task = _task(defines[job.name])
        assert task["taskType"] == "SHELL"
        assert task["name"] == job.name
        assert task["taskParams"]["rawScript"] == f"hmco schedule run {job.name}"
        assert task["failRetryTimes"] == job.retries
        assert task["failRetryInterval"] == job.retry_delay.total_seconds() / 60
        assert task["timeoutFlag"] == "OPEN"
        assert task["timeoutNotifyStrategy"] == "FAILED"
        assert task["timeout"] == job.timeout.total_seconds() / 60
        assert task["workerGroup"] == "default"
        # the graph: a single root task (DolphinScheduler marks a root by an upstream code of 0)
        (relation,) = defines[job.name]["taskRelationJson"]
        assert (relation["preTaskCode"], relation["postTaskCode"]) == (0, task["code"])


def test_known_values(defines: dict[str, dict[str, Any]]) -> None:
    eia = defines["eia-daily-fuel"]
    assert eia["schedule"]["crontab"] == "0 30 7 * * ? *"
    assert eia["schedule"]["timezoneId"] == "America/New_York"
    assert (_task(eia)["failRetryTimes"], _task(eia)["failRetryInterval"], _task(eia)["timeout"]) == (
        2,
        2,
        360,
    )
    fresh = _task(defines["freshness-watch"])
    assert (fresh["failRetryTimes"], fresh["timeout"]) == (0, 1)
    assert defines["caiso-rt-lmp"]["schedule"]["crontab"] == "0 */5 * * * ? *"


def test_sunday_jobs_use_a_quartz_day_of_week(
    catalogue: Catalogue, defines: dict[str, dict[str, Any]]
) -> None:
    sunday = [*catalogue.of_kind("maintenance"), catalogue.get("backup-clickhouse-full")]
    assert len(sunday) == 6
    for job in sunday:
        assert defines[job.name]["schedule"]["crontab"].endswith(" ? * SUN *"), job.name
    assert defines["iceberg-expire-snapshots"]["schedule"]["crontab"] == "0 0 2 ? * SUN *"


def test_codes_are_stable_and_distinct(catalogue: Catalogue, defines: dict[str, dict[str, Any]]) -> None:
    codes = [_task(d)["code"] for d in defines.values()]
    assert len(set(codes)) == len(codes)
    assert all(0 < c < 2**53 for c in codes)
    again = ds.definitions(ds.export_workflows(catalogue.only(["eia-daily-fuel"])))
    assert _task(again[0])["code"] == _task(defines["eia-daily-fuel"])["code"]
    assert _task(again[0])["code"] == ds.task_code("hmco", "eia-daily-fuel", "eia-daily-fuel")


def test_prefix_environment_and_options(catalogue: Catalogue) -> None:
    (wf,) = ds.export_workflows(
        catalogue.only(["eia-daily-fuel"]),
        project="energy",
        user="etl",
        worker_group="lake",
        release_state="offline",
        start_time=datetime(2026, 1, 1),
        environment={"HMCO_PROFILE": "prod", "NOTE": "it's"},
        command_prefix="source /opt/hmco/bin/activate &&",
    )
    (define,) = ds.definitions([wf])
    assert _task(define)["taskParams"]["rawScript"] == "\n".join(
        [
            "export HMCO_PROFILE=prod",
            "export NOTE='it'\"'\"'s'",  # shlex.quote("it's")
            "source /opt/hmco/bin/activate && hmco schedule run eia-daily-fuel",
        ]
    )
    assert (define["project"], define["workerGroup"], _task(define)["workerGroup"]) == (
        "energy",
        "lake",
        "lake",
    )
    assert (define["releaseState"], define["onlineSchedule"]) == (0, False)
    assert define["schedule"]["startTime"] == "2026-01-01 00:00:00"
    assert wf.user.name == "etl"
    with pytest.raises(ConfigError, match="shell name"):
        ds.export_workflows(catalogue.only(["eia-daily-fuel"]), environment={"BAD-NAME": "x"})
    with pytest.raises(ConfigError, match="YAML loader"):
        ds.export_workflows(catalogue.only(["eia-daily-fuel"]), command_prefix="$ENV{HOME}/bin/activate &&")


def test_written_yaml_round_trips_through_the_pydolphinscheduler_yaml_loader(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pydolphinscheduler yaml -f FILE`` (YamlWorkflow.parse) rebuilds the same definition from each file;
    its submit and the gateway's task codes are stubbed, as pydolphinscheduler's own tests do."""
    from pydolphinscheduler.core.task import Task
    from pydolphinscheduler.core.workflow import Workflow
    from pydolphinscheduler.core.yaml_workflow import YamlWorkflow

    workflows = ds.export_workflows(
        catalogue, start_time="2026-01-01 00:00:00", command_prefix=". /opt/env &&"
    )
    paths = ds.write_workflows(workflows, tmp_path / "out")
    assert [p.name for p in paths] == [f"{job.name}.yaml" for job in catalogue]

    submitted: list[Any] = []
    monkeypatch.setattr(Workflow, "submit", lambda self: submitted.append(self) or 1)
    monkeypatch.setattr(
        Task,
        "gen_code_and_version",
        lambda self: (ds.task_code(self.workflow._project, self.workflow.name, self.name), 1),
    )
    for path in paths:
        YamlWorkflow.parse(str(path))
    assert ds.definitions(submitted) == ds.definitions(workflows)


def test_written_json_round_trips(catalogue: Catalogue, tmp_path: Path) -> None:
    workflows = ds.export_workflows(catalogue, start_time=datetime(2026, 1, 1))
    paths = ds.write_workflows(workflows, tmp_path, fmt="json")
    assert [json.loads(p.read_text()) for p in paths] == ds.definitions(workflows)
    assert {p.suffix for p in paths} == {".json"}


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pyds(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pydolphinscheduler"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    ds._pyds.cache_clear()
    ds._offline_shell.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pyds)
    try:
        with pytest.raises(MissingDependency, match=r"hmco\[dolphinscheduler\]"):
            ds.export_workflows([])
    finally:
        monkeypatch.undo()
        ds._pyds.cache_clear()
        ds._offline_shell.cache_clear()


def test_import_is_quiet_and_does_not_wait_for_a_gateway() -> None:
    """A fresh process builds a workflow without a server: no py4j ERROR, no warning, no stray output."""
    code = (
        "from hmco.cron import Cron; from hmco.schedule.catalogue import Job; "
        "from hmco.schedule.dolphinscheduler import definitions, export_workflows; "
        "job = Job('j', 'pipeline', Cron('0 1 * * 0')); "
        "print(definitions(export_workflows([job]))[0]['schedule']['crontab'])"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert time.perf_counter() - start < 30
    assert done.stdout == "0 0 1 ? * SUN *\n"
    assert done.stderr == ""
