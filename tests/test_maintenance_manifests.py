"""Manifest rewrite: many small manifests become few; the same files and rows; hmco keeps writing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from hmco.config import Settings
from hmco.lake import Lake
from hmco.maintenance.manifests import _producer_class, rewrite_manifests
from tests.support.maintenance import (
    RT,
    duck_count,
    duck_rows,
    head,
    poll_window,
    snapshot_ids,
    write_polls,
)

if TYPE_CHECKING:
    from pyiceberg.table import Table

POLLS = 12


def _data_files(tbl: Table) -> set[str]:
    return set(tbl.inspect.data_files().column("file_path").to_pylist())


def _metadata_dir(tbl: Table) -> set[str]:
    from hmco.maintenance.files import list_files

    return {f.path for f in list_files(tbl) if "/metadata/" in f.path}


def test_many_small_manifests_become_one_with_the_same_files_and_rows(lake: Lake) -> None:
    write_polls(lake, POLLS)
    tbl = lake.table("rt_lmp")
    files, rows = _data_files(tbl), duck_rows(lake)
    assert len(tbl.inspect.manifests()) == POLLS

    report = rewrite_manifests(tbl)

    assert report.ok, report.error
    assert (report.manifests_before, report.manifests_after) == (POLLS, 1)
    assert (report.files_before, report.files_after) == (POLLS, POLLS)
    assert report.details == [
        {"spec_id": 0, "manifests_replaced": POLLS, "manifests_created": 1, "entries": POLLS}
    ]
    tbl = lake.table("rt_lmp")
    assert len(tbl.inspect.manifests()) == 1
    summary = head(tbl).summary
    assert summary is not None and summary.operation.value == "replace"
    assert summary["total-records"] == str(rows.num_rows)
    assert _data_files(tbl) == files
    assert duck_rows(lake).equals(rows)  # the independent reader sees the very same rows


def test_entries_keep_their_snapshot_ids_and_sequence_numbers(lake: Lake) -> None:
    write_polls(lake, 4)
    tbl = lake.table("rt_lmp")
    cols = ["snapshot_id", "sequence_number", "file_sequence_number"]

    def entries() -> dict[str, tuple[int, int, int]]:
        out = tbl.inspect.entries()
        paths = [d["file_path"] for d in out.column("data_file").to_pylist()]
        return dict(zip(paths, zip(*(out.column(c).to_pylist() for c in cols), strict=True), strict=True))

    before = entries()
    assert rewrite_manifests(tbl).ok
    assert entries() == before
    assert set(tbl.inspect.entries().column("status").to_pylist()) == {0}  # EXISTING


def test_hmco_writes_and_reads_the_table_after_a_rewrite(lake: Lake) -> None:
    write_polls(lake, 6)
    tbl = lake.table("rt_lmp")
    watermark = lake.watermark(RT, "rt")
    assert watermark is not None
    assert rewrite_manifests(tbl).ok

    write_polls(lake, [6])  # a new poll
    write_polls(lake, [2], batch="revision")  # replaces a file that only the merged manifest lists

    assert lake.watermark(RT, "rt") == poll_window(6).end > watermark
    rows = duck_rows(lake)
    assert rows.num_rows == 7 * 2
    assert rows.group_by(["iso", "market", "node", "ts"]).aggregate([]).num_rows == rows.num_rows
    assert sum("revision-2-" in p for p in _data_files(lake.table("rt_lmp"))) == 1
    assert not any("poll-2-" in p for p in _data_files(lake.table("rt_lmp")))


def test_a_second_rewrite_has_nothing_to_do(lake: Lake) -> None:
    write_polls(lake, 5)
    tbl = lake.table("rt_lmp")
    assert rewrite_manifests(tbl).ok
    ids = snapshot_ids(tbl)
    again = rewrite_manifests(tbl)
    assert again.ok and again.details == [] and (again.manifests_before, again.manifests_after) == (1, 1)
    assert snapshot_ids(tbl) == ids


def test_dry_run_estimates_and_commits_nothing(lake: Lake) -> None:
    write_polls(lake, 5)
    tbl = lake.table("rt_lmp")
    ids, stored = snapshot_ids(tbl), _metadata_dir(tbl)
    report = rewrite_manifests(tbl, dry_run=True)
    assert report.ok and report.dry_run and (report.manifests_before, report.manifests_after) == (5, 1)
    tbl.refresh()
    assert snapshot_ids(tbl) == ids and len(tbl.inspect.manifests()) == 5
    assert _metadata_dir(tbl) == stored  # not even an uncommitted manifest was written


def test_merged_manifests_are_clustered_by_partition(settings: Settings) -> None:
    lake = Lake(settings)
    lake.create_tiers()
    day = timedelta(days=1)
    write_polls(lake, [5, 2, 7, 0, 3, 6, 1, 4], step=day)  # eight days, out of order
    tbl = lake.table("rt_lmp")
    assert len(tbl.inspect.manifests()) == 8
    one_entry = max(m.manifest_length for m in head(tbl).manifests(tbl.io))

    report = rewrite_manifests(tbl, target_manifest_size=2 * one_entry)  # room for about two entries each

    assert report.ok and 2 <= report.manifests_after < 8
    days = [
        (s[0]["lower_bound"], s[0]["upper_bound"])
        for s in tbl.inspect.manifests().column("partition_summaries").to_pylist()
    ]
    ordered = sorted(days)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ordered))  # no two overlap
    assert duck_count(lake) == 8 * 288 * 2


def test_a_concurrent_commit_makes_a_stale_rewrite_fail_cleanly(lake: Lake) -> None:
    from pyiceberg.exceptions import CommitFailedException

    write_polls(lake, 5)
    stale = lake.table("rt_lmp")
    files_before = _metadata_dir(stale)
    write_polls(lake, [5])  # another writer commits after `stale` was read
    moved = lake.table("rt_lmp")
    moved_head, written = head(moved).snapshot_id, _metadata_dir(moved)

    tx = stale.transaction()
    _producer_class()(tx, stale.io, 8 * 1024 * 1024).commit()
    with pytest.raises(CommitFailedException):
        tx.commit_transaction()

    assert head(lake.table("rt_lmp")).snapshot_id == moved_head
    assert _metadata_dir(moved) == written  # its manifests and manifest list were cleaned up
    assert files_before < written
    report = rewrite_manifests(stale)  # refreshes and re-plans on the new head
    assert report.ok and (report.manifests_before, report.manifests_after) == (6, 1)
    assert duck_count(lake) == 6 * 2


def test_with_pyicebergs_own_retries_a_stale_rewrite_is_replanned_on_the_new_head(settings: Settings) -> None:
    lake = Lake(settings)
    lake.create_tiers()
    write_polls(lake, 5)
    with lake.table("rt_lmp").transaction() as tx:  # a table not made by hmco may let pyiceberg retry
        tx.set_properties({"commit.retry.num-retries": "2", "commit.retry.min-wait-ms": "1"})
    stale = lake.table("rt_lmp")
    write_polls(lake, [5])  # lands between reading `stale` and committing the rewrite

    tx = stale.transaction()
    producer = _producer_class()(tx, stale.io, 8 * 1024 * 1024)
    producer.commit()
    tx.commit_transaction()  # fails once on the stale base, then re-plans on the new head

    tbl = lake.table("rt_lmp")
    assert head(tbl).snapshot_id == producer.snapshot_id
    assert len(tbl.inspect.manifests()) == 1
    assert len(_data_files(tbl)) == 6 and duck_count(lake) == 6 * 2
