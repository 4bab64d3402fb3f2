"""Node catalogues per ISO through ``hmco.sources.nodes.nodes``: fetched from the replay server in the
sources' wire formats, archived in the lake's raw tier, and read back from there while fresh."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hmco.config import Settings
from hmco.errors import ConfigError, PayloadError
from hmco.lake import Lake
from hmco.sinks.raw import RawArchive
from hmco.sources.caiso.parser import location_types as caiso_types
from hmco.sources.miso import MISO
from hmco.sources.miso import location_types as miso_types
from hmco.sources.nodes import (
    CAISO_LOCATION_TYPES,
    MISO_LOCATION_TYPES,
    SPP_LOCATION_TYPES,
    UNKNOWN,
    nodes,
)
from hmco.sources.spp import location_types as spp_types
from hmco.windows import Window
from tests.support.replay import PAYLOADS, ReplayServer, Reply

NOW = datetime(2026, 7, 27, 18, 0, tzinfo=UTC)
NODE_LIST_PATH = "/marketreports/20260727_da_expost_lmp.csv"
MAP = "/arcgis/rest/services/MarketMaps/RTBM_FeatureData/MapServer"


@pytest.fixture
def archive(settings: Settings) -> RawArchive:
    return RawArchive(Lake(settings))


def _miso_params(replay: ReplayServer) -> dict[str, object]:
    return {
        "base_url": f"{replay.url}/api",
        "reports_url": f"{replay.url}/marketreports",
        "http": {"min_interval": 0},
        "now": lambda: NOW,
    }


def _serve_miso(replay: ReplayServer, body: bytes | None = None) -> None:
    node_list = (
        body if body is not None else PAYLOADS.joinpath("miso/da_expost_lmp_20260727.csv").read_bytes()
    )
    replay.add(NODE_LIST_PATH, Reply(body=node_list, content_type="text/csv"))


def _node_list_requests(replay: ReplayServer) -> int:
    return len(replay.requests_to(NODE_LIST_PATH))


def test_miso_catalogue_is_fetched_archived_and_read_back_while_fresh(
    replay: ReplayServer, settings: Settings, archive: RawArchive
) -> None:
    _serve_miso(replay)
    first = nodes("miso", settings=settings, archive=archive, as_of=NOW, **_miso_params(replay))
    again = nodes("MISO", settings=settings, archive=archive, as_of=NOW, **_miso_params(replay))

    assert first.column_names == ["location", "location_type", "market_day"]
    assert dict(zip(first["location"].to_pylist(), first["location_type"].to_pylist(), strict=True)) == {
        "AECI": "Interface",
        "AECI.ALTW": "Loadzone",
        "ALTW.WELLS1": "Gennode",
        "ARKANSAS.HUB": "Hub",
        "EES.KRBYVLE.AZ": "Gennode",
        "INDIANA.HUB": "Hub",
    }
    assert again.equals(first)
    assert _node_list_requests(replay) == 1  # the second call is served from the raw tier
    (key,) = archive.keys("miso", "nodes")
    assert archive.get(key).body == PAYLOADS.joinpath("miso/da_expost_lmp_20260727.csv").read_bytes()


def test_refresh_or_a_stale_copy_fetches_the_catalogue_again(
    replay: ReplayServer, settings: Settings, archive: RawArchive
) -> None:
    _serve_miso(replay)
    nodes("MISO", settings=settings, archive=archive, **_miso_params(replay))
    nodes("MISO", settings=settings, archive=archive, refresh=True, **_miso_params(replay))
    assert _node_list_requests(replay) == 2
    later = datetime.now(UTC) + timedelta(hours=13)
    nodes("MISO", settings=settings, archive=archive, as_of=later, **_miso_params(replay))
    assert _node_list_requests(replay) == 3


def test_without_an_archive_every_call_fetches(replay: ReplayServer, settings: Settings) -> None:
    _serve_miso(replay)
    nodes("MISO", settings=settings, **_miso_params(replay))
    nodes("MISO", settings=settings, **_miso_params(replay))
    assert _node_list_requests(replay) == 2


def test_node_list_archived_by_the_price_path_serves_the_catalogue(
    replay: ReplayServer, settings: Settings, archive: RawArchive
) -> None:
    _serve_miso(replay)
    replay.add(
        "/api/MarketPricing/GetRealTimeFiveMinExPost/Rolling", Reply.file("miso/rolling_20260727.json")
    )
    with MISO(settings=settings, **_miso_params(replay)) as source:  # type: ignore[arg-type]
        for payload in source.fetch(Window(datetime(2026, 7, 27, 13, tzinfo=UTC), NOW)):
            archive.put(payload)  # what the window processor does with every payload
    table = nodes("MISO", settings=settings, archive=archive, **_miso_params(replay))
    assert table.num_rows == 6
    assert _node_list_requests(replay) == 1


def test_malformed_catalogue_is_a_typed_error_and_its_bytes_are_archived(
    replay: ReplayServer, settings: Settings, archive: RawArchive
) -> None:
    _serve_miso(replay, body=b"<html><body>Service Unavailable</body></html>")
    with pytest.raises(PayloadError, match="HTML page"):
        nodes("MISO", settings=settings, archive=archive, **_miso_params(replay))
    (key,) = archive.keys("miso", "nodes")
    assert archive.get(key).body.startswith(b"<html>")
    # the bad copy is not trusted later: the next call fetches (and fails) again
    with pytest.raises(PayloadError):
        nodes("MISO", settings=settings, archive=archive, **_miso_params(replay))
    assert _node_list_requests(replay) == 2


def test_spp_catalogue_through_nodes(replay: ReplayServer, settings: Settings, archive: RawArchive) -> None:
    replay.add(
        "/file-browser-api/download/rtbm-lmp-by-location",
        Reply.file("spp/RTBM-LMP-SL-latestInterval.csv"),
        match={"path": "/RTBM-LMP-SL-latestInterval.csv"},
    )
    replay.add(f"{MAP}/1/query", Reply.file("spp/price_map_hubs.json"))
    replay.add(f"{MAP}/2/query", Reply.file("spp/price_map_interfaces.json"))
    params = {
        "base_url": f"{replay.url}/file-browser-api",
        "map_url": f"{replay.url}{MAP}",
        "http": {"min_interval": 0},
    }
    table = nodes("SPP", settings=settings, archive=archive, **params)
    hubs = table.filter(pc.equal(table["location_type"], "Hub"))["location"].to_pylist()
    assert hubs == ["SPPNORTH_HUB", "SPPSOUTH_HUB"]
    assert len(archive.keys("spp", "nodes")) == 3
    assert nodes("SPP", settings=settings, archive=archive, **params).equals(table)
    assert len(replay.requests) == 3


def _atl_zip(queryname: str, header: str, rows: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            f"20260727_20260728_{queryname}_20260727_18_00_01_v1.csv", "\n".join([header, *rows]) + "\n"
        )
    return buf.getvalue()


def test_caiso_catalogue_through_nodes(replay: ReplayServer, settings: Settings, archive: RawArchive) -> None:
    zip_type = "application/x-zip-compressed"
    apnodes = _atl_zip("ATL_APNODE", "APNODE_ID,APNODE_TYPE", ["TH_ZP26_GEN-APND,TH", "DLAP_SCE-APND,LAP"])
    pnodes = _atl_zip("ATL_PNODE", "PNODE_ID,PNODE_TYPE", ["CAPTJACK_5_N003,GEN"])
    replay.add(
        "/oasisapi/SingleZip", Reply(body=apnodes, content_type=zip_type), match={"queryname": "ATL_APNODE"}
    )
    replay.add(
        "/oasisapi/SingleZip", Reply(body=pnodes, content_type=zip_type), match={"queryname": "ATL_PNODE"}
    )
    params = {"base_url": f"{replay.url}/oasisapi", "http": {"min_interval": 0}}
    table = nodes("caiso", settings=settings, archive=archive, **params)
    assert table.select(["location", "location_type", "oasis_type"]).to_pylist() == [
        {"location": "CAPTJACK_5_N003", "location_type": "Node", "oasis_type": "GEN"},
        {"location": "DLAP_SCE-APND", "location_type": "DLAP", "oasis_type": "LAP"},
        {"location": "TH_ZP26_GEN-APND", "location_type": "Trading Hub", "oasis_type": "TH"},
    ]
    assert len(archive.keys("caiso", "nodes")) == 2


def test_an_iso_without_a_catalogue_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="CAISO"):
        nodes("ERCOT", settings=settings)


def test_price_parsers_only_emit_the_documented_labels() -> None:
    caiso = caiso_types(pa.array(["TH_NP15_GEN-APND", "DLAP_PGAE-APND", "SLAP_PGCC-APND", "0096WD_7_N001"]))
    assert caiso.to_pylist() == ["Trading Hub", "DLAP", "AP Node", "Node"]
    assert set(caiso.to_pylist()) == set(CAISO_LOCATION_TYPES.values())
    spp = spp_types(pa.array(["SPPNORTH_HUB", "AECI", "OKGE.OKGE"]))
    assert spp.to_pylist() == ["Hub", "Interface", "Settlement Location"]
    assert set(spp.to_pylist()) == set(SPP_LOCATION_TYPES.values())
    listed = pa.table({"location": ["A", "B"], "location_type": ["Loadzone", "Gennode"]})
    miso = miso_types(pa.array(["A", "B", "C"]), listed)
    assert miso.to_pylist() == ["Loadzone", "Gennode", UNKNOWN]
    assert {"Loadzone", "Gennode"} <= set(MISO_LOCATION_TYPES.values())
