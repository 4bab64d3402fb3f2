"""Freshness that cannot pass by accident: an empty lake, a missing table, an unreachable store all fail
(exit 1, one line each); each job's spec SLA drives its verdict; ``--notify`` posts to a webhook."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from hmco.cli import main
from hmco.config import Settings
from hmco.lake import Lake
from hmco.quality.freshness import FreshnessReport, catalogue_freshness
from hmco.schedule.catalogue import default_catalogue
from hmco.schemas import TS, conform
from tests.support.webhook import TOKEN, WebhookReceiver

NOW = "2026-11-26T12:00:00Z"
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HMCO_HOME", str(settings.home))
    monkeypatch.setenv("HMCO_CLICKHOUSE__PATH", str(settings.clickhouse.path))
    monkeypatch.setenv("HMCO_CLICKHOUSE__DATABASE", settings.clickhouse.database)
    return settings


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _noaa_until(lake: Lake, hour: int) -> None:
    """noaa_observations in the lake, newest hour ``hour`` of 2026-11-26 (current to ``hour + 1``)."""
    ts = [datetime(2026, 11, 26, h, tzinfo=UTC) for h in range(hour - 2, hour + 1)]
    rows = pa.table({"ts": pa.array(ts, TS), "station": ["KNYC"] * 3, "temperature_c": [3.5] * 3})
    table = lake.table("noaa_observations")
    table.append(conform(rows, "noaa_observations").cast(table.schema().as_arrow()))


@pytest.fixture
def tight(tmp_path: Path) -> Path:
    """A spec override holding the NOAA job to 10 minutes (sla 5m + lag 5m) instead of 1 hour."""
    overrides = tmp_path / "specs"
    overrides.mkdir()
    (overrides / "noaa.yaml").write_text("name: noaa-observations-hourly\nsla: 5m\nlag: 5m\n")
    return overrides


def test_an_empty_lake_exits_1_naming_every_missing_table(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["freshness", "--now", NOW]) == 1
    out, err = capsys.readouterr()
    jobs = default_catalogue().ingestion
    lines = err.strip().splitlines()
    assert len(lines) == len(jobs)
    assert all("missing: no table hub_curated." in line for line in lines)
    assert "hmco: freshness: rt_lmp (hub_curated.rt_lmp) [job caiso-rt-lmp]: missing" in err
    assert out.count("missing") == len(jobs)


def test_a_missing_table_fails_even_when_others_are_fresh(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _noaa_until(Lake(env), 10)
    assert main(["freshness", "noaa_observations", "--now", NOW]) == 0
    assert main(["freshness", "noaa_observations", "eia_daily_fuel", "--now", NOW]) == 1
    err = capsys.readouterr().err
    assert "eia_daily_fuel (hub_curated.eia_daily_fuel) [job eia-daily-fuel]: missing" in err
    assert "noaa" not in err


def test_an_empty_table_fails_with_its_reason(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    Lake(env).table("noaa_observations")  # created, never written
    assert main(["freshness", "noaa-observations-hourly", "--now", NOW]) == 1
    assert "empty: table hub_curated.noaa_observations has no rows" in capsys.readouterr().err


def test_a_report_that_checked_nothing_is_a_failure() -> None:
    report = FreshnessReport.of([])
    assert not report.ok and report.exit_code == 1
    assert report.problems == ["no datasets were checked: nothing proves the data is fresh"]


def test_an_unreachable_catalog_exits_1_with_a_clear_line(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("HMCO_CATALOG__TYPE", "sql")
    monkeypatch.setenv("HMCO_CATALOG__URI", f"postgresql+psycopg2://hmco:pw-s3cret@127.0.0.1:{port}/cat")
    assert main(["freshness", "noaa_observations", "--now", NOW]) == 1
    out, err = capsys.readouterr()
    [line] = err.strip().splitlines()
    assert line.startswith(
        "hmco: freshness: noaa_observations (hub_curated.noaa_observations) [job noaa-observations-hourly]: "
        "unreachable: cannot open the catalog: cannot open the sql Iceberg catalog"
    )
    assert f"port {port} failed: Connection refused" in line
    assert "pw-s3cret" not in out + err
    assert "unreachable" in out


def test_an_unreachable_object_store_is_not_reported_as_a_missing_table(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HMCO_S3__ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("HMCO_S3__ACCESS_KEY_ID", "hmco-test-key")
    monkeypatch.setenv("HMCO_S3__SECRET_ACCESS_KEY", "hmco-test-secret")
    assert main(["freshness", "noaa_observations", "--now", NOW]) == 1
    err = capsys.readouterr().err
    assert "unreachable: cannot reach the object store (bucket hmco-curated)" in err
    assert "Could not connect" in err or "connect" in err.lower()


def test_the_spec_sla_drives_the_verdict(
    env: Settings, tight: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = Lake(env)
    _noaa_until(lake, 10)  # current to 11:00: 1h old at noon, the shipped spec allows sla 20m + lag 40m
    shipped = catalogue_freshness(lake, default_catalogue().only(["noaa-observations-hourly"]), now=AT)
    [status] = shipped.statuses
    assert (status.status, status.age, status.sla, status.lag) == (
        "fresh",
        timedelta(hours=1),
        timedelta(minutes=20),
        timedelta(minutes=40),
    )
    assert status.job == "noaa-observations-hourly"
    assert status.runbook == "hmco schedule run noaa-observations-hourly"
    tight_jobs = default_catalogue(tight).only(["noaa-observations-hourly"])
    [tighter] = catalogue_freshness(lake, tight_jobs, now=AT).statuses
    assert (tighter.status, tighter.sla + tighter.lag) == ("stale", timedelta(minutes=10))

    assert main(["freshness", "noaa_observations", "--now", NOW]) == 0
    assert main(["freshness", "noaa_observations", "--now", NOW, "--specs", str(tight)]) == 1
    assert "stale: 1.0h old (newest 2026-11-26 10:00:00Z), allowed 10m00s" in capsys.readouterr().err


def test_realtime_jobs_get_clickhouse_checks_that_fail_closed(env: Settings) -> None:
    from hmco.clickhouse import connect_clickhouse, ensure_schema, layout_from_settings

    client = connect_clickhouse(env)
    ensure_schema(client, layout_from_settings(env))
    lake = Lake(env)
    report = catalogue_freshness(lake, default_catalogue().of_kind("realtime"), now=AT, clickhouse=client)
    by_target = {(s.job, s.target): s for s in report.statuses}
    caiso = by_target[("caiso-rt-lmp", "rt_lmp iso=CAISO")]
    assert (caiso.status, caiso.reason) == ("empty", "ClickHouse table rt_lmp has no rows for CAISO")
    assert by_target[("spp-rt-lmp", "hub_curated.rt_lmp")].status == "missing"
    assert len(report.statuses) == 6

    def refuse() -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    down = catalogue_freshness(lake, default_catalogue().of_kind("realtime"), now=AT, clickhouse=refuse)
    [ch] = [s for s in down.statuses if s.job == "miso-rt-lmp" and s.origin == "clickhouse"]
    assert (ch.status, ch.target) == ("unreachable", "rt_lmp iso=MISO")
    assert ch.reason == "cannot connect to ClickHouse: ConnectionRefusedError: [Errno 111] Connection refused"


def test_notify_posts_breaches_and_recoveries_once_each(
    env: Settings,
    tight: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HMCO_ALERTS__WEBHOOK_URL", receiver.url)
    _noaa_until(Lake(env), 10)
    args = ["freshness", "noaa_observations", "--now", NOW, "--notify"]
    assert main([*args, "--specs", str(tight)]) == 1
    assert main([*args, "--specs", str(tight)]) == 1  # the same breach: not posted again
    [breach] = receiver.received
    assert breach["text"].startswith(
        ":red_circle: Freshness breach: noaa_observations (hub_curated.noaa_observations) is stale"
    )
    assert "1.0h old" in breach["text"] and "allowed 10m00s (sla 5m00s + lag 5m00s)" in breach["text"]
    assert "Runbook: `hmco schedule run noaa-observations-hourly`" in breach["text"]

    assert main(args) == 0  # under the shipped spec it is fresh: the breach recovers
    assert len(receiver.received) == 2
    assert receiver.received[1]["text"].startswith(":large_green_circle: Freshness recovered")
    err = capsys.readouterr().err
    assert "posted breach alert for noaa_observations" in err and "posted recovery alert" in err
    assert TOKEN not in err


def test_notify_without_a_webhook_is_a_config_error(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["freshness", "--notify"]) == 2
    assert "HMCO_ALERTS__WEBHOOK_URL" in capsys.readouterr().err
