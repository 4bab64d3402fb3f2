"""ISO prices in one call: ``hmco.lmp("CAISO", "2026-11-01")`` and ``hmco.nodes("MISO")``.

Dates are market days in the ISO's own time zone (:attr:`Source.timezone`). Windows the lake already
holds are read from it; the rest go through the ISO's shipped pipeline (``hmco/specs/<iso>.yaml``).
Which pipeline writes and what counts as already in the lake depends on the selection:

- MISO and SPP always fetch every node, so every call writes through the shipped pipeline
  (``miso-rt-lmp``, ``spp-rt-lmp``); ``nodes=`` filters the rows read back.
- CAISO fetches the nodes it is asked for. Nodes among the shipped spec's go through the shipped
  ``caiso-rt-lmp`` (it fetches its six nodes in the same requests); ``nodes=None`` through
  ``caiso-rt-lmp.all`` (every node); any other list through ``caiso-rt-lmp.x<hash of the list>``.
  Windows committed by ``caiso-rt-lmp.all`` count for every node list.
- The real-time runner's lake copy (``rt-<iso>``) counts for the shipped selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco.errors import ConfigError
from hmco.frames.output import to_frame
from hmco.frames.reader import Read, read_through, spec_for
from hmco.windows import market_window

if TYPE_CHECKING:
    from hmco.config import Settings
    from hmco.lake import Lake

__all__ = ["ISO_TIMEZONES", "MARKETS", "iso_timezone", "lmp", "nodes", "resolve_iso"]

#: Each ISO's market time zone (the same as its source class's ``Source.timezone``), for sources that set none.
ISO_TIMEZONES: Mapping[str, str] = {"caiso": "America/Los_Angeles", "miso": "EST", "spp": "America/Chicago"}

#: Market names a call accepts (gridstatus' names and hmco's codes, any case) → hmco's ``market`` code.
MARKETS: Mapping[str, str] = {
    "real_time_5_min": "RT5",
    "rt5": "RT5",
    "real_time_15_min": "RT15",
    "rt15": "RT15",
    "day_ahead_hourly": "DAH",
    "dah": "DAH",
}

#: The markets each ISO's source serves.
_ISO_MARKETS: Mapping[str, tuple[str, ...]] = {
    "caiso": ("RT5", "RT15", "DAH"),
    "miso": ("RT5",),
    "spp": ("RT5",),
}

#: How much one committed chunk of a gap covers: CAISO and SPP a UTC day; MISO's two public feeds
#: (today, yesterday) are whole market days, so a chunk spanning both fetches each feed once.
_STEP: Mapping[str, timedelta] = {
    "caiso": timedelta(days=1),
    "miso": timedelta(days=7),
    "spp": timedelta(days=1),
}

#: Source parameters that choose rows; a call sets them through ``nodes=`` and ``market=`` instead.
_SELECTION_PARAMS = frozenset({"nodes", "grp_type", "market"})

_COLUMNS = {
    "ts": "interval_start",
    "interval_end": "interval_end",
    "iso": "iso",
    "market": "market",
    "node": "location",
    "node_type": "location_type",
    "lmp": "lmp",
    "energy": "energy",
    "congestion": "congestion",
    "loss": "loss",
    "ghg": "ghg",
}


def resolve_iso(iso: str) -> tuple[str, str]:
    """``(source name, ISO code)`` of an ISO named by code or source name, in any case.

    Raises:
        ConfigError: not a real-time ISO source; the message lists the known ones.
    """
    from hmco.sources.registry import realtime_isos

    isos = realtime_isos()
    wanted = str(iso).strip().casefold()
    for name, code in isos.items():
        if wanted in (name.casefold(), code.casefold()):
            return name, code
    raise ConfigError(f"unknown ISO {iso!r}; known ISOs: {', '.join(sorted(isos.values()))}")


def iso_timezone(source: str) -> str:
    """The market time zone of ISO source ``source``: its class's ``timezone``, else :data:`ISO_TIMEZONES`."""
    from hmco.sources.base import get_source_class

    own = getattr(get_source_class(source), "timezone", "UTC")
    return own if own != "UTC" else ISO_TIMEZONES.get(source, "UTC")


def _market(market: str, source: str, iso: str) -> str:
    code = MARKETS.get(str(market).strip().casefold())
    served = _ISO_MARKETS.get(source, ("RT5",))
    if code is None or code not in served:
        names = sorted(k for k, v in MARKETS.items() if v in served and "_" in k)
        raise ConfigError(f"{iso} has no market {market!r}; choose one of {names}")
    return code


