"""The one source registry (src/hmco/sources/registry.py) and the source packages' public surface."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import hmco.sources
from hmco.compose.spec import load_spec
from hmco.errors import ConfigError
from hmco.schemas import RT_LMP
from hmco.sources import registry
from hmco.sources.base import RawPayload, Source, get_source_class, register_source
from hmco.windows import Window

SOURCES_DIR = Path(hmco.sources.__file__).parent
SPLIT = ("eia", "noaa", "census", "caiso")
HTTP_MODULES = ("httpx", "tenacity", "hmco.sources.http")

#: the public names each source module exported before it became a package; they must keep working
PUBLIC_BEFORE_SPLIT = {
    "eia": [
        "DEFAULT_BASE_URL",
        "EIA",
        "MAX_PAGE_LENGTH",
        "MIN_INTERVAL",
        "ROUTES",
        "EIAPage",
        "EIARoute",
        "parse_eia",
        "read_page",
        "spot_route_for",
        "SPOT_ROUTES",
        "DEFAULT_SPOT_SERIES",
    ],
    "noaa": [
        "CDO_BASE_URL",
        "NOAA",
        "WEATHER_BASE_URL",
        "check_cdo_response",
        "check_weather_response",
        "parse_ghcnd_daily",
        "parse_observations",
        "CDO_MIN_INTERVAL",
        "WEATHER_MIN_INTERVAL",
        "CDO_MAX_LIMIT",
        "WEATHER_MAX_LIMIT",
        "GHCND",
        "OBSERVATIONS",
        "REJECTED_QC",
        "cdo_result_count",
        "cdo_date_chunks",
        "observations_cursor",
    ],
    "census": [
        "ACS_SENTINELS",
        "BASE_URL",
        "Census",
        "check_census_response",
        "parse_acs",
        "parse_timeseries",
        "period_starts",
        "MAX_VARIABLES",
        "MIN_INTERVAL",
        "ACS",
        "TIMESERIES",
        "EITS_VARIABLES",
        "GEOGRAPHY_NAMES",
        "time_predicate",
        "variable_chunks",
    ],
    "caiso": [
        "CAISO",
        "DEFAULT_BASE_URL",
        "DEFAULT_NODES",
        "MIN_INTERVAL",
        "OASIS_ERRORS",
        "REPORTS",
        "OasisReport",
        "is_throttle_page",
        "oasis_error_of",
        "parse_oasis_lmp",
        "parse_payload",
        "trade_date_window",
        "THROTTLE_RETRY_SECONDS",
        "THROTTLE_MARKER",
        "MAX_NODES_PER_REQUEST",
        "MAX_REQUEST_WINDOW",
        "MAX_GROUP_WINDOW_INTERVAL",
        "PACIFIC",
        "GROUP_TYPES",
        "COMPONENTS",
        "OasisError",
    ],
}


# --- the registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", registry.BUILTIN_SOURCES, ids=lambda e: e.name)
def test_builtin_entry_matches_its_class(entry: registry.SourceEntry) -> None:
    cls = get_source_class(entry.name)
    assert issubclass(cls, Source)
    assert cls.name == entry.name
    assert cls.datasets == entry.datasets
    assert getattr(importlib.import_module(entry.module), entry.class_name) is cls


@pytest.mark.parametrize("entry", registry.BUILTIN_SOURCES, ids=lambda e: e.name)
def test_lazy_attribute_of_hmco_sources_is_the_registered_class(entry: registry.SourceEntry) -> None:
    assert getattr(hmco.sources, entry.class_name) is get_source_class(entry.name)
    assert entry.class_name in hmco.sources.__all__


def test_realtime_isos_are_caiso_miso_and_spp_with_their_row_iso_codes() -> None:
    assert hmco.sources.realtime_isos() == {"caiso": "CAISO", "miso": "MISO", "spp": "SPP"}
    allowed = RT_LMP.allowed_values["iso"]
    for name, iso in hmco.sources.realtime_isos().items():
        assert iso in allowed
        assert "rt_lmp" in get_source_class(name).datasets


def test_unknown_name_is_a_config_error_naming_every_known_source() -> None:
    with pytest.raises(ConfigError, match=r"unknown source 'nope'; known: .*caiso.*synthetic_iso"):
        get_source_class("nope")


def test_entry_is_known_without_importing_the_source() -> None:
    code = (
        "import sys; from hmco.sources import source_entry; e = source_entry('census');"
        "print(e.datasets[0], 'hmco.sources.census' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["census_timeseries", "False"]


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_classes", dict(registry._classes))


class _DeskFeed(Source):
    name = "desk_feed_test"
    datasets = ("rt_lmp",)

    def fetch(self, window: Window):  # type: ignore[no-untyped-def]
        yield RawPayload(source=self.name, dataset=self.dataset.name, body=b"")

    def parse(self, payload: RawPayload):  # type: ignore[no-untyped-def]
        return RT_LMP.schema.empty_table()


@pytest.mark.usefixtures("isolated_registry")
def test_register_source_makes_a_custom_class_known_to_specs() -> None:
    assert register_source(_DeskFeed) is _DeskFeed
    assert get_source_class("desk_feed_test") is _DeskFeed
    spec = load_spec({"name": "desk", "source": {"type": "desk_feed_test"}})
    assert spec.dataset_name == "rt_lmp"
    assert "desk_feed_test" not in hmco.sources.realtime_isos()


@pytest.mark.usefixtures("isolated_registry")
def test_register_source_with_an_iso_code_lists_it_among_realtime_isos() -> None:
    register_source(_DeskFeed, iso="DESK")
    assert hmco.sources.realtime_isos() == {
        "caiso": "CAISO",
        "miso": "MISO",
        "spp": "SPP",
        "desk_feed_test": "DESK",
    }


# --- the split source packages ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLIC_BEFORE_SPLIT))
def test_split_package_still_exports_every_public_name(name: str) -> None:
    module = importlib.import_module(f"hmco.sources.{name}")
    missing = [n for n in PUBLIC_BEFORE_SPLIT[name] if getattr(module, n, None) is None]
    assert missing == []
    assert set(PUBLIC_BEFORE_SPLIT[name]) <= set(module.__all__)


@pytest.mark.parametrize("name", SPLIT)
def test_parser_module_imports_no_http_library(name: str) -> None:
    tree = ast.parse((SOURCES_DIR / name / "parser.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {m for m in imported for h in (*HTTP_MODULES, f"hmco.sources.{name}.client") if m.startswith(h)}
    assert bad == set()


@pytest.mark.parametrize("name", SPLIT)
def test_importing_a_parser_loads_no_http_library(name: str) -> None:
    code = (
        f"import sys; import hmco.sources.{name}.parser;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'tenacity') "
        f"or m in ('hmco.sources.http', 'hmco.sources.{name}.client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
