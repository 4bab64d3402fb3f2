"""Build the CAISO OASIS fixture zips in this folder (``python tests/payloads/caiso/build_fixtures.py``).

The zips follow the OASIS wire format (reference §5): ``resultformat=6`` CSV members in long form, with
the PRC_INTVL_LMP v3 / PRC_RTPD_LMP v3 / PRC_LMP v12 headers, or one OASISReport error XML. Values are
deterministic; TH_NP15_GEN-APND at 2025-07-18T07:00Z carries the reference sample
(LMP 50.48609, MCE 48.94640, MCC -1.68082). Output is byte-stable (fixed zip timestamps).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
PACIFIC = ZoneInfo("America/Los_Angeles")

INTVL_HEADER = [
    "INTERVALSTARTTIME_GMT",
    "INTERVALENDTIME_GMT",
    "OPR_DT",
    "OPR_HR",
    "NODE_ID_XML",
    "NODE_ID",
    "NODE",
    "MARKET_RUN_ID",
    "LMP_TYPE",
    "XML_DATA_ITEM",
    "PNODE_RESMRID",
    "GRP_TYPE",
    "POS",
    "VALUE",
    "OPR_INTERVAL",
    "GROUP",
]
DAM_HEADER = [
    "INTERVALSTARTTIME_GMT",
    "INTERVALENDTIME_GMT",
    "OPR_DT",
    "OPR_HR",
    "OPR_INTERVAL",
    "NODE_ID_XML",
    "NODE_ID",
    "NODE",
    "MARKET_RUN_ID",
    "LMP_TYPE",
    "XML_DATA_ITEM",
    "PNODE_RESMRID",
    "GRP_TYPE",
    "POS",
    "MW",
    "GROUP",
]
# Row order within one (interval, node), as in the reference sample: MCC, MCE, ..., LMP.
TYPES = (("MCC", "LMP_CONG_PRC"), ("MCE", "LMP_ENE_PRC"), ("MCL", "LMP_LOSS_PRC"), ("MGHG", "LMP_GHG_PRC"),
         ("LMP", "LMP_PRC"))  # fmt: skip
SAMPLE_NODES = ("TH_NP15_GEN-APND", "TH_SP15_GEN-APND", "DLAP_PGAE-APND", "0096WD_7_N001", "ALAMIT_7_B1-APND")


def components(node_index: int, interval_index: int) -> dict[str, float]:
    """Deterministic prices; (0, 0) is the reference sample row of TH_NP15_GEN-APND."""
    energy = round(48.94640 + 0.25 * interval_index, 5)
    congestion = round(-1.68082 + 0.5 * node_index - 0.01 * interval_index, 5)
    loss = round(3.22051 - 0.75 * node_index + 0.02 * interval_index, 5)
    ghg = round(0.1 * node_index, 5)
    lmp = round(energy + congestion + loss + ghg, 5)
    return {"LMP": lmp, "MCE": energy, "MCC": congestion, "MCL": loss, "MGHG": ghg}


def gmt(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S-00:00")


def long_rows(
    starts: Sequence[datetime],
    step: timedelta,
    nodes: Sequence[str],
    *,
    market_run_id: str,
    grp_type: str,
    value_of: Callable[[int, int], dict[str, float]] = components,
) -> list[dict[str, str]]:
    """One dict per (interval, node, LMP_TYPE), with the operating-day fields derived in Pacific time."""
    rows: list[dict[str, str]] = []
    group = 0
    for i, start in enumerate(starts):
        local = start.astimezone(PACIFIC)
        day_start = datetime(local.year, local.month, local.day, tzinfo=PACIFIC).astimezone(UTC)
        elapsed = start - day_start
        opr_hr = int(elapsed // timedelta(hours=1)) + 1  # hour-ending counted in elapsed hours: 1..23/24/25
        opr_interval = int((elapsed % timedelta(hours=1)) // step) + 1 if step < timedelta(hours=1) else 0
        for n, node in enumerate(nodes):
            values = value_of(n, i)
            for lmp_type, item in TYPES:
                group += 1
                value = f"{values[lmp_type]:.5f}"
                rows.append(
                    {
                        "INTERVALSTARTTIME_GMT": gmt(start),
                        "INTERVALENDTIME_GMT": gmt(start + step),
                        "OPR_DT": local.date().isoformat(),
                        "OPR_HR": f"{opr_hr:02d}",
                        "OPR_INTERVAL": str(opr_interval),
                        "NODE_ID_XML": node,
                        "NODE_ID": node,
                        "NODE": node,
                        "MARKET_RUN_ID": market_run_id,
                        "LMP_TYPE": lmp_type,
                        "XML_DATA_ITEM": item,
                        "PNODE_RESMRID": node,
                        "GRP_TYPE": grp_type,
                        "POS": "0",
                        "VALUE": value,
                        "PRC": value,
                        "MW": value,
                        "GROUP": str(group),
                    }
                )
    return rows


def to_csv(rows: Sequence[dict[str, str]], header: Sequence[str]) -> bytes:
    lines = [",".join(header)] + [",".join(row[c] for c in header) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


DISCLAIMER = (
    "The contents of these pages are subject to change without notice. Decisions based on information "
    "contained within the California ISO's web site are the visitor's sole responsibility."
)


def error_xml(code: int, desc: str, stamp: str = "2026-09-14T17:10:55.764Z") -> bytes:
    """An OASISReport error document, laid out like the verbatim 1000 capture in the reference."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<m:OASISReport xmlns:m="http://www.caiso.com/soa/OASISReport_v1.xsd">
