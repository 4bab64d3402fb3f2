"""Snapshot expiry: time travel to what is kept, files only expired snapshots used are gone, refs survive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from hmco.lake import Lake
from hmco.maintenance.expire import expire_snapshots
from hmco.maintenance.files import list_files
from hmco.maintenance.manifests import rewrite_manifests
from hmco.query.lake import LakeSQL
from tests.support.maintenance import (
    duck_count,
    duck_rows,
    exists,
    head,
    scan_rows,
    size,
    snapshot_ids,
    write_polls,
)

if TYPE_CHECKING:
    from pyiceberg.table import Table

LATER = datetime.now(UTC) + timedelta(days=30)  # "now" for runs where every snapshot counts as old


def _history(lake: Lake) -> Table:
    """Six polls, then polls 0 and 1 written again (a delete and an append each): ten snapshots."""
    write_polls(lake, 6)
    write_polls(lake, [0, 1], batch="revision")
    tbl = lake.table("rt_lmp")
    assert len(tbl.metadata.snapshots) == 10
    return tbl


def _time_of(tbl: Table, index: int) -> datetime:
    return datetime.fromtimestamp(tbl.metadata.snapshots[index].timestamp_ms / 1000, UTC)


def _files_by_snapshot(tbl: Table) -> dict[int, set[str]]:
    """What each snapshot reads, from pyiceberg's inspect tables: manifest list, manifests, live data files."""
    manifests = tbl.inspect.all_manifests().to_pylist()
    out = {}
    for snap in tbl.metadata.snapshots:
        sid = snap.snapshot_id
        files = {snap.manifest_list}
        files |= {m["path"] for m in manifests if m["reference_snapshot_id"] == sid}
        files |= set(tbl.inspect.data_files(snapshot_id=sid).column("file_path").to_pylist())
        out[sid] = files
    return out


def test_time_travel_works_to_every_retained_snapshot(lake: Lake) -> None:
    tbl = _history(lake)
    before = {sid: scan_rows(tbl, sid) for sid in snapshot_ids(tbl)}
    report = expire_snapshots(tbl, older_than=_time_of(tbl, 4), retain_last=2)
    assert report.ok and report.snapshots_removed == 4
    retained = snapshot_ids(tbl)
    assert retained == list(before)[4:]
    with LakeSQL(lake) as sql:
        for sid in retained:
            assert scan_rows(tbl, sid).equals(before[sid])
            assert duck_rows(lake, sid, sql=sql).to_pylist() == before[sid].to_pylist()


def test_files_only_expired_snapshots_referenced_are_deleted_and_the_rest_remain(lake: Lake) -> None:
    tbl = _history(lake)
    by_snapshot = _files_by_snapshot(tbl)
    ids = list(by_snapshot)
    expired, retained = ids[:7], ids[7:]  # up to the delete of poll 0's first file
    kept = set().union(*(by_snapshot[s] for s in retained))
    gone = set().union(*(by_snapshot[s] for s in expired)) - kept
    poll0_first = next(p for p in gone if "poll-0-" in p)  # read only by expired snapshots
    assert not any("poll-1-" in p for p in gone)  # still read by the retained append of poll 0's revision
    gone_bytes = sum(size(tbl, p) for p in gone)

    report = expire_snapshots(tbl, older_than=_time_of(tbl, 7), retain_last=2)

    assert report.ok and snapshot_ids(tbl) == retained
    assert (report.removed_files, report.removed_bytes) == (len(gone), gone_bytes)
    assert not exists(tbl, poll0_first)
    assert [p for p in gone if exists(tbl, p)] == []
    assert [p for p in kept if not exists(tbl, p)] == []
    assert duck_count(lake) == 6 * 2


