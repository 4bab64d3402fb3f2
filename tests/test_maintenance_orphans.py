"""Orphan files: what a crashed writer left is listed with sizes, removed past the horizon, never a live file."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.files import list_files, normalize_path, referenced_files
from hmco.maintenance.orphans import remove_orphan_files
from hmco.sources.synthetic import synthetic_lmp
from tests.support.maintenance import (
    crash_files,
    duck_rows,
    exists,
    head,
    poll_window,
    settings_json,
    size,
    write_polls,
)

ROOT = Path(__file__).resolve().parent.parent


def _later() -> datetime:
    """A "now" past the default 3-day horizon for files written during the test."""
    return datetime.now(UTC) + timedelta(days=4)


def test_dry_run_lists_a_crashed_writers_files_with_their_sizes(lake: Lake) -> None:
    write_polls(lake, 3)
    tbl = lake.table("rt_lmp")
    crashed = crash_files(tbl, 3)
    expected = {normalize_path(p): size(tbl, p) for p in crashed}

    report = remove_orphan_files(tbl, dry_run=True, now=_later())

    assert report.ok and report.dry_run
    assert {normalize_path(d["path"]): d["bytes"] for d in report.details} == expected
    assert (report.removed_files, report.removed_bytes) == (3, sum(expected.values()))
    assert all(datetime.fromisoformat(d["modified"]) <= datetime.now(UTC) for d in report.details)
    assert all(exists(tbl, p) for p in crashed)  # a dry run deletes nothing


def test_orphans_are_removed_and_referenced_files_never(lake: Lake) -> None:
    write_polls(lake, 3)
    write_polls(lake, [0], batch="revision")  # a replaced file: unreferenced by the current snapshot only
    tbl = lake.table("rt_lmp")
    crashed = crash_files(tbl, 2)
    rows = duck_rows(lake)
    referenced = referenced_files(tbl)

    report = remove_orphan_files(tbl, now=_later())

    assert report.ok and report.removed_files == 2
    assert not any(exists(tbl, p) for p in crashed)
    assert {f.path for f in list_files(tbl)} == referenced  # every referenced file is still there
    assert duck_rows(lake).equals(rows)
    assert remove_orphan_files(tbl, now=_later()).removed_files == 0


def test_the_horizon_protects_young_orphans(lake: Lake) -> None:
    write_polls(lake, 2)
    tbl = lake.table("rt_lmp")
    crashed = crash_files(tbl, 2)
    written = datetime.now(UTC)

    young = remove_orphan_files(tbl, now=written + timedelta(days=1))  # still inside the 3-day horizon
    assert young.ok and young.removed_files == 0 and young.details == []
    assert all(exists(tbl, p) for p in crashed)

    custom = remove_orphan_files(tbl, older_than=timedelta(hours=1), now=written + timedelta(hours=2))
    assert custom.removed_files == 2
    assert not any(exists(tbl, p) for p in crashed)


def test_only_the_orphans_older_than_the_horizon_go(settings: Settings) -> None:
    lake = Lake(settings)
    lake.create_tiers()
    write_polls(lake, 2)
    tbl = lake.table("rt_lmp")
    old, young = crash_files(tbl, 2)
    aged = (datetime.now(UTC) - timedelta(days=5)).timestamp()
    os.utime(normalize_path(old), (aged, aged))  # written five days ago (local files: mtime can be set)

    report = remove_orphan_files(tbl)  # the real clock, the default 3-day horizon

    assert [normalize_path(d["path"]) for d in report.details] == [normalize_path(old)]
    assert not exists(tbl, old) and exists(tbl, young)


def test_a_sweep_killed_mid_removal_leaves_the_table_readable_and_the_next_sweep_finishes(lake: Lake) -> None:
    write_polls(lake, 3)
    tbl = lake.table("rt_lmp")
    crashed = crash_files(tbl, 24)
    rows = duck_rows(lake)
    now = _later()

    run = subprocess.run(
        [sys.executable, "-m", "tests.support.maintenance", "sweep-and-die", "3", now.isoformat()],
        input=settings_json(lake.settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == -9, run.stderr  # SIGKILL, in the middle of deleting
    left = [p for p in crashed if exists(tbl, p)]
    assert 0 < len(left) < len(crashed)
    assert duck_rows(lake).equals(rows)  # readable, the same rows

    report = remove_orphan_files(lake.table("rt_lmp"), now=now)

    assert report.ok and report.removed_files == len(left)
    assert not any(exists(tbl, p) for p in crashed)
    assert {f.path for f in list_files(tbl)} == referenced_files(tbl)
    assert duck_rows(lake).equals(rows)


def test_files_only_a_branch_references_are_never_orphans(lake: Lake) -> None:
    write_polls(lake, 2)
    tbl = lake.table("rt_lmp")
    tbl.manage_snapshots().create_branch(head(tbl).snapshot_id, "audit").commit()
    tbl.append(synthetic_lmp(poll_window(50), nodes=2), branch="audit")  # data only the branch reads
    audit = tbl.refs()["audit"].snapshot_id
    branch_only = set(tbl.inspect.data_files(snapshot_id=audit).column("file_path").to_pylist()) - set(
        tbl.inspect.data_files().column("file_path").to_pylist()
    )
    assert len(branch_only) == 1
    crashed = crash_files(tbl, 2)

    report = remove_orphan_files(tbl, now=_later())

    assert report.ok and report.removed_files == 2
    assert not any(exists(tbl, p) for p in crashed)
    assert all(exists(tbl, p) for p in branch_only)
    assert duck_rows(lake, audit).num_rows == 3 * 2 and duck_rows(lake).num_rows == 2 * 2