def _node_list(nodes: Sequence[str] | str | None) -> list[str] | None:
    if nodes is None:
        return None
    listed = [nodes] if isinstance(nodes, str) else list(nodes)
    cleaned = sorted({str(n).strip() for n in listed if str(n).strip()})
    if not cleaned:
        raise ConfigError("nodes must name at least one node or hub (or be None for every node)")
    return cleaned


def _caiso_read(
    market: str,
    wanted: list[str] | None,
    params: dict[str, Any],
    base_url: str | None,
    rows: dict[str, list[str]],
) -> Read:
    """CAISO fetches what it is asked for: pick the pipeline whose selection matches (module docstring)."""
    from hmco.frames.reader import shipped_spec

    shipped = shipped_spec("caiso", "rt_lmp") or {}
    shipped_params = shipped.get("source", {}).get("params", {})
    same_market = market == str(shipped_params.get("market", "RT5")).upper()
    dataset = "da_lmp" if market == "DAH" else "rt_lmp"
    base_tag = None if same_market or dataset != "rt_lmp" else market.lower()
    all_tag = ".".join(t for t in (base_tag, "all") if t)
    step = _STEP["caiso"]
    if wanted is None:
        spec = spec_for(
            "caiso", dataset, params={**params, "market": market, "nodes": "ALL"}, tag=all_tag,
            base_url=base_url, window=step,
        )  # fmt: skip
        return Read(spec, rows=rows)
    all_name = spec_for("caiso", dataset, params={}, tag=all_tag)["name"]
    if same_market and set(wanted) <= set(shipped_params.get("nodes", ())):
        spec = spec_for("caiso", dataset, params=params, base_url=base_url, window=step)
        return Read(spec, readers=(all_name, "rt-caiso"), rows=rows)
    tag = ".".join(t for t in (base_tag, _hash_tag(wanted)) if t)
    spec = spec_for(
        "caiso", dataset, params={**params, "market": market, "nodes": wanted}, tag=tag,
        base_url=base_url, window=step,
    )  # fmt: skip
    return Read(spec, readers=(all_name,), rows=rows)


def _hash_tag(values: list[str]) -> str:
    from hmco.frames.reader import selection_tag

    return selection_tag({"nodes": values})


