"""The examples are documentation that runs: each is executed as a user would run it, in a fresh HMCO_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMCO_")}
    env.update({"HMCO_HOME": str(home), "GX_ANALYTICS_ENABLED": "false", "NO_PROXY": "127.0.0.1,localhost"})
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "hmco"


def test_quickstart_loads_gates_and_queries_three_hours(home: Path) -> None:
    proc = run_example("quickstart.py", home)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"lake at {home.resolve()} (profile local)" in out
    assert "quickstart-rt-lmp → rt_lmp: 3 window(s) (3 ok), 7,200 rows" in out
    assert "{'iso': 'SYNTH', 'market': 'RT5', 'row_count': 7200, 'nodes': 200," in out
    assert "watermark: 2026-11-26T03:00:00+00:00" in out
    assert "curated rows: 7200 (expected 7200)" in out
    assert out.rstrip().endswith("quickstart OK")
    assert (home / "catalog.db").is_file()
    assert (home / "warehouse" / "hmco-curated" / "rt_lmp").is_dir()


def test_backfill_resume_skips_committed_windows_and_fills_the_failed_one(home: Path) -> None:
    proc = run_example("backfill_resume.py", home)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "backfill-demo → rt_lmp: 4 window(s) (3 ok, 1 failed), 3,600 rows" in out
    assert "FAILED [2026-11-26T03:00:00+00:00, 2026-11-26T04:00:00+00:00): SourceUnavailable:" in out
    assert "watermark after first run: 2026-11-26T03:00:00+00:00" in out
    assert "curated after first run: {'row_count': 3600, 'distinct_keys': 3600, 'hours': 3}" in out
    assert "backfill-demo → rt_lmp: 6 window(s) (3 ok, 3 skipped), 3,600 rows" in out
    assert "watermark after resume: 2026-11-26T06:00:00+00:00" in out
    assert (
        "curated after resume: {'row_count': 7200, 'distinct_keys': 7200, 'hours': 6} (expected 7200 rows)"
        in out
    )
    assert "[FAIL]" not in out
    assert out.rstrip().endswith("backfill_resume OK")


def test_custom_source_loads_through_python_and_spec_without_duplicating_the_overlap(home: Path) -> None:
    proc = run_example("custom_source.py", home)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "desk-marks-python → desk_hub_marks: 3 window(s) (3 ok), 72 rows" in out
    assert "spec pipeline 'desk-marks' (source desk_marks_csv):" in out
    assert "desk-marks → desk_hub_marks: 3 window(s) (3 ok), 72 rows" in out
    assert "curated desk_hub_marks: {'row_count': 120, 'distinct_keys': 120, 'mark_days': 5," in out
    assert "  PJM WH RT Peak            50.40" in out
    assert out.rstrip().endswith("custom_source OK")
    assert len(list((home / "warehouse" / "hmco-raw" / "payloads" / "desk_marks_csv").rglob("*.zst"))) == 5
