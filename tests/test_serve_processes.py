"""``hmco serve`` as real processes: two never run one pipeline at once (the lease in the catalog), a
SIGKILLed one restarts and catches up with no gap and no duplicate, and SIGTERM lets the running job
finish. Processes are watched through their output (a line appears), never through sleeps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.compute as pc
import yaml

from hmco.config import Settings
from hmco.lake import Lake
from hmco.sources.synthetic import SyntheticISO
from hmco.windows import Window

HMCO = str(Path(sys.executable).with_name("hmco"))
NODES = 40
HOURS = 36


class Proc:
    """A subprocess whose stdout and stderr lines are collected as they come; ``wait_for`` blocks on them."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []  # both streams, in arrival order
        self.stdout: list[str] = []
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.p.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stderr, None), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: object, also: list[str] | None) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                if also is not None:
                    also.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for line in self.lines if (m := regex.search(line))]
            return bool(found) or self.p.poll() is not None

        with self._cond:
            self._cond.wait_for(seen, timeout)
        assert found, f"{pattern!r} never appeared; output:\n" + "\n".join(self.lines[-40:])
        return found[0]

    def finish(self, timeout: float = 300) -> int:
        code = self.p.wait(timeout)
        for t in self._readers:
            t.join(10)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMCO_")}
    env.update(HMCO_HOME=str(home), GX_ANALYTICS_ENABLED="false", NO_PROXY="127.0.0.1,localhost")
    return env


def _spec_dir(tmp_path: Path, start: datetime) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = {
        "name": "synth-long",
        "source": {"type": "synthetic_iso", "params": {"nodes": NODES, "iso": "SYNTH"}},
        "schedule": "*/5 * * * *",
        "window": "1h",
        "start": start.isoformat(),
    }
    (specs / "synth-long.yaml").write_text(yaml.safe_dump(spec))
    return specs


def _serve_once(home: Path, specs: Path, now: datetime) -> Proc:
    args = [HMCO, "--log-level", "INFO", "serve", "--once", "--json", "--specs", str(specs)]
    return Proc([*args, "--job", "synth-long", "--now", now.isoformat()], _env(home))


def _results(proc: Proc) -> list[dict[str, object]]:
    return json.loads("\n".join(proc.stdout))  # type: ignore[no-any-return]


