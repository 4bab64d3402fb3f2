"""SPP RTBM 5-minute LMP files, end to end against the replay server (reference §7)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hmco.errors import AuthenticationError, NoData, PayloadError, RequestRejected, SchemaDriftError
from hmco.schemas import get_dataset
from hmco.sources.base import Source, get_source_class
from hmco.sources.http import HttpOptions
from hmco.sources.spp import SPP, interval_file_path, interval_file_paths, parse_spp_rtbm_lmp
from hmco.windows import Window
from tests.support.replay import PAYLOADS, ReplayServer, Reply

DOWNLOAD = "/file-browser-api/download/rtbm-lmp-by-location"
CENTRAL = ZoneInfo("America/Chicago")
HEADER = "Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC,MEC,BAA"


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _spp(replay: ReplayServer, settings, **kw) -> SPP:  # type: ignore[no-untyped-def]
    return SPP(settings=settings, base_url=f"{replay.url}/file-browser-api", http={"min_interval": 0}, **kw)


def _read(source: Source, window: Window) -> pa.Table:
    return pa.concat_tables([source.parse(p) for p in source.fetch(window)])


def _interval_file(end: datetime, nodes: tuple[str, ...] = ("SPPNORTH_HUB", "OKGE.OKGE")) -> bytes:
    """An RTBM-LMP-SL interval file in the wire format, prices keyed to the UTC end minute."""
    local = end.astimezone(CENTRAL).strftime("%m/%d/%Y %H:%M:%S")
    gmt = end.astimezone(UTC).strftime("%m/%d/%Y %H:%M:%S")
    price = end.hour * 100 + end.minute
    lines = [HEADER] + [f"{local},{gmt},{n},{n[:10]},{price}.5,0,0.5,{price},SPP" for n in nodes]
    return ("\r\n".join(lines) + "\r\n").encode()


def _local_day(day: date) -> Window:
    start = datetime(day.year, day.month, day.day, tzinfo=CENTRAL)
    return Window(start, datetime.combine(day + timedelta(days=1), datetime.min.time(), CENTRAL))


def _serve_day(replay: ReplayServer, window: Window) -> list[str]:
    paths = []
    for end, path in interval_file_paths(window):
        replay.add(DOWNLOAD, Reply(body=_interval_file(end), content_type="text/csv"), match={"path": path})
        paths.append(path)
    return paths


def test_registered_under_spp() -> None:
    assert get_source_class("spp") is SPP


def test_interval_file_reads_into_canonical_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    path = "/2026/07/By_Interval/27/RTBM-LMP-SL-202607271625.csv"
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-SL-202607271625.csv"), match={"path": path})
    with _spp(replay, settings) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25)))
    assert [r.param("path") for r in replay.requests] == [path]
    assert table.schema.equals(get_dataset("rt_lmp").schema)
    assert table.num_rows == 4
    assert table.slice(2, 1).to_pylist()[0] == {
        "ts": _utc(2026, 7, 27, 21, 20),
        "interval_end": _utc(2026, 7, 27, 21, 25),
        "iso": "SPP",
        "market": "RT5",
        "node": "OKGE.OKGE",
        "node_type": "Settlement Location",
        "lmp": 18.8,
        "energy": 18.0,
        "congestion": 1.0,
        "loss": -0.2,
        "ghg": None,
        "published_at": None,  # the parser leaves it unset; the window processor stamps it
    }


def test_node_types_hub_interface_and_settlement_location() -> None:
    table = parse_spp_rtbm_lmp(PAYLOADS.joinpath("spp/RTBM-LMP-SL-202607271625.csv").read_bytes())
    assert dict(zip(table["node"].to_pylist(), table["node_type"].to_pylist(), strict=True)) == {
        "SPPNORTH_HUB": "Hub",
        "AECI": "Interface",
        "OKGE.OKGE": "Settlement Location",
        "WACM.WACM": "Settlement Location",
    }


def test_pre_expansion_header_without_baa_parses() -> None:
    table = parse_spp_rtbm_lmp(
        PAYLOADS.joinpath("spp/RTBM-LMP-SL-202607271630-pre-expansion.csv").read_bytes()
    )
    assert table.num_rows == 4
    assert table["ts"].to_pylist() == [_utc(2026, 7, 27, 21, 25)] * 4
    assert table["lmp"].to_pylist() == [19.0, 19.4, 19.8, 20.2]


def test_upper_snake_reordered_header_parses_like_canonical() -> None:
    canonical = parse_spp_rtbm_lmp(PAYLOADS.joinpath("spp/RTBM-LMP-SL-202607271625.csv").read_bytes())
    snake = parse_spp_rtbm_lmp(PAYLOADS.joinpath("spp/RTBM-LMP-SL-202607271625-upper-snake.csv").read_bytes())
    assert snake.to_pylist() == canonical.to_pylist()


def test_padded_cells_are_trimmed() -> None:
    body = (
        b"Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC,MEC\n"
        b"07/27/2026 16:25:00, 07/27/2026 21:25:00 , SPPSOUTH_HUB ,X, 21.5 , -0.5, 1.0, 21.0\n"
    )
    (row,) = parse_spp_rtbm_lmp(body).to_pylist()
    assert (row["ts"], row["node"], row["node_type"], row["lmp"], row["loss"]) == (
        _utc(2026, 7, 27, 21, 20),
        "SPPSOUTH_HUB",
        "Hub",
        21.5,
        -0.5,
    )


def test_daily_file_with_spaced_headers_filters_to_window(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    path = "/2026/07/By_Day/RTBM-LMP-DAILY-SL-20260726.csv"
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-DAILY-SL-20260726.csv"), match={"path": path})
    window = Window(_utc(2026, 7, 26, 12), _utc(2026, 7, 26, 13))
    with _spp(replay, settings, use_daily_files=True) as src:
        table = _read(src, window)
    assert [r.param("path") for r in replay.requests] == [path]
    assert table.num_rows == 24
    assert min(table["ts"].to_pylist()) == _utc(2026, 7, 26, 12, 0)
    assert max(table["ts"].to_pylist()) == _utc(2026, 7, 26, 12, 55)
    # 12:00Z = 07:00 CDT = interval index 84 of the local day: MEC 20 + 0.84
    first_hub = table.filter(pc.equal(table["node"], "SPPNORTH_HUB")).slice(0, 1).to_pylist()[0]
    assert first_hub["energy"] == pytest.approx(20.84)


def test_spring_forward_day_has_276_intervals_and_skips_2am(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    window = _local_day(date(2026, 3, 8))
    paths = _serve_day(replay, window)
    with _spp(replay, settings) as src:
        table = _read(src, window)
    requested = [r.param("path") or "" for r in replay.requests]
    assert len(requested) == 276
    assert requested == paths
    assert not [p for p in requested if p[-8:-6] == "02" and "20260308" in p]
    assert "/2026/03/By_Interval/08/RTBM-LMP-SL-202603080155.csv" in requested
    assert "/2026/03/By_Interval/08/RTBM-LMP-SL-202603080300.csv" in requested
    assert table.num_rows == 276 * 2
    stamps = sorted(set(table["ts"].to_pylist()))
    assert len(stamps) == 276
    assert (stamps[0], stamps[-1]) == (_utc(2026, 3, 8, 6, 0), _utc(2026, 3, 9, 4, 55))


def test_fall_back_day_has_300_intervals_with_d_suffixed_repeats(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    window = _local_day(date(2026, 11, 1))
    _serve_day(replay, window)
    with _spp(replay, settings) as src:
        table = _read(src, window)
    requested = [r.param("path") or "" for r in replay.requests]
    assert len(requested) == 300
    repeated = [p for p in requested if p.endswith("d.csv")]
    assert repeated == [
        f"/2026/11/By_Interval/01/RTBM-LMP-SL-2026110101{m:02d}d.csv" for m in range(0, 60, 5)
    ]
    assert "/2026/11/By_Interval/01/RTBM-LMP-SL-202611010105.csv" in requested
    assert table.num_rows == 600
    stamps = table.filter(pc.equal(table["node"], "SPPNORTH_HUB"))["ts"].to_pylist()
    assert len(stamps) == len(set(stamps)) == 300
    assert (min(stamps), max(stamps)) == (_utc(2026, 11, 1, 5, 0), _utc(2026, 11, 2, 5, 55))


def test_d_suffix_marks_second_occurrence_of_repeated_hour() -> None:
    assert (
        interval_file_path(_utc(2026, 11, 1, 6, 5)) == "/2026/11/By_Interval/01/RTBM-LMP-SL-202611010105.csv"
    )
    assert (
        interval_file_path(_utc(2026, 11, 1, 7, 5)) == "/2026/11/By_Interval/01/RTBM-LMP-SL-202611010105d.csv"
    )


def test_folder_is_interval_start_date() -> None:
    # interval 23:55-00:00 CDT on 2024-06-30 lives in June's folder 30, named for July 1 00:00
    assert (
        interval_file_path(_utc(2024, 7, 1, 5, 0)) == "/2024/06/By_Interval/30/RTBM-LMP-SL-202407010000.csv"
    )


def test_missing_files_are_recorded_and_the_rest_returned(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    window = Window(_utc(2026, 7, 27, 21, 15), _utc(2026, 7, 27, 21, 30))
    ends = [e for e, _ in interval_file_paths(window)]
    paths = [p for _, p in interval_file_paths(window)]
    replay.add(DOWNLOAD, Reply(404, b"", content_type="text/plain"), match={"path": paths[0]})
    replay.add(
        DOWNLOAD, Reply(body=_interval_file(ends[1]), content_type="text/csv"), match={"path": paths[1]}
    )
    replay.add(DOWNLOAD, Reply(404, b"", content_type="text/plain"), match={"path": paths[2]})
    with _spp(replay, settings) as src:
        payloads = list(src.fetch(window))
        table = pa.concat_tables([src.parse(p) for p in payloads])
    assert [(p.status, p.meta["missing"], p.meta["path"]) for p in payloads] == [
        (404, True, paths[0]),
        (200, False, paths[1]),
        (404, True, paths[2]),
    ]
    assert table.num_rows == 2
    assert set(table["ts"].to_pylist()) == {_utc(2026, 7, 27, 21, 20)}


def test_window_with_every_file_missing_is_no_data(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(DOWNLOAD, Reply(404, b"", content_type="text/plain"))
    with _spp(replay, settings) as src, pytest.raises(NoData) as info:
        list(src.fetch(Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 30))))
    assert "RTBM-LMP-SL-202607271625.csv" in str(info.value)
    assert "RTBM-LMP-SL-202607271630.csv" in str(info.value)


def test_react_shell_html_is_not_data(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(DOWNLOAD, Reply.file("spp/react_shell.html"))
    with _spp(replay, settings) as src:
        (payload,) = src.fetch(Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25)))
        with pytest.raises(PayloadError, match="not data") as info:
            src.parse(payload)
    assert payload.sha256 in str(info.value)


def test_header_only_file_is_empty_table() -> None:
    table = parse_spp_rtbm_lmp((HEADER + "\r\n").encode())
    assert table.num_rows == 0
    assert table.schema.equals(get_dataset("rt_lmp").schema)


def test_missing_mec_column_is_schema_drift() -> None:
    body = (
        b"Interval,GMTIntervalEnd,Settlement Location,Pnode,LMP,MLC,MCC\n"
        b"07/27/2026 16:25:00,07/27/2026 21:25:00,A,A,1,0,0\n"
    )
    with pytest.raises(SchemaDriftError, match="mec"):
        parse_spp_rtbm_lmp(body)


def test_nodes_param_filters_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-SL-202607271625.csv"))
    with _spp(replay, settings, nodes=["SPPNORTH_HUB"]) as src:
        table = _read(src, Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25)))
    assert table["node"].to_pylist() == ["SPPNORTH_HUB"]


def test_nodes_param_given_as_one_string_filters_rows(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    # UIS YAML may pass `nodes: SPPNORTH_HUB`; it is one node, not a list of characters.
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-SL-202607271625.csv"))
    with _spp(replay, settings, nodes="SPPNORTH_HUB") as src:
        table = _read(src, Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25)))
    assert table["node"].to_pylist() == ["SPPNORTH_HUB"]


def test_requests_are_paced_with_injected_sleep(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-SL-202607271625.csv"))
    waits: list[float] = []
    clock = [500.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    src = SPP(
        settings=settings,
        base_url=f"{replay.url}/file-browser-api",
        http=HttpOptions(min_interval=2.0, sleep=sleep, clock=lambda: clock[0]),
    )
    with src:
        list(src.fetch(Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 35))))
    assert waits == [2.0, 2.0]
    assert len(replay.requests) == 3


def test_latest_window_is_newest_published_interval(settings) -> None:  # type: ignore[no-untyped-def]
    src = SPP(settings=settings, base_url="http://127.0.0.1:9", http={"min_interval": 0})
    assert src.latest_window(_utc(2026, 7, 27, 21, 32, 30)) == Window(
        _utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25)
    )
    assert src.paths(src.latest_window(_utc(2026, 7, 27, 21, 32, 30))) == [
        "/2026/07/By_Interval/27/RTBM-LMP-SL-202607271625.csv"
    ]
    src.close()


INTERVAL_PATH = "/2026/07/By_Interval/27/RTBM-LMP-SL-202607271625.csv"
INTERVAL_WINDOW = Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 25))


def test_error_answer_is_yielded_before_it_is_raised(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    replay.add(DOWNLOAD, Reply(403, b"<html>Access denied</html>", content_type="text/html"))
    with _spp(replay, settings) as src:
        fetch = src.fetch(INTERVAL_WINDOW)
        payload = next(fetch)
        assert (payload.status, payload.body) == (403, b"<html>Access denied</html>")
        with pytest.raises(AuthenticationError, match="HTTP 403"):
            next(fetch)
        with pytest.raises(AuthenticationError, match="HTTP 403"):
            src.parse(payload)


def test_last_modified_is_the_payloads_publication_time(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    served = Reply.file(
        "spp/RTBM-LMP-SL-202607271625.csv", **{"Last-Modified": "Mon, 27 Jul 2026 21:27:13 GMT"}
    )
    replay.add(DOWNLOAD, served, match={"path": INTERVAL_PATH})
    with _spp(replay, settings) as src:
        (payload,) = src.fetch(INTERVAL_WINDOW)
    assert payload.published_at == _utc(2026, 7, 27, 21, 27, 13)


def test_without_last_modified_or_for_a_missing_file_there_is_no_publication_time(
    replay: ReplayServer,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    window = Window(_utc(2026, 7, 27, 21, 20), _utc(2026, 7, 27, 21, 30))
    replay.add(DOWNLOAD, Reply.file("spp/RTBM-LMP-SL-202607271625.csv"), match={"path": INTERVAL_PATH})
    replay.add(
        DOWNLOAD,
        Reply(
            404, b"", content_type="text/plain", headers={"Last-Modified": "Mon, 27 Jul 2026 21:32:00 GMT"}
        ),
    )
    with _spp(replay, settings) as src:
        payloads = list(src.fetch(window))
    assert [(p.status, p.published_at) for p in payloads] == [(200, None), (404, None)]


# ------------------------------------------------------------------------------------ node catalogue

MAP = "/arcgis/rest/services/MarketMaps/RTBM_FeatureData/MapServer"
LATEST = "/RTBM-LMP-SL-latestInterval.csv"


def _catalogue_spp(replay: ReplayServer, settings, **replies: Reply) -> SPP:  # type: ignore[no-untyped-def]
    """An SPP source whose settlement-location file and hub/interface map layers the replay server serves."""
    replay.add(
        DOWNLOAD,
        replies.get("latest", Reply.file("spp/RTBM-LMP-SL-latestInterval.csv")),
        match={"path": LATEST},
    )
    replay.add(f"{MAP}/1/query", replies.get("hubs", Reply.file("spp/price_map_hubs.json")))
    replay.add(f"{MAP}/2/query", replies.get("interfaces", Reply.file("spp/price_map_interfaces.json")))
    return _spp(replay, settings, map_url=f"{replay.url}{MAP}")


def test_node_catalogue_types_settlement_locations_from_spps_hub_and_interface_lists(
    replay: ReplayServer, settings
) -> None:  # type: ignore[no-untyped-def]
    with _catalogue_spp(replay, settings) as src:
        table = src.node_catalogue()
    assert table.column_names == ["location", "location_type", "pnode", "baa"]
    assert table.to_pylist() == [
        {"location": "AECI", "location_type": "Interface", "pnode": "AECI", "baa": "SPP"},
        {"location": "ERCOTE", "location_type": "Interface", "pnode": None, "baa": None},  # map only
        {"location": "NEWINTF", "location_type": "Interface", "pnode": "NEWINTF", "baa": "SPP"},
        {"location": "OKGE.OKGE", "location_type": "Settlement Location", "pnode": "OKGE", "baa": "SPP"},
        {"location": "SPPNORTH_HUB", "location_type": "Hub", "pnode": "SPPNORTH_H", "baa": "SPP"},
        {"location": "SPPSOUTH_HUB", "location_type": "Hub", "pnode": None, "baa": None},
        {
            "location": "WACM.WACM",
            "location_type": "Settlement Location",
            "pnode": "WACM_WACM",
            "baa": "SWPW",
        },
    ]


def test_node_catalogue_requests_the_latest_file_and_both_map_layers(replay: ReplayServer, settings) -> None:  # type: ignore[no-untyped-def]
    with _catalogue_spp(replay, settings) as src:
        payloads = list(src.fetch_nodes())
    assert [(r.path, r.param("path") or r.param("where")) for r in replay.requests] == [
        (DOWNLOAD, LATEST),
        (f"{MAP}/1/query", "OBJECTID IS NOT NULL"),
        (f"{MAP}/2/query", "OBJECTID IS NOT NULL"),
    ]
    assert all(r.param("f") == "json" and r.param("outFields") == "*" for r in replay.requests[1:])
    assert [(p.dataset, p.meta["part_name"]) for p in payloads] == [
        ("nodes", "settlement_locations"),
        ("nodes", "hubs"),
        ("nodes", "interfaces"),
    ]
    assert src.parse(payloads[0]).num_rows == 0  # a catalogue payload holds no prices


@pytest.mark.parametrize(
    ("part", "reply", "error", "match"),
    [
        ("hubs", Reply.file("spp/price_map_error.json"), PayloadError, "ArcGIS error 400"),
        (
            "interfaces",
            Reply.file("spp/react_shell.html", content_type="text/html"),
            PayloadError,
            "not JSON",
        ),
        (
            "hubs",
            Reply(body=b'{"features":[{"attributes":{"OBJECTID":1}}]}'),
            SchemaDriftError,
            "SETTLEMENT_LOCATION",
        ),
        ("latest", Reply.file("spp/react_shell.html", content_type="text/html"), PayloadError, "HTML page"),
        (
            "latest",
            Reply(body=b"Interval,GMTIntervalEnd,Node,LMP\r\n", content_type="text/csv"),
            SchemaDriftError,
            "Settlement Location",
        ),
        ("latest", Reply(404, b""), RequestRejected, "HTTP 404"),
    ],
    ids=["arcgis-error", "map-html", "map-drift", "file-html", "file-drift", "file-404"],
)
def test_malformed_catalogue_is_a_typed_error(
    replay: ReplayServer, settings, part: str, reply: Reply, error: type, match: str
) -> None:  # type: ignore[no-untyped-def]
    from hmco.errors import SourceError

    with _catalogue_spp(replay, settings, **{part: reply}) as src:
        payloads = list(src.fetch_nodes())
        with pytest.raises(error, match=match) as info:
            src.parse_nodes(payloads)
    assert isinstance(info.value, SourceError)
