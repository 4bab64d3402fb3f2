"""A plain install of the built wheel, in a fresh venv, gives a working `local` profile.

The wheel is built from this tree (``uv build``) and installed with nothing but its own dependencies
(``uv pip install WHEEL``) into a new venv; that venv then runs the demo (chdb and DuckDB included)
in a temporary HMCO_HOME and reads the rows back. uv works from its cache when it can (offline), and
asks the package index only for what the cache lacks (the first run on a new machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")  # installed beside the project's Python by `make install`
NODES = 20


def _uv(*args: str) -> None:
    """Run uv offline from its cache; only if that cannot do it, with the package index."""
    for offline in (["--offline"], []):
        run = subprocess.run([str(UV), *args, *offline], capture_output=True, text=True, timeout=1200)
        if run.returncode == 0:
            return
    raise AssertionError(f"uv {' '.join(args)} failed:\n{run.stderr}")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel of this tree and its dependencies, nothing else."""
    root = tmp_path_factory.mktemp("install")
    _uv("build", "--wheel", "--out-dir", str(root / "dist"), str(REPO))
    (wheel,) = (root / "dist").glob("hmco-*.whl")
    _uv("venv", "--python", sys.executable, str(root / "venv"))
    _uv("pip", "install", "--python", str(root / "venv" / "bin" / "python"), str(wheel))
    return root / "venv"


def _run(venv: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HMCO_", "PYTHON"))}
    env.update(HMCO_HOME=str(home), GX_ANALYTICS_ENABLED="false")
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=env, timeout=600
    )


def test_the_installed_command_prints_its_version(venv: Path, tmp_path: Path) -> None:
    run = _run(venv, "hmco", "--version", home=tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == f"hmco {version('hmco')}"


def test_the_fresh_venv_holds_only_the_wheels_dependencies(venv: Path, tmp_path: Path) -> None:
    code = "import hmco, sys; print(hmco.__file__)"
    run = _run(venv, "python", "-c", code, home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()).is_relative_to(venv)  # the installed wheel, not this source tree


def test_a_plain_install_runs_the_local_profile_end_to_end(venv: Path, tmp_path: Path) -> None:
    demo = _run(venv, "hmco", "demo", "--nodes", str(NODES), home=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "Done in" in demo.stdout
    read_back = (
        "import hmco\n"
        "from hmco.clickhouse import connect_clickhouse\n"
        "from hmco.query.lake import LakeSQL\n"
        "with LakeSQL(hmco.Lake()) as sql:\n"
        "    lake = sql.sql('SELECT count(*) AS n FROM hub_curated.rt_lmp').column('n')[0].as_py()\n"
        "store = connect_clickhouse(hmco.Settings.load()).query('SELECT count() FROM rt_lmp').result_rows[0][0]\n"
        "print(lake, store)\n"
    )
    run = _run(venv, "python", "-c", read_back, home=tmp_path)
    assert run.returncode == 0, run.stderr
    lake_rows, store_rows = (int(n) for n in run.stdout.split())
    assert lake_rows == NODES * 288  # a day of 5-minute prices per node, through DuckDB over Iceberg
    assert store_rows > 0  # the real-time store, in process through chdb


def test_a_missing_extra_names_the_command_that_installs_it(venv: Path, tmp_path: Path) -> None:
    code = "from hmco._dependencies import import_optional; import_optional('matplotlib.pyplot')"
    run = _run(venv, "python", "-c", code, home=tmp_path)
    assert run.returncode == 1
    assert "MissingDependency: matplotlib is needed" in run.stderr
    assert "pip install 'hmco[plot]'" in run.stderr