def _windows_served(start: datetime) -> int:
    """How many 1-hour windows from ``start`` the synthetic source serves now."""
    end = SyntheticISO(nodes=NODES).latest_window(datetime.now(UTC)).end
    return int((end - start).total_seconds() // 3600)


def _assert_lake_has_exactly(home: Path, start: datetime, end: datetime) -> None:
    lake = Lake(Settings.load(home=home))
    table = lake.table("rt_lmp").scan(selected_fields=("iso", "market", "node", "ts")).to_arrow()
    hours = int((end - start).total_seconds() // 3600)
    assert table.num_rows == NODES * 12 * hours, "a gap or a duplicate"
    distinct = table.group_by(["iso", "market", "node", "ts"]).aggregate([]).num_rows
    assert distinct == table.num_rows, "duplicate primary keys"
    assert pc.min(table["ts"]).as_py() == start and pc.max(table["ts"]).as_py() == end - timedelta(minutes=5)
    committed = lake.state.committed_windows("rt_lmp", "synth-long", "curated")
    assert lake.state.is_committed(committed, Window(start, end))


def test_two_serves_never_run_one_pipeline_and_a_killed_one_catches_up_without_gap_or_duplicate(
    tmp_path: Path,
) -> None:
    home = tmp_path / "hmco"
    now = datetime(2026, 11, 20, 12, 1, tzinfo=UTC)
    start = now.replace(minute=0) - timedelta(hours=HOURS)
    specs = _spec_dir(tmp_path, start)

    a = _serve_once(home, specs, now)
    a.wait_for(r"synth-long: window .* published")  # A holds the lease and is committing windows
    # Freeze A mid-run (alive, lease held) so B's start-up, however slow, meets it still running.
    a.p.send_signal(signal.SIGSTOP)
    b = _serve_once(home, specs, now)
    assert b.finish() == 0, b.output
    [skipped] = _results(b)
    assert skipped["outcome"] == "skipped", skipped
    assert f":{a.p.pid}:" in str(skipped["detail"]), skipped  # refused because A (alive) holds the lease
    assert "published" not in b.output  # B wrote nothing

    a.p.send_signal(signal.SIGKILL)  # mid-run: some windows committed, the rest not, the lease left behind
    a.finish()
    # (A may have committed one more window than it logged: the kill can fall between commit and log)
    rows = Lake(Settings.load(home=home)).table("rt_lmp").scan(selected_fields=("ts",)).to_arrow().num_rows
    published_by_a = rows // (NODES * 12)
    assert rows % (NODES * 12) == 0, "a window is half-written"
    assert 0 < len(re.findall(r"window .* published", a.output)) <= published_by_a < HOURS

    later = now + timedelta(hours=1)  # the restart comes an hour later: it catches up through `later` too
    c = _serve_once(home, specs, later)
    assert c.finish() == 0, c.output
    [done] = _results(c)
    assert done["outcome"] == "succeeded", done
    end = SyntheticISO(nodes=NODES).latest_window(later).end  # the newest window the source serves then
    hours = int((end - start).total_seconds() // 3600)
    assert hours > HOURS - 1  # the restart had more to catch up than the killed run ever saw
    assert done["rows"] == NODES * 12 * (hours - published_by_a), done[
        "detail"
    ]  # only what A had not committed
    _assert_lake_has_exactly(home, start, end)


def test_sigterm_finishes_the_window_being_written_then_serve_exits_and_a_restart_resumes(
    tmp_path: Path,
) -> None:
    home = tmp_path / "hmco"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = hour - timedelta(hours=HOURS)
    specs = _spec_dir(tmp_path, start)
    args = [
        HMCO,
        "--log-level",
        "INFO",
        "serve",
        "--specs",
        str(specs),
        "--job",
        "synth-long",
        "--metrics-port",
        "0",
    ]
    served = _windows_served(start)
    proc = Proc(args, _env(home))
    url = proc.wait_for(r"metrics at (http://127\.0\.0\.1:\d+/metrics)").group(1)
    proc.wait_for(r"synth-long: window .* published")  # the catch-up run is under way
    assert re.search(r"^hmco_serve_up 1\.0$", httpx.get(url, timeout=10).text, re.M)
    proc.p.send_signal(signal.SIGTERM)
    assert proc.finish() == 0, proc.output
    result = proc.wait_for(r"^synth-long\s+(\w+).*stopped with (\d+) window\(s\) left")
    assert result.group(1) == "succeeded", proc.output
    assert proc.stdout[-1] == "hmco serve: stopped"
    published = len(re.findall(r"window .* published", proc.output))
    # every window was either finished or left whole (the clock may pass an hour during the test)
    assert published + int(result.group(2)) in (served, _windows_served(start))

    lake = Lake(Settings.load(home=home))
    ts = lake.table("rt_lmp").scan(selected_fields=("ts",)).to_arrow()["ts"]
    assert ts.length() == NODES * 12 * published  # nothing half-written
    assert pc.max(ts).as_py() == start + timedelta(hours=published) - timedelta(minutes=5)

    restart = _serve_once(home, specs, datetime.now(UTC))
    assert restart.finish() == 0, restart.output
    end = lake.table("rt_lmp").scan(selected_fields=("ts",)).to_arrow()["ts"]
    newest = pc.max(end).as_py() + timedelta(minutes=5)
    assert int((newest - start).total_seconds() // 3600) in (served, _windows_served(start))
    _assert_lake_has_exactly(home, start, newest)
