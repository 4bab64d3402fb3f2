"""The read-through engine of the one-call API: serve a window from the lake, fetching only what is missing.

A call is a :class:`Read`: the UIS spec of the pipeline that writes (a shipped spec from
``hmco/specs``, or one derived from it for another selection), the other pipelines whose committed
windows also hold the requested rows, and the filters that pick those rows. *In the lake* means
exactly: covered by the committed windows (:mod:`hmco.lake.state`) of one of those pipelines. Each
gap runs through :meth:`~hmco.compose.pipeline.Pipeline.run` with ``resume=True`` (the spec's source,
default gate, sinks and state, as a scheduled run), then the rows are scanned from the lake with the
time and selection filters pushed down. A window is fetched only up to the end of
:meth:`~hmco.sources.base.Source.latest_window`: an interval the source has not published yet is never
committed as done, and a later call fetches it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from hmco._logging import get_logger
from hmco.windows import Window

if TYPE_CHECKING:
    import pyarrow as pa

    from hmco.compose.spec import PipelineSpec
    from hmco.config import Settings
    from hmco.lake import Lake

__all__ = ["Read", "ReadResult", "gaps", "read_through", "shipped_spec", "spec_for"]

log = get_logger("hmco.frames")


@dataclass(frozen=True)
class Read:
    """One read-through: who writes, who else counts as coverage, which rows come back.

    Attributes:
        spec: UIS spec mapping of the pipeline that fetches the gaps (its ``name`` keys the state).
        readers: other pipelines whose committed windows hold these rows too (the shipped pipeline,
            the real-time runner's lake copy ``rt-<iso>``) when the call asks for part of their selection.
        rows: column → values the returned rows are limited to (pushed down into the scan). The
            writing source's own ``scope()`` names the same selection, so a re-run replaces only it.
    """

    spec: Mapping[str, Any]
    readers: tuple[str, ...] = ()
    rows: Mapping[str, Sequence[Any]] = field(default_factory=dict)


@dataclass
class ReadResult:
    """The rows of a read, and what it took to get them.

    Attributes:
        table: the rows of the window in the lake (canonical schema, UTC).
        fetched: the gaps that were run through the pipeline (empty: served from the lake alone).
        served_until: the end of the newest window the source serves; nothing later was fetched.
    """

    table: pa.Table
    fetched: list[Window]
    served_until: datetime


@cache
def _shipped() -> tuple[dict[str, Any], ...]:
    import yaml

    specs = []
    for entry in sorted(resources.files("hmco.specs").iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            specs.append(yaml.safe_load(entry.read_text()))
    return tuple(specs)


def shipped_spec(source: str, dataset: str | None = None) -> dict[str, Any] | None:
    """A copy of the shipped spec (``hmco/specs/*.yaml``) of ``source`` for ``dataset`` (None: none ships)."""
    from hmco.sources.base import get_source_class

    for spec in _shipped():
        src = spec.get("source", {})
        produced = src.get("dataset") or get_source_class(src.get("type", "")).datasets[0]
        if src.get("type") == source and (dataset is None or produced == dataset):
            return copy.deepcopy(spec)
    return None


def spec_for(
    source: str,
    dataset: str,
    *,
    params: Mapping[str, Any],
    tag: Mapping[str, Any] | str | None = None,
    base_url: str | None = None,
    window: timedelta | None = None,
) -> dict[str, Any]:
    """The spec a call writes through: the shipped one of ``source``/``dataset`` with ``params`` merged in.

    ``tag`` names a selection other than the shipped one: the pipeline is then ``<shipped>.<tag>`` (a
    mapping is hashed), so its committed windows never claim rows it did not fetch. Without a shipped
    spec the base name is the :class:`~hmco.compose.pipeline.Pipeline` default, ``<source>-<dataset>``.
    """
    shipped = shipped_spec(source, dataset)
    base = shipped or {"name": f"{source}-{dataset}", "source": {"type": source}, "sinks": ["iceberg"]}
    spec = copy.deepcopy(base)
    spec["source"]["dataset"] = dataset
    spec["source"]["params"] = {**spec["source"].get("params", {}), **params}
    if base_url is not None:
        spec["source"]["base_url"] = base_url
    if window is not None:
        spec["window"] = window
    if tag:
        spec["name"] = f"{spec['name']}.{tag if isinstance(tag, str) else selection_tag(tag)}"
    return spec


def selection_tag(selection: Mapping[str, Any]) -> str:
    """A short stable name for a selection (``x`` + 10 hex digits of its canonical JSON's SHA-256)."""
    import hashlib

    text = json.dumps(selection, sort_keys=True, default=str, separators=(",", ":"))
    return "x" + hashlib.sha256(text.encode()).hexdigest()[:10]


def gaps(window: Window, covered: Sequence[tuple[datetime, datetime]]) -> list[Window]:
    """The parts of ``window`` outside the sorted, merged ``covered`` intervals."""
    out: list[Window] = []
    cursor = window.start
    for start, end in covered:
        if end <= cursor:
            continue
        if start >= window.end:
            break
        if start > cursor:
            out.append(Window(cursor, start))
        cursor = max(cursor, end)
    if cursor < window.end:
        out.append(Window(cursor, window.end))
    return out


def read_through(
    read: Read,
    window: Window,
    *,
    settings: Settings | None = None,
    lake: Lake | None = None,
    refresh: bool = False,
) -> ReadResult:
    """Return ``window``'s rows from the lake, first fetching the parts no pipeline of ``read`` committed.

    Args:
        read: the spec, coverage and row filters of the call.
        window: the UTC window (on the dataset's time column).
        settings: profile to use (default: ``Settings.load()``, or the lake's).
        lake: the lake to read and write (default: ``Lake(settings)``).
        refresh: fetch the whole window again, even the parts already in the lake.

    Raises:
        QualityGateFailed: a fetched window failed the gate (the message names it and where the batch is kept).
        PipelineError: a fetched window failed otherwise (the message names it and the cause).
    """
    from hmco.compose.spec import build_source, load_spec
    from hmco.config import Settings
    from hmco.lake import Lake
    from hmco.lake.state import merge_windows

    spec = load_spec(dict(read.spec))
    settings = lake.settings if lake is not None else (settings or Settings.load())
    lake = lake or Lake(settings)
    dataset = spec.dataset_name
    with build_source(spec, settings) as probe:
        served_until = probe.latest_window().end
    todo: list[Window] = []
    if window.start < min(window.end, served_until):
        wanted = Window(window.start, min(window.end, served_until))
        if refresh:
            todo = [wanted]
        else:
            state = lake.state
            names = (spec.name, *read.readers)
            committed = [iv for n in names for iv in state.committed_windows(dataset, n, spec.publish_tier)]
            todo = gaps(wanted, merge_windows(committed))
    if window.end > served_until:
        log.info(
            "%s serves %s up to %s: later intervals of %s are not published yet and were not fetched",
            spec.source.type,
            dataset,
            served_until.isoformat(),
            window,
        )
    if todo:
        _fetch(spec, todo, read, lake, refresh)
    return ReadResult(_scan(lake, dataset, spec.publish_tier, window, read.rows), todo, served_until)


def _fetch(spec: PipelineSpec, todo: list[Window], read: Read, lake: Lake, refresh: bool) -> None:
    """Run each gap through the spec's pipeline: fetch, archive, gate, store, commit (fail closed)."""
    from hmco.compose.spec import build_pipeline

    pipeline = build_pipeline(spec, lake=lake)
    try:
        for gap in todo:
            log.info("%s: fetching %s (not in the lake yet)", pipeline.name, gap)
            pipeline.run(gap, resume=not refresh)
    finally:
        pipeline.source.close()


def _scan(lake: Lake, dataset: str, tier: str, window: Window, rows: Mapping[str, Sequence[Any]]) -> pa.Table:
    """The window's rows of ``dataset`` in ``tier``, time and selection filters pushed into the scan."""
    from pyiceberg.exceptions import NoSuchTableError

    from hmco.schemas import get_dataset
    from hmco.sinks.iceberg import window_filter

    ds = get_dataset(dataset)
    try:
        table = lake.table(ds, tier, create=False)
    except NoSuchTableError:
        return ds.schema.empty_table()
    return table.scan(row_filter=window_filter(ds, window, rows)).to_arrow()