def test_branch_and_tag_keep_their_snapshots_and_files(lake: Lake) -> None:
    write_polls(lake, 3)
    tbl = lake.table("rt_lmp")
    first, second = snapshot_ids(tbl)[:2]
    tbl.manage_snapshots().create_branch(first, "audit").create_tag(second, "eod").commit()
    write_polls(lake, [0, 1, 2], batch="revision")  # replaces every file the branch and the tag read
    tbl.refresh()
    audit, eod = scan_rows(tbl, first), scan_rows(tbl, second)
    their_files = set(tbl.inspect.data_files(snapshot_id=first).column("file_path").to_pylist())
    their_files |= set(tbl.inspect.data_files(snapshot_id=second).column("file_path").to_pylist())

    report = expire_snapshots(tbl, older_than=timedelta(0), retain_last=1, now=LATER)

    assert report.ok and report.removed_files > 0
    assert set(tbl.refs()) == {"main", "audit", "eod"}
    assert tbl.refs()["audit"].snapshot_id == first and tbl.refs()["eod"].snapshot_id == second
    assert set(snapshot_ids(tbl)) == {first, second, head(tbl).snapshot_id}
    assert scan_rows(tbl, first).equals(audit) and audit.num_rows == 2
    assert scan_rows(tbl, second).equals(eod) and eod.num_rows == 4
    assert duck_rows(lake, first).to_pylist() == audit.to_pylist()
    assert [p for p in their_files if not exists(tbl, p)] == []


def test_retain_last_keeps_the_newest_snapshots_of_main_whatever_their_age(lake: Lake) -> None:
    write_polls(lake, 6)
    tbl = lake.table("rt_lmp")
    newest = snapshot_ids(tbl)[-3:]
    report = expire_snapshots(tbl, older_than=timedelta(0), retain_last=3, now=LATER)
    assert report.ok and report.snapshots_removed == 3
    assert snapshot_ids(tbl) == newest
    assert head(tbl).snapshot_id == newest[-1]
    assert duck_count(lake) == 6 * 2


def test_the_current_snapshot_is_never_expired() -> None:
    with pytest.raises(ValueError, match="retain_last"):
        expire_snapshots(None, older_than=timedelta(0), retain_last=0)  # type: ignore[arg-type]


def test_snapshots_younger_than_the_cutoff_stay(lake: Lake) -> None:
    write_polls(lake, 4)
    tbl = lake.table("rt_lmp")
    ids = snapshot_ids(tbl)
    report = expire_snapshots(tbl, older_than=timedelta(days=1), retain_last=1)  # all are minutes old
    assert report.ok and report.snapshots_removed == 0 and report.removed_files == 0
    assert snapshot_ids(tbl) == ids


def test_dry_run_reports_what_would_go_and_deletes_nothing(lake: Lake) -> None:
    tbl = _history(lake)
    ids = snapshot_ids(tbl)
    stored = {f.path for f in list_files(tbl)}

    dry = expire_snapshots(tbl, older_than=timedelta(0), retain_last=2, now=LATER, dry_run=True)

    assert dry.ok and dry.dry_run and dry.snapshots_removed == 8 and dry.removed_files > 0
    assert [d["snapshot_id"] for d in dry.details] == ids[:8]
    tbl.refresh()
    assert snapshot_ids(tbl) == ids
    assert {f.path for f in list_files(tbl)} == stored
    real = expire_snapshots(tbl, older_than=timedelta(0), retain_last=2, now=LATER)
    assert (real.snapshots_removed, real.removed_files, real.removed_bytes) == (
        dry.snapshots_removed,
        dry.removed_files,
        dry.removed_bytes,
    )


def test_files_a_rewritten_manifest_still_lists_are_kept(lake: Lake) -> None:
    write_polls(lake, 5)
    tbl = lake.table("rt_lmp")
    old_manifests = set(tbl.inspect.manifests().column("path").to_pylist())
    assert rewrite_manifests(tbl).ok
    data = set(tbl.inspect.data_files().column("file_path").to_pylist())

    report = expire_snapshots(tbl, older_than=timedelta(0), retain_last=1, now=LATER)

    assert report.ok and snapshot_ids(tbl) == [head(tbl).snapshot_id]
    assert [p for p in old_manifests if exists(tbl, p)] == []  # only the expired snapshots listed them
    assert [p for p in data if not exists(tbl, p)] == []  # the new manifest lists every data file
    assert report.removed_files == len(old_manifests) + 5  # and the five old manifest lists
    assert duck_count(lake) == 5 * 2
