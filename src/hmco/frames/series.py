"""EIA, FRED, NOAA and Census series in one call each, read through the lake like :func:`hmco.lmp`.

Dates are UTC calendar days unless ``tz`` says otherwise: the sources date their observations by UTC
day (FRED and EIA daily periods, Census months) or time them in UTC (EIA hourly, NOAA). A call asking
for its dataset's shipped selection (``hmco/specs``) writes through the shipped pipeline; any other
selection through ``<shipped name>.x<hash of the selection>`` (or ``<source>-<dataset>`` where nothing
ships), and windows the shipped pipeline committed count for any part of its selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hmco.errors import ConfigError
from hmco.frames.output import to_frame
from hmco.frames.reader import Read, read_through, shipped_spec, spec_for
from hmco.windows import market_window

if TYPE_CHECKING:
    from hmco.config import Settings
    from hmco.lake import Lake

__all__ = ["census", "eia", "fred", "noaa"]

Values = Sequence[str] | str | None
Day = date | datetime | str

#: ``hmco.eia`` names: dataset, short alias or EIA route → (dataset, forced spot ``route`` or None).
_EIA_NAMES: Mapping[str, tuple[str, str | None]] = {
    "eia_daily_fuel": ("eia_daily_fuel", None),
    "daily_fuel": ("eia_daily_fuel", None),
    "electricity/rto/daily-fuel-type-data": ("eia_daily_fuel", None),
    "eia_hourly_fuel": ("eia_hourly_fuel", None),
    "hourly_fuel": ("eia_hourly_fuel", None),
    "electricity/rto/fuel-type-data": ("eia_hourly_fuel", None),
    "eia_hourly_region": ("eia_hourly_region", None),
    "hourly_region": ("eia_hourly_region", None),
    "electricity/rto/region-data": ("eia_hourly_region", None),
    "eia_spot_prices": ("eia_spot_prices", None),
    "spot_prices": ("eia_spot_prices", None),
    "natural-gas/pri/fut": ("eia_spot_prices", "natural-gas/pri/fut"),
    "petroleum/pri/spt": ("eia_spot_prices", "petroleum/pri/spt"),
}
#: EIA facet parameter → the column its values land in (what the rows are filtered on).
_EIA_COLUMNS: Mapping[str, str] = {
    "respondents": "region",
    "fueltypes": "series",
    "types": "series",
    "timezones": "timezone",
    "series": "series",
}
#: Census predicates that are columns of ``census_timeseries`` (so rows can be selected by them).
_CENSUS_PREDICATES = frozenset({"category_code", "data_type_code", "seasonally_adj"})
#: How much one committed chunk of a gap covers: long for daily and monthly series (one request per
#: series and chunk), a day for hourly ones.
_STEP: Mapping[str, timedelta] = {
    "eia_daily_fuel": timedelta(days=31),
    "eia_spot_prices": timedelta(days=366),
    "eia_hourly_fuel": timedelta(days=1),
    "eia_hourly_region": timedelta(days=1),
    "fred_observations": timedelta(days=366),
    "noaa_observations": timedelta(days=1),
    "noaa_ghcnd_daily": timedelta(days=31),
    "census_timeseries": timedelta(days=366),
}


def _listed(values: Values, *, upper: bool = False) -> list[str] | None:
    """A selection list, sorted and de-duplicated (``"a, b"`` accepted); None stays None (= all)."""
    if values is None:
        return None
    items = values.split(",") if isinstance(values, str) else [str(v) for v in values]
    cleaned = sorted({(v.strip().upper() if upper else v.strip()) for v in items if v.strip()})
    return cleaned or None


def _contains(shipped: Any, wanted: Any) -> bool:
    """Whether the shipped selection value covers the wanted one (None / empty = everything)."""
    if not shipped:
        return True
    if isinstance(shipped, (list, tuple)):
        return bool(wanted) and set(wanted) <= {str(s) for s in shipped}
    if isinstance(shipped, Mapping):
        return isinstance(wanted, Mapping) and all(str(wanted.get(k)) == str(v) for k, v in shipped.items())
    return str(shipped) == str(wanted)


def _same(shipped: Any, wanted: Any) -> bool:
    if isinstance(shipped, (list, tuple)) or isinstance(wanted, (list, tuple)):
        return sorted(map(str, shipped or [])) == sorted(map(str, wanted or []))
    if isinstance(shipped, Mapping) or isinstance(wanted, Mapping):
        return {str(k): str(v) for k, v in (shipped or {}).items()} == {
            str(k): str(v) for k, v in (wanted or {}).items()
        }
    return (shipped or None) == (wanted or None)


def _through(
    source: str,
    dataset: str,
    selection: Mapping[str, Any],
    *,
    rows: Mapping[str, Sequence[Any]],
    params: Mapping[str, Any] | None,
    base_url: str | None,
) -> Read:
    """The read of ``selection``: the shipped pipeline if it asks for exactly that, else its own one."""
    extra = dict(params or {})
    refused = sorted(set(selection) & set(extra))
    if refused:
        raise ConfigError(f"{source}: set {refused} through the call's own arguments, not params")
    step = _STEP.get(dataset)
    shipped = shipped_spec(source, dataset)
    shipped_params = shipped["source"].get("params", {}) if shipped else {}
    if shipped is not None and all(_same(shipped_params.get(k), v) for k, v in selection.items()):
        return Read(spec_for(source, dataset, params=extra, base_url=base_url, window=step), rows=rows)
    chosen = {k: v for k, v in selection.items() if v is not None}
    spec = spec_for(
        source, dataset, params={**extra, **selection}, tag=chosen, base_url=base_url, window=step
    )
    within = shipped is not None and all(_contains(shipped_params.get(k), v) for k, v in selection.items())
    readers = (shipped["name"],) if shipped is not None and within else ()
    return Read(spec, readers=readers, rows=rows)


def _frame(
    read: Read,
    start: Day,
    end: Day | None,
    tz: str,
    sort_by: Sequence[str],
    settings: Settings | None,
    lake: Lake | None,
    refresh: bool,
    pandas: bool,
) -> Any:
    window = market_window(start, end, tz)
    result = read_through(read, window, settings=settings, lake=lake, refresh=refresh)
    return to_frame(result.table, tz=tz, sort_by=sort_by, pandas=pandas)


def eia(
    route: str,
    start: Day,
    end: Day | None = None,
    *,
    respondents: Values = None,
    fueltypes: Values = None,
    types: Values = None,
    timezones: Values = None,
    series: Values = None,
    tz: str = "UTC",
    settings: Settings | None = None,
    lake: Lake | None = None,
    pandas: bool = False,
    refresh: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """EIA API v2 data (EIA-930 generation and demand, spot prices) as a data frame, read through the lake.

    Args:
        route: what to read: ``"daily_fuel"`` (EIA-930 daily net generation by fuel), ``"hourly_fuel"``,
            ``"hourly_region"`` (demand, forecast, generation, interchange), ``"spot_prices"``; the
            dataset names (``"eia_daily_fuel"`` …) and EIA routes
            (``"electricity/rto/daily-fuel-type-data"``, ``"natural-gas/pri/fut"``, ``"petroleum/pri/spt"``)
            work too.
        start: first day (``"2026-07-01"``, a ``date``, ``"yesterday"``) or an instant.
        end: end of the range, exclusive; default one day after ``start``.
        respondents: balancing authorities (``["CISO", "ERCO"]``); None for all.
        fueltypes: EIA-930 fuel codes (``["SUN", "WND"]``); None for all.
        types: region-data types (``["D", "DF", "NG", "TI"]``); None for all.
        timezones: EIA-930 day time zones for daily data (``["Pacific"]``); None for all.
        series: spot price series ids (``["RNGWHHD"]``); None for EIA's default set.
        tz: time zone of the dates and of the returned times (default UTC, EIA's period dates).
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: a :class:`~hmco.lake.Lake` to read and fill (default the profile's).
        pandas: return a ``pandas.DataFrame`` instead of polars.
        refresh: fetch the range again even where the lake has it (EIA revises recent data).
        base_url: the EIA API root (a mirror, proxy or test server).
        params: further keyword arguments of :class:`~hmco.sources.eia.EIA` (e.g. ``{"page_length": 1000}``).

    Returns:
        The dataset's columns (``ts``, ``region``, ``series``, ``value``, ``units`` …), sorted by time.

    Raises:
        ConfigError: unknown route, or a facet the route does not have.
        AuthenticationError: no EIA key (``HMCO_SOURCES__EIA_API_KEY``) when data must be fetched.
        QualityGateFailed, PipelineError: a fetch failed (the message names the window).

    Examples:
        >>> import hmco
        >>> mix = hmco.eia("daily_fuel", "2026-07-01", "2026-08-01", respondents="CISO")  # doctest: +SKIP
        >>> mix.pivot(on="series", index="ts", values="value", aggregate_function="sum")  # doctest: +SKIP
    """
    key = str(route).strip().strip("/").lower()
    if key not in _EIA_NAMES:
        raise ConfigError(f"eia: unknown route {route!r}; choose one of {sorted(_EIA_NAMES)}")
    dataset, forced = _EIA_NAMES[key]
    facets = {
        "respondents": _listed(respondents, upper=True),
        "fueltypes": _listed(fueltypes, upper=True),
        "types": _listed(types, upper=True),
        "timezones": _listed(timezones),
        "series": _listed(series, upper=True),
    }
    selection: dict[str, Any] = {k: v for k, v in facets.items() if v is not None}
    if forced is not None:
        selection["route"] = forced
    rows = {_EIA_COLUMNS[k]: v for k, v in facets.items() if v is not None}
    if dataset == "eia_spot_prices" and "series" not in rows:
        from hmco.sources.eia import DEFAULT_SPOT_SERIES

        rows["series"] = list(DEFAULT_SPOT_SERIES)
    read = _through("eia", dataset, selection, rows=rows, params=params, base_url=base_url)
    return _frame(read, start, end, tz, ("ts", *rows), settings, lake, refresh, pandas)


def fred(
    series_ids: Sequence[str] | str,
    start: Day,
    end: Day | None = None,
    *,
    tz: str = "UTC",
    settings: Settings | None = None,
    lake: Lake | None = None,
    pandas: bool = False,
    refresh: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """FRED observations of one or more series as a data frame, read through the lake.

    Args:
        series_ids: FRED series ids (``"DCOILWTICO"`` or ``["DCOILWTICO", "DHHNGSP"]``).
        start: first observation date (``"2026-01-01"``, a ``date``) or an instant.
        end: end of the range, exclusive; default one day after ``start``.
        tz: time zone of the dates and of ``ts`` (default UTC: FRED dates are zone-less calendar days).
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: a :class:`~hmco.lake.Lake` to read and fill (default the profile's).
        pandas: return a ``pandas.DataFrame`` instead of polars.
        refresh: fetch the range again even where the lake has it (FRED revises series).
        base_url: the FRED API root (a mirror, proxy or test server).
        params: further keyword arguments of :class:`~hmco.sources.fred.FRED` (e.g. ``{"http": {...}}``).

    Returns:
        ``ts``, ``series_id``, ``value``, ``realtime_start``, ``realtime_end``, sorted by series and time;
        a missing observation (FRED's ``"."``) is a null ``value``.

    Raises:
        ConfigError: no or malformed series ids.
        AuthenticationError: no FRED key (``HMCO_SOURCES__FRED_API_KEY``) when data must be fetched.
        QualityGateFailed, PipelineError: a fetch failed (the message names the window).

    Examples:
        >>> import hmco
        >>> oil = hmco.fred(["DCOILWTICO", "DCOILBRENTEU"], "2026-01-01", "2026-07-01")  # doctest: +SKIP
        >>> oil.pivot(on="series_id", index="ts", values="value")  # doctest: +SKIP
    """
    ids = _listed(series_ids, upper=True)
    if not ids:
        raise ConfigError("fred: give at least one series id, e.g. 'DCOILWTICO'")
    read = _through(
        "fred",
        "fred_observations",
        {"series_ids": ids},
        rows={"series_id": ids},
        params=params,
        base_url=base_url,
    )
    return _frame(read, start, end, tz, ("series_id", "ts"), settings, lake, refresh, pandas)


def noaa(
    stations: Sequence[str] | str,
    start: Day,
    end: Day | None = None,
    *,
    daily: bool = False,
    datatypes: Values = None,
    tz: str = "UTC",
    settings: Settings | None = None,
    lake: Lake | None = None,
    pandas: bool = False,
    refresh: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """NOAA weather as a data frame, read through the lake: hourly station observations or GHCN-Daily.

    Args:
        stations: weather.gov station ids (``["KNYC", "KORD"]``) for hourly observations, or with
            ``daily=True`` GHCN-Daily stations (``"USW00094728"``, ``GHCND:`` is added).
        start: first day (``"2026-11-01"``, a ``date``) or an instant.
        end: end of the range, exclusive; default one day after ``start``.
        daily: read GHCN-Daily values (NCEI CDO, needs ``HMCO_SOURCES__NOAA_TOKEN``) instead of hourly
            observations.
        datatypes: GHCN-Daily elements (``["TMAX", "TMIN", "PRCP"]``); None for all.
        tz: time zone of the dates and of ``ts`` (default UTC).
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: a :class:`~hmco.lake.Lake` to read and fill (default the profile's).
        pandas: return a ``pandas.DataFrame`` instead of polars.
        refresh: fetch the range again even where the lake has it.
        base_url: the API root (weather.gov, or the CDO root with ``daily``; a mirror or test server).
        params: further keyword arguments of :class:`~hmco.sources.noaa.NOAA`.

    Returns:
        Hourly: ``ts``, ``station``, ``temperature_c``, ``dewpoint_c``, wind, pressure … per observation.
        Daily: ``ts``, ``station``, ``datatype``, ``value``, ``units`` and the GHCN flags.

    Raises:
        ConfigError: no stations.
        QualityGateFailed, PipelineError: a fetch failed (the message names the window).

    Examples:
        >>> import hmco
        >>> obs = hmco.noaa(["KNYC", "KORD"], "2026-11-01", "2026-11-08")  # doctest: +SKIP
        >>> obs.group_by("station").agg(obs["temperature_c"].mean())  # doctest: +SKIP
    """
    listed = _listed(stations, upper=True)
    if not listed:
        raise ConfigError("noaa: give at least one station, e.g. 'KNYC' (or 'USW00094728' with daily=True)")
    ids = sorted({s if ":" in s or not daily else f"GHCND:{s}" for s in listed})
    kinds = _listed(datatypes, upper=True) if daily else None
    if datatypes is not None and not daily:
        raise ConfigError("noaa: datatypes select GHCN-Daily elements; pass daily=True")
    dataset = "noaa_ghcnd_daily" if daily else "noaa_observations"
    rows: dict[str, list[str]] = {"station": ids}
    if kinds:
        rows["datatype"] = kinds
    selection: dict[str, Any] = {"stations": ids}
    if kinds:
        selection["datatypes"] = kinds
    read = _through("noaa", dataset, selection, rows=rows, params=params, base_url=base_url)
    return _frame(read, start, end, tz, ("station", "ts", *rows), settings, lake, refresh, pandas)


def census(
    program: str,
    start: Day,
    end: Day | None = None,
    *,
    predicates: Mapping[str, str] | None = None,
    frequency: str = "monthly",
    tz: str = "UTC",
    settings: Settings | None = None,
    lake: Lake | None = None,
    pandas: bool = False,
    refresh: bool = False,
    base_url: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """A Census economic time series (EITS programs such as retail trade) as a data frame, read through the lake.

    Args:
        program: the time-series program (``"eits/marts"`` monthly retail trade, ``"eits/resconst"`` …).
        start: first day of the range (``"2024-01-01"``); months are dated by their first day.
        end: end of the range, exclusive; default one day after ``start``.
        predicates: filters on the program's rows: ``category_code``, ``data_type_code``,
            ``seasonally_adj`` (e.g. ``{"category_code": "44X72", "seasonally_adj": "yes"}``).
        frequency: ``"monthly"`` (default), ``"quarterly"`` or ``"annual"``.
        tz: time zone of the dates and of ``ts`` (default UTC).
        settings: a :class:`~hmco.config.Settings` profile (default ``Settings.load()``).
        lake: a :class:`~hmco.lake.Lake` to read and fill (default the profile's).
        pandas: return a ``pandas.DataFrame`` instead of polars.
        refresh: fetch the range again even where the lake has it (Census revises recent months).
        base_url: the Census Data API root (a mirror, proxy or test server).
        params: further keyword arguments of :class:`~hmco.sources.census.Census`.

    Returns:
        ``ts``, ``program``, ``time``, ``category_code``, ``data_type_code``, ``seasonally_adj``,
        ``geo_id``, ``value`` …, sorted by time. For ACS estimates use a pipeline spec (``census_acs``).

    Raises:
        ConfigError: a predicate that is not one of the three above.
        QualityGateFailed, PipelineError: a fetch failed (the message names the window).

    Examples:
        >>> import hmco
        >>> sales = hmco.census("eits/marts", "2024-01-01", "2025-01-01",
        ...                     predicates={"category_code": "44X72", "seasonally_adj": "yes"})  # doctest: +SKIP
    """
    chosen = {str(k): str(v) for k, v in (predicates or {}).items()}
    unknown = sorted(set(chosen) - _CENSUS_PREDICATES)
    if unknown:
        raise ConfigError(
            f"census: predicates {unknown} cannot select rows; use {sorted(_CENSUS_PREDICATES)}"
        )
    program = str(program).strip().strip("/")
    rows: dict[str, list[str]] = {"program": [program], **{k: [v] for k, v in chosen.items()}}
    selection = {"program": program, "frequency": frequency, "predicates": chosen}
    read = _through(
        "census",
        "census_timeseries",
        selection,
        rows=rows,
        params=params,
        base_url=base_url,
    )
    return _frame(read, start, end, tz, ("ts", *rows), settings, lake, refresh, pandas)
