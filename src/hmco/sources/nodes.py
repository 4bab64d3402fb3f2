"""Node and hub catalogues per ISO, and the one table of location-type labels hmco uses.

Entry point: :func:`nodes` (``nodes("MISO", settings=s, archive=RawArchive(Lake(s)))``) returns one row
per pricing location, with at least ``location`` and ``location_type``, from the ISO's own catalogue:

======  ==============================================================  ==========================
ISO     catalogue (one fetch = these payloads)                           extra columns
======  ==============================================================  ==========================
CAISO   OASIS ``ATL_APNODE`` and ``ATL_PNODE`` (SingleZip, CSV)          ``oasis_type``, ``catalogue``
MISO    the day-ahead ex-post LMP file ``YYYYMMDD_da_expost_lmp.csv``    ``market_day``
SPP     ``RTBM-LMP-SL-latestInterval.csv`` + the hub and interface       ``pnode``, ``baa``
        layers of SPP's price-contour map (ArcGIS ``query?f=json``)
======  ==============================================================  ==========================

Location types are the ``Location Type`` values gridstatus users know, per ISO (one constant each):

======  ===============================================  ======================
ISO     what the source says                             ``location_type``
======  ===============================================  ======================
CAISO   name ``TH_*`` (trading hub APNode)               ``Trading Hub``
CAISO   name ``DLAP_*``                                  ``DLAP``
CAISO   any other name ``*-APND``                        ``AP Node``
CAISO   any other node                                   ``Node``
MISO    DA ex-post file ``Type`` = ``Hub``               ``Hub``
MISO    ``Type`` = ``Interface``                         ``Interface``
MISO    ``Type`` = ``Loadzone``                          ``Loadzone``
MISO    ``Type`` = ``Gennode``                           ``Gennode``
MISO    a CPNODE missing from the node list              ``Unknown``
SPP     hub layer, or a name ending ``_HUB``             ``Hub``
SPP     interface layer                                  ``Interface``
SPP     any other settlement location                    ``Settlement Location``
======  ===============================================  ======================

MISO's types are its own ``Type`` values verbatim, as gridstatus passes them (``Loadzone``, not ERCOT's
``Load Zone``). Catalogue payloads are archived like any payload (dataset segment ``nodes``); with an
``archive`` a fresh copy is read back instead of fetched again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from hmco.errors import ConfigError, PayloadError
from hmco.payload import RawPayload

if TYPE_CHECKING:
    from hmco.config import Settings

__all__ = [
    "CAISO_LOCATION_TYPES",
    "ISO_SOURCES",
    "MISO_LOCATION_TYPES",
    "NODES_DATASET",
    "NODES_KIND",
    "SPP_LOCATION_TYPES",
    "UNKNOWN",
    "NodeArchive",
    "catalogue_meta",
    "first_per_location",
    "nodes",
    "nodes_table",
]

log = logging.getLogger("hmco.sources.nodes")

#: CAISO: hmco's class of an OASIS node name -> gridstatus ``Location Type`` (gridstatus names them so).
CAISO_LOCATION_TYPES: Final[Mapping[str, str]] = {
    "trading_hub": "Trading Hub",
    "dlap": "DLAP",
    "apnode": "AP Node",
    "node": "Node",
}
#: MISO: the day-ahead ex-post file's ``Type`` -> ``Location Type`` (verbatim, as gridstatus keeps it).
MISO_LOCATION_TYPES: Final[Mapping[str, str]] = {
    "Hub": "Hub",
    "Interface": "Interface",
    "Loadzone": "Loadzone",
    "Gennode": "Gennode",
}
#: SPP: the list a settlement location is on -> ``Location Type`` (gridstatus ``LOCATION_TYPE_*``).
SPP_LOCATION_TYPES: Final[Mapping[str, str]] = {
    "hub": "Hub",
    "interface": "Interface",
    "settlement_location": "Settlement Location",
}
#: The type of a priced node its ISO's catalogue does not list (counted and logged, never null).
UNKNOWN: Final = "Unknown"

#: The dataset segment node catalogues are archived under (``payloads/<source>/nodes/...``).
NODES_DATASET: Final = "nodes"
#: ``meta["kind"]`` of a catalogue payload; a source's ``parse`` recognises its catalogue by it.
NODES_KIND: Final = "nodes"
#: ISO code -> source registry name.
ISO_SOURCES: Final[Mapping[str, str]] = {"CAISO": "caiso", "MISO": "miso", "SPP": "spp"}
#: How old an archived catalogue may be and still be used instead of fetching a new one.
DEFAULT_MAX_AGE: Final = timedelta(hours=12)

_BASE_COLUMNS: Final = ("location", "location_type")


class NodeArchive(Protocol):
    """The part of :class:`hmco.sinks.raw.RawArchive` :func:`nodes` uses (a source never imports sinks)."""

    def put(self, payload: RawPayload) -> Any: ...

    def keys(self, source: str | None = None, dataset: str | None = None) -> list[str]: ...

    def describe(self, key: str) -> dict[str, Any]: ...

    def get(self, key: str) -> RawPayload: ...


class NodeCatalogueSource(Protocol):
    """What an ISO source offers for its catalogue: fetch (I/O) and parse (pure)."""

    def fetch_nodes(self) -> Iterator[RawPayload]: ...

    def parse_nodes(self, payloads: Sequence[RawPayload]) -> pa.Table: ...

    def close(self) -> None: ...


def catalogue_meta(fetch_id: str, part: int, parts: int, **extra: Any) -> dict[str, Any]:
    """``meta`` of one catalogue payload: ``parts`` payloads with one ``fetch_id`` make one catalogue."""
    return {"kind": NODES_KIND, "fetch_id": fetch_id, "part": part, "parts": parts, **extra}


def new_fetch_id() -> str:
    """A fresh id tying the payloads of one catalogue fetch together."""
    return uuid.uuid4().hex


def nodes_table(columns: Mapping[str, pa.Array | pa.ChunkedArray | list[Any]]) -> pa.Table:
    """A catalogue table: ``location``, ``location_type`` first, other columns as given, by location.

    Raises:
        PayloadError: the catalogue is empty (an ISO always lists nodes; empty means a broken answer).
    """
    table = pa.table(dict(columns))
    ordered = [*_BASE_COLUMNS, *(c for c in table.column_names if c not in _BASE_COLUMNS)]
    table = table.select(ordered)
    if table.num_rows == 0:
        raise PayloadError("the node catalogue lists no locations")
    return table.sort_by("location")


def first_per_location(table: pa.Table) -> pa.Table:
    """``table`` with one row per ``location``, its first (a node listed twice keeps its first listing)."""
    order = pa.array(range(table.num_rows), pa.int64())
    firsts = (
        table.select(["location"])
        .append_column("_row", order)
        .group_by("location", use_threads=False)
        .aggregate([("_row", "min")])
    )
    rows = firsts.column("_row_min")
    return table.take(pc.take(rows, pc.sort_indices(rows)))


def nodes(
    iso: str,
    *,
    settings: Settings | None = None,
    archive: NodeArchive | None = None,
    refresh: bool = False,
    max_age: timedelta = DEFAULT_MAX_AGE,
    as_of: datetime | None = None,
    **source_params: Any,
) -> pa.Table:
    """The node and hub catalogue of ``iso`` ("CAISO", "MISO" or "SPP") as an Arrow table.

    Columns: ``location``, ``location_type`` (labels in the module docstring), then the ISO's own.

    Args:
        iso: ISO code (any case).
        settings: hmco settings for the source (user agent …); loaded from the environment if omitted.
        archive: the raw-tier archive (``RawArchive(Lake(settings))``): every fetched payload is stored
            there, and a catalogue archived less than ``max_age`` ago is read back instead of fetched.
        refresh: fetch even if a fresh archived copy exists.
        max_age: how old an archived catalogue may be.
        as_of: the time ``max_age`` counts back from (default now).
        **source_params: passed to the source (``base_url``, ``http``, MISO ``reports_url``, SPP
            ``map_url``, …).

    Raises:
        ConfigError: ``iso`` has no catalogue.
        SourceError: the fetch failed; PayloadError/SchemaDriftError for a malformed or HTML answer.
    """
    from hmco.sources.registry import get_source_class

    key = iso.strip().upper()
    if key not in ISO_SOURCES:
        raise ConfigError(f"no node catalogue for ISO {iso!r}; choose one of {sorted(ISO_SOURCES)}")
    name = ISO_SOURCES[key]
    source = cast("NodeCatalogueSource", get_source_class(name)(settings=settings, **source_params))
    try:
        if archive is not None and not refresh:
            cached = archived_catalogue(archive, name, newer_than=(as_of or datetime.now(UTC)) - max_age)
            if cached:
                try:
                    return source.parse_nodes(cached)
                except PayloadError as exc:  # a bad answer archived earlier: fetch a new one
                    log.warning("archived %s node catalogue is unreadable (%s); fetching it again", key, exc)
        payloads = []
        for payload in source.fetch_nodes():
            if archive is not None:
                archive.put(payload)
            payloads.append(payload)
        return source.parse_nodes(payloads)
    finally:
        source.close()


def archived_catalogue(archive: NodeArchive, source: str, *, newer_than: datetime) -> list[RawPayload]:
    """The payloads of the newest complete catalogue of ``source`` fetched after ``newer_than``, or ``[]``.

    Only the small JSON sidecars are read to choose; bodies of the chosen fetch only.
    """
    groups: dict[str, list[tuple[int, str]]] = {}
    newest: dict[str, datetime] = {}
    expected: dict[str, int] = {}
    for key in archive.keys(source, NODES_DATASET):
        desc = archive.describe(key)
        meta = desc.get("meta") or {}
        fetched = datetime.fromisoformat(desc["fetched_at"])
        if meta.get("kind") != NODES_KIND or desc.get("status") != 200 or fetched < newer_than:
            continue
        fetch_id = str(meta.get("fetch_id"))
        groups.setdefault(fetch_id, []).append((int(meta.get("part", 0)), key))
        newest[fetch_id] = max(newest.get(fetch_id, fetched), fetched)
        expected[fetch_id] = int(meta.get("parts", 1))
    complete = [f for f, parts in groups.items() if len({p for p, _ in parts}) == expected[f]]
    if not complete:
        return []
    best = max(complete, key=lambda f: newest[f])
    return [archive.get(key) for _, key in sorted(groups[best])]


def parts_of(payloads: Iterable[RawPayload], part_names: Sequence[str]) -> dict[str, RawPayload]:
    """The catalogue payloads by ``meta["part_name"]``; raises :class:`PayloadError` if one is missing."""
    found = {str(p.meta.get("part_name")): p for p in payloads if p.meta.get("kind") == NODES_KIND}
    missing = [n for n in part_names if n not in found]
    if missing:
        raise PayloadError(f"node catalogue is missing its part(s) {missing}; it has {sorted(found)}")
    return found
