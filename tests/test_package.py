"""The package surface: a small public API, and `import hmco` that stays light."""

from __future__ import annotations

import subprocess
import sys

import hmco


def test_every_public_name_resolves() -> None:
    missing = [name for name in hmco.__all__ if getattr(hmco, name, None) is None]
    assert missing == []


def test_import_hmco_does_not_load_heavy_engines() -> None:
    code = (
        "import sys, hmco; heavy = {'great_expectations', 'chdb', 'duckdb', 'trino', 'pyiceberg', 'clickhouse_connect'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_errors_split_transient_from_terminal() -> None:
    assert issubclass(hmco.RateLimited, hmco.TransientError)
    assert issubclass(hmco.CommitConflict, hmco.TransientError)
    assert issubclass(hmco.QualityGateFailed, hmco.TerminalError)
    assert issubclass(hmco.SpecError, hmco.TerminalError)
    assert not issubclass(hmco.TransientError, hmco.TerminalError)


def test_the_base_install_holds_the_engines_of_the_default_local_profile() -> None:
    """`pip install hmco` alone runs the default profile: chdb and DuckDB are not behind an extra."""
    from importlib.metadata import requires

    base = {r.split(";")[0].strip() for r in requires("hmco") or [] if "extra ==" not in r}
    names = {r.split("=")[0].split(">")[0].split("<")[0].strip() for r in base}
    assert {"chdb", "duckdb", "duckdb-extension-iceberg"} <= names
