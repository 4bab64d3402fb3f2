"""A catalog password written into ``catalog.uri`` never leaks from a catalog that fails to open."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmco.catalog import load_catalog
from hmco.config import Settings
from hmco.errors import ConfigError

PASSWORD = "cat-pw-7c1e0d9a"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("kind", "uri"),
    [
        ("sql", f"postgresql+psycopg2://hmco:{PASSWORD}@127.0.0.1:{{port}}/cat"),
        ("sql", f"postgresql+psycopg2://hmco:{PASSWORD}@127.0.0.1:not-a-port/cat"),
        ("rest", f"http://hmco:{PASSWORD}@127.0.0.1:{{port}}/catalog"),
    ],
    ids=["sql-refused", "sql-unparsable", "rest-refused"],
)
def test_failing_catalog_keeps_the_uri_password_out_of_error_and_logs(
    kind: str, uri: str, closed_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.load(
        profile="cluster", home=tmp_path / "hmco", catalog={"type": kind, "uri": uri.format(port=closed_port)}
    )
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="hmco")

    with pytest.raises(ConfigError, match=f"cannot open the {kind} Iceberg catalog") as info:
        load_catalog(settings)
    logging.getLogger("hmco.test").debug("catalog failed", exc_info=info.value)

    err = info.value
    assert PASSWORD not in str(err)
    assert err.context["uri"] == uri.format(port=closed_port).replace(PASSWORD, "***")
    assert PASSWORD not in caplog.text
    assert "catalog failed" in caplog.text