<m:MessageHeader>
\t<m:TimeDate>{stamp}</m:TimeDate>
\t<m:Source>OASIS</m:Source>
\t<m:Version>v20131201</m:Version>
</m:MessageHeader>
<m:MessagePayload>
<m:RTO>
<m:name>CAISO</m:name>
<m:DISCLAIMER_ITEM>
<m:DISCLAIMER>{DISCLAIMER}</m:DISCLAIMER>
</m:DISCLAIMER_ITEM>
<m:ERROR>
<m:ERR_CODE>{code}</m:ERR_CODE>
<m:ERR_DESC>{desc}</m:ERR_DESC>
</m:ERROR>

</m:RTO>
</m:MessagePayload>
</m:OASISReport>
""".encode()


def five_minute_starts(
    start: datetime, end: datetime, step: timedelta = timedelta(minutes=5)
) -> list[datetime]:
    out, cursor = [], start
    while cursor < end:
        out.append(cursor)
        cursor += step
    return out


def trade_day(year: int, month: int, day: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=PACIFIC)
    nxt = start.date() + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=PACIFIC)
    return start.astimezone(UTC), end.astimezone(UTC)


def build() -> dict[str, bytes]:
    five = timedelta(minutes=5)
    sample_starts = [datetime(2025, 7, 18, 7, 0, tzinfo=UTC), datetime(2025, 7, 18, 7, 5, tzinfo=UTC)]
    rt = long_rows(sample_starts, five, SAMPLE_NODES, market_run_id="RTM", grp_type="ALL_APNODES")
    rt_name = "20250718_20250718_PRC_INTVL_LMP_RTM_20250718_08_05_12_v3.csv"
    reordered = ["VALUE", "LMP_TYPE", "GROUP", "NODE", "OPR_HR", "INTERVALENDTIME_GMT", "POS", "NODE_ID",
                 "MARKET_RUN_ID", "INTERVALSTARTTIME_GMT", "XML_DATA_ITEM", "OPR_DT", "PNODE_RESMRID",
                 "GRP_TYPE", "NODE_ID_XML", "OPR_INTERVAL"]  # fmt: skip
    half = len(rt) // 2  # first interval in member 1, second interval in member 2
    out = {
        "rt_sample.zip": zip_bytes({rt_name: to_csv(rt, INTVL_HEADER)}),
        "rt_reordered.zip": zip_bytes({rt_name: to_csv(rt, reordered)}),
        "rt_multi_member.zip": zip_bytes(
            {
                "20250718_20250718_PRC_INTVL_LMP_RTM_20250718_08_05_12_v3_1.csv": to_csv(
                    rt[:half], INTVL_HEADER
                ),
                "20250718_20250718_PRC_INTVL_LMP_RTM_20250718_08_05_12_v3_2.csv": to_csv(
                    rt[half:], INTVL_HEADER
                ),
            }
        ),
        "rt_missing_columns.zip": zip_bytes(
            {rt_name: to_csv(rt, [c for c in INTVL_HEADER if c not in ("LMP_TYPE", "VALUE")])}
        ),
    }
    for fname, (y, m, d) in {
        "rt_spring_forward.zip": (2026, 3, 8),
        "rt_fall_back.zip": (2026, 11, 1),
    }.items():
        start, end = trade_day(y, m, d)
        rows = long_rows(five_minute_starts(start, end), five, ["TH_NP15_GEN-APND"], market_run_id="RTM",
                         grp_type="ALL_APNODES")  # fmt: skip
        stamp = f"{y}{m:02d}{d:02d}"
        out[fname] = zip_bytes(
            {f"{stamp}_{stamp}_PRC_INTVL_LMP_RTM_{stamp}_09_00_00_v3.csv": to_csv(rows, INTVL_HEADER)}
        )
    fifteen = timedelta(minutes=15)
    rt15 = long_rows(
        [datetime(2025, 7, 18, 7, 0, tzinfo=UTC), datetime(2025, 7, 18, 7, 15, tzinfo=UTC)],
        fifteen, SAMPLE_NODES[:2], market_run_id="RTPD", grp_type="ALL_APNODES",
    )  # fmt: skip
    out["rt15_sample.zip"] = zip_bytes(
        {
            "20250718_20250718_PRC_RTPD_LMP_RTPD_20250718_08_05_12_v3.csv": to_csv(
                rt15, [*INTVL_HEADER[:13], "PRC", *INTVL_HEADER[14:]]
            )
        }
    )

    def dam_values(node_index: int, interval_index: int) -> dict[str, float]:
        if (node_index, interval_index) == (0, 0):  # the reference DAM row (crossnokaye/carbon test)
            return {"LMP": 74.63, "MCE": 71.2, "MCC": 0.0, "MCL": 3.43, "MGHG": 0.0}
        return components(node_index, interval_index)

    hour = timedelta(hours=1)
    dam = long_rows(
        [datetime(2022, 2, 1, 15, tzinfo=UTC), datetime(2022, 2, 1, 16, tzinfo=UTC)],
        hour, ["0096WD_7_N001", "TH_SP15_GEN-APND"], market_run_id="DAM", grp_type="ALL", value_of=dam_values,
    )  # fmt: skip
    out["da_sample.zip"] = zip_bytes(
        {"20220201_20220202_PRC_LMP_DAM_20220131_13_05_01_v12.csv": to_csv(dam, DAM_HEADER)}
    )
    out["error_1000_no_data.xml.zip"] = zip_bytes(
        {
            "20260914_20260914_PRC_INTVL_LMP_RTM_20260914_17_10_55_v3.xml": error_xml(
                1000, "No data returned for the specified selection"
            )
        }
    )
    out["error_1004_window.xml.zip"] = zip_bytes(
        {"INVALID_REQUEST.xml": error_xml(1004, "Data can be requested for period of 31 days only.")}
    )
    out["error_1010_system.xml.zip"] = zip_bytes({"INVALID_REQUEST.xml": error_xml(1010, "System Error.")})
    out["error_1014_retention.xml.zip"] = zip_bytes(
        {
            "INVALID_REQUEST.xml": error_xml(
                1014,
                "Start Date is beyond the limit, Please Use valid Start Date that falls within the "
                "prescribed limit.",
            )
        }
    )
    out["error_1017_nodes.xml.zip"] = zip_bytes(
        {"INVALID_REQUEST.xml": error_xml(1017, "Please select a maximum of 10 nodes or use the ALL option")}
    )
    out["throttle_429.html"] = (
        b"<html><body><p>CAISO Acceptable Use Policy Violation. "
        b"Please retry your request after 5 seconds.</p></body></html>"
    )
    return out


def main() -> None:
    for name, data in build().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
