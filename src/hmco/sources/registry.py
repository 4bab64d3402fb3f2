"""The one list of sources: registry name → module, class, datasets and (real-time ISOs) ISO code.

Everything that names a source derives from here: ``hmco.sources.<Class>`` (lazy attribute access),
:func:`get_source_class` (UIS specs, ``hmco archive --replay``, ``hmco rt run``) and
:func:`realtime_isos` (the CLI's default ``--isos``). Nothing is imported until a class is asked for,
so ``import hmco.sources`` stays light. A source of your own joins with ``@register_source``::

    @register_source
    class DeskMarks(Source):
        name = "desk_marks_csv"
        datasets = ("desk_marks",)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hmco.errors import ConfigError

if TYPE_CHECKING:
    from hmco.sources.base import Source

__all__ = [
    "BUILTIN_SOURCES",
    "SourceEntry",
    "get_source_class",
    "lazy_classes",
    "lazy_getattr",
    "realtime_isos",
    "register_source",
    "source_entry",
    "source_names",
]

S = TypeVar("S", bound="type[Source]")


@dataclass(frozen=True)
class SourceEntry:
    """One registered source.

    Attributes:
        name: registry key, the ``type`` of a UIS spec (``caiso``).
        module: where the class lives (``hmco.sources.caiso``); imported on first use only.
        class_name: the class in that module (``CAISO``), also ``hmco.sources.<class_name>``.
        datasets: the canonical datasets it produces, the default first.
        iso: the ISO code of a real-time ISO source (its rows' ``iso`` value), else ``None``.
    """

    name: str
    module: str
    class_name: str
    datasets: tuple[str, ...]
    iso: str | None = None


#: The sources shipped with hmco. A class's ``name`` and ``datasets`` must match its entry
#: (tests/test_source_registry.py holds them together).
BUILTIN_SOURCES: tuple[SourceEntry, ...] = (
    SourceEntry(
        "eia",
        "hmco.sources.eia",
        "EIA",
        ("eia_daily_fuel", "eia_hourly_fuel", "eia_hourly_region", "eia_spot_prices"),
    ),
    SourceEntry("fred", "hmco.sources.fred", "FRED", ("fred_observations",)),
    SourceEntry("noaa", "hmco.sources.noaa", "NOAA", ("noaa_observations", "noaa_ghcnd_daily")),
    SourceEntry("census", "hmco.sources.census", "Census", ("census_timeseries", "census_acs")),
    SourceEntry("caiso", "hmco.sources.caiso", "CAISO", ("rt_lmp", "da_lmp"), iso="CAISO"),
    SourceEntry("miso", "hmco.sources.miso", "MISO", ("rt_lmp",), iso="MISO"),
    SourceEntry("spp", "hmco.sources.spp", "SPP", ("rt_lmp",), iso="SPP"),
    SourceEntry("synthetic_iso", "hmco.sources.synthetic", "SyntheticISO", ("rt_lmp",)),
    SourceEntry(
        "synthetic_eia_daily_fuel", "hmco.sources.synthetic", "SyntheticEIADailyFuel", ("eia_daily_fuel",)
    ),
)

_entries: dict[str, SourceEntry] = {e.name: e for e in BUILTIN_SOURCES}
_classes: dict[str, type[Source]] = {}


def register_source(cls: S, *, iso: str | None = None) -> S:
    """Class decorator: make a source available to UIS specs and the CLI under ``cls.name``.

    ``register_source(cls, iso="ERCOT")`` also lists it among :func:`realtime_isos`. Registering a
    name again replaces the earlier class.
    """
    _entries[cls.name] = SourceEntry(cls.name, cls.__module__, cls.__qualname__, tuple(cls.datasets), iso)
    _classes[cls.name] = cls
    return cls


def source_entry(name: str) -> SourceEntry:
    """The registry entry of ``name`` (no import).

    Raises:
        ConfigError: no source of that name, naming the known ones.
    """
    try:
        return _entries[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r}; known: {', '.join(source_names())}") from None


def source_names() -> list[str]:
    """Every registered source name, sorted."""
    return sorted(_entries)


def get_source_class(name: str) -> type[Source]:
    """The class registered as ``name``, importing its module on first use.

    Raises:
        ConfigError: unknown name, or a module that does not hold the class its entry names.
    """
    cls = _classes.get(name)
    if cls is not None:
        return cls
    entry = source_entry(name)
    module = importlib.import_module(entry.module)
    cls = _classes.get(name) or getattr(module, entry.class_name, None)
    if cls is None or getattr(cls, "name", None) != name:
        raise ConfigError(
            f"source registry entry {name!r} names {entry.module}.{entry.class_name}, "
            f"which is not a source called {name!r}"
        )
    _classes[name] = cls
    return cls


def realtime_isos() -> dict[str, str]:
    """Real-time ISO sources as ``{source name: ISO code}``, in registry order (``caiso``, ``miso``, ``spp``)."""
    return {e.name: e.iso for e in _entries.values() if e.iso}


def lazy_classes() -> dict[str, str]:
    """``class name → module`` of the built-in sources, for ``hmco.sources.<Class>``."""
    return {e.class_name: e.module for e in BUILTIN_SOURCES}


def lazy_getattr(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports ``modules[name]`` when ``name`` is first asked for.

    Only names the package does not define reach it: ``hmco.sources`` maps its source classes to their
    modules, and a split source package (``hmco.sources.eia``) maps its ``__all__`` to its ``.client``,
    so importing the package or its pure parser never loads an HTTP library.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