def lmp(
    iso: str,
    start: date | datetime | str,
    end: date | datetime | str | None = None,
    *,
    market: str = "real_time_5_min",
    nodes: Sequence[str] | str | None = None,
    tz: str | None = None,
    settings: Settings | None = None,
    lake: Lake | None = None,
    pandas: bool = False,
    refresh: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """Locational marginal prices of one ISO as a data frame, read through the lake.

    Dates mean the ISO's market days in its own time zone (CAISO America/Los_Angeles, MISO EST all
    year, SPP America/Chicago) unless ``tz`` says otherwise: a DST fall-back day is 25 hours (300
    five-minute intervals), a spring-forward day 23. Windows already in the lake are read from it; the
    rest are fetched, archived, gated and stored by the ISO's shipped pipeline first, so a second call
    for the same range makes no request. Intervals the ISO has not published yet are not fetched.

    Args:
        iso: ``"CAISO"``, ``"MISO"`` or ``"SPP"`` (any case).
        start: first market day (``"2026-11-01"``, a ``date``, ``"today"``, ``"yesterday"``) or an
            instant (naive = in ``tz``).
        end: end of the range, exclusive; default one market day after ``start``.
        market: ``"real_time_5_min"`` (default), ``"real_time_15_min"`` or ``"day_ahead_hourly"`` (CAISO
            only), or hmco's codes ``RT5``, ``RT15``, ``DAH``.
        nodes: node or hub names (e.g. ``["TH_NP15_GEN-APND"]``, ``["ARKANSAS.HUB"]``); None for all
            (for CAISO that is one OASIS request per hour of every node: name nodes when you can).
        tz: IANA time zone for reading dates and showing times; default the ISO's market time zone.
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: a :class:`~hmco.lake.Lake` to read and fill (default the profile's).
        pandas: return a ``pandas.DataFrame`` (tz-aware datetimes) instead of polars.
        refresh: fetch the range again even where the lake has it (e.g. after ISO revisions).
        base_url: the ISO API root to fetch from (a mirror, proxy or test server).
        params: further keyword arguments of the source client, e.g. ``{"http": {"timeout": 300}}``, or
            for SPP days older than about five days ``{"use_daily_files": True}`` (one file a day).

    Returns:
        One row per location and interval, sorted by time then location, with columns
        ``interval_start``, ``interval_end`` (in ``tz``), ``iso``, ``market``, ``location``,
        ``location_type``, ``lmp``, ``energy``, ``congestion``, ``loss``, ``ghg`` ($/MWh).

    Raises:
        ConfigError: unknown ISO (the known ones are listed), market, time zone or date.
        QualityGateFailed: fetched data failed the quality gate; the message names the window and
            where the batch is kept. Nothing was published.
        PipelineError: a fetch failed (the message names the window and the source's error).

    Examples:
        >>> import hmco
        >>> df = hmco.lmp("CAISO", "2026-11-01", nodes=["TH_NP15_GEN-APND"])  # doctest: +SKIP
        >>> df.height  # the fall-back day: 25 hours of 5-minute intervals  # doctest: +SKIP
        300
        >>> hubs = ["SPPNORTH_HUB", "SPPSOUTH_HUB"]
        >>> week = hmco.lmp("SPP", "2026-11-01", "2026-11-08", nodes=hubs, pandas=True)  # doctest: +SKIP
        >>> miso = hmco.lmp("MISO", "yesterday", nodes="ARKANSAS.HUB")  # public feeds: today and yesterday  # doctest: +SKIP
    """
    source, code = resolve_iso(iso)
    market_code = _market(market, source, code)
    tz = tz or iso_timezone(source)
    window = market_window(start, end, tz)
    wanted = _node_list(nodes)
    extra = dict(params or {})
    refused = sorted(_SELECTION_PARAMS & set(extra))
    if refused:
        raise ConfigError(f"lmp: choose rows with nodes= and market=, not params {refused}")
    rows: dict[str, list[str]] = {"iso": [code], "market": [market_code]}
    if wanted is not None:
        rows["node"] = wanted
    if source == "caiso":
        read = _caiso_read(market_code, wanted, extra, base_url, rows)
    else:
        spec = spec_for(source, "rt_lmp", params=extra, base_url=base_url, window=_STEP.get(source))
        read = Read(spec, readers=(f"rt-{source}",), rows=rows)
    result = read_through(read, window, settings=settings, lake=lake, refresh=refresh)
    return to_frame(
        result.table, tz=tz, columns=_COLUMNS, sort_by=("interval_start", "location"), pandas=pandas
    )


def nodes(
    iso: str,
    *,
    kind: str | None = None,
    settings: Settings | None = None,
    lake: Lake | None = None,
    refresh: bool = False,
    pandas: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """The nodes and hubs an ISO prices, from the ISO's own node list, as a data frame.

    The list is fetched from the ISO (CAISO OASIS ``ATL_APNODE``/``ATL_PNODE``, MISO's day-ahead
    ex-post LMP file, SPP's settlement locations and price-map layers; see :mod:`hmco.sources.nodes`),
    archived in the lake's raw tier, and read back from there for 12 hours.

    Args:
        iso: ``"CAISO"``, ``"MISO"`` or ``"SPP"`` (any case).
        kind: keep one location type only (``"Hub"``, ``"Trading Hub"``, ``"AP Node"`` …; any case).
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: the :class:`~hmco.lake.Lake` whose raw archive keeps the list (default the profile's).
        refresh: fetch the list again even if a fresh copy is archived.
        pandas: return a ``pandas.DataFrame`` instead of polars.
        base_url: the ISO API root to fetch from (a mirror, proxy or test server).
        params: further keyword arguments of the ISO's source client.

    Returns:
        One row per location, sorted: ``location``, ``location_type``, then the ISO's own columns.

    Raises:
        ConfigError: unknown ISO (the known ones are listed).
        SourceError: the list could not be fetched or read.

    Examples:
        >>> import hmco
        >>> hubs = hmco.nodes("CAISO", kind="Trading Hub")  # doctest: +SKIP
        >>> hubs["location"].to_list()  # doctest: +SKIP
        ['TH_NP15_GEN-APND', 'TH_SP15_GEN-APND', 'TH_ZP26_GEN-APND']
    """
    import pyarrow.compute as pc

    from hmco.config import Settings as _Settings
    from hmco.lake import Lake as _Lake
    from hmco.sinks.raw import RawArchive
    from hmco.sources.nodes import nodes as node_catalogue

    _, code = resolve_iso(iso)
    settings = lake.settings if lake is not None else (settings or _Settings.load())
    lake = lake or _Lake(settings)
    extra = dict(params or {})
    if base_url is not None:
        extra["base_url"] = base_url
    table = node_catalogue(code, settings=settings, archive=RawArchive(lake), refresh=refresh, **extra)
    if kind is not None:
        types = pc.utf8_lower(table.column("location_type"))
        table = table.filter(pc.equal(types, str(kind).strip().lower()))
    return to_frame(table, tz="UTC", columns=None, drop=(), pandas=pandas)
