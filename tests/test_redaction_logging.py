"""Keys never reach an application's own log handlers, whichever library logs the URL that carries them."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hmco._logging import configure_logging
from hmco.config import Settings
from hmco.redaction import register_secret
from hmco.sources.eia import EIA
from hmco.sources.http import HttpOptions
from hmco.windows import Window
from tests.support.replay import ReplayServer, Reply

DAILY = "/v2/electricity/rto/daily-fuel-type-data/data/"
LIBRARY_LOGGERS = [
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "urllib3.connectionpool",
    "botocore.endpoint",
    "boto3.resources.action",
    "s3fs",
    "fsspec.http",
    "aiobotocore.endpoint",
    "pyiceberg.catalog.rest",
    "sqlalchemy.engine.Engine",
    "clickhouse_connect.driver.httpclient",
    "trino.client",
]


@pytest.fixture
def root_log() -> Iterator[io.StringIO]:
    """The root logger as ``logging.basicConfig(level=logging.INFO)`` leaves it, writing to a string."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def hmco_logger() -> Iterator[logging.Logger]:
    """The ``hmco`` logger, its level and handlers restored after ``configure_logging`` changed them."""
    logger = logging.getLogger("hmco")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_eia_key_is_masked_in_httpx_request_lines_on_the_root_logger(
    replay: ReplayServer, tmp_path: Path, root_log: io.StringIO
) -> None:
    key = "eia-root-log-key-1357924680"
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    settings = Settings.load(home=tmp_path / "hmco", sources={"eia_api_key": key})
    source = EIA(settings=settings, base_url=f"{replay.url}/v2/", http=HttpOptions(sleep=lambda s: None))

    list(source.fetch(Window.day("2024-07-01")))

    assert replay.requests[0].param("api_key") == key
    out = root_log.getvalue()
    assert f"INFO httpx HTTP Request: GET {replay.url}{DAILY}?api_key=***&frequency=daily" in out
    assert key not in out


def test_a_fresh_process_masks_keys_in_logging_configured_after_import(
    replay: ReplayServer, tmp_path: Path
) -> None:
    """``import hmco``, then ``logging.basicConfig``: a custom source's client and EIA both log masked."""
    key, token = "eia-fresh-process-key-97531", "custom-fresh-token-86420"
    replay.add(DAILY, Reply.file("eia/daily_fuel_2024-07-01.json"))
    replay.add("/custom/prices", Reply(200, b"[]"))
    script = (
        "import logging, sys\n"
        "import hmco\n"
        "from hmco.config import Settings\n"
        "from hmco.sources.eia import EIA\n"
        "from hmco.sources.http import HttpClient, HttpOptions\n"
        "home, key, token, url = sys.argv[1:]\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(name)s %(message)s')\n"
        "HttpClient(url + '/custom/').get('prices', [('token', token)])  # no secret registered yet\n"
        "settings = Settings.load(home=home, sources={'eia_api_key': key})\n"
        "source = EIA(settings=settings, base_url=url + '/v2/', http=HttpOptions(sleep=lambda s: None))\n"
        "list(source.fetch(hmco.Window.day('2024-07-01')))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "hmco"), key, token, replay.url],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    assert replay.requests_to("/custom/prices")[0].param("token") == token
    assert replay.requests_to(DAILY)[0].param("api_key") == key
    assert f"httpx HTTP Request: GET {replay.url}/custom/prices?token=*** " in run.stdout
    assert f"httpx HTTP Request: GET {replay.url}{DAILY}?api_key=***&" in run.stdout
    assert key not in run.stdout + run.stderr
    assert token not in run.stdout + run.stderr


def test_registering_a_secret_reinstalls_redaction_an_application_replaced(root_log: io.StringIO) -> None:
    hmco_factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)  # an application's factory that does not chain
    try:
        register_secret("late-secret-86420")  # what building a source with a key does
        logging.getLogger("httpx").info("HTTP Request: GET https://x/?q=late-secret-86420")
    finally:
        logging.setLogRecordFactory(hmco_factory)

    out = root_log.getvalue()
    assert "HTTP Request: GET https://x/?q=***" in out
    assert "late-secret-86420" not in out


@pytest.mark.parametrize("name", LIBRARY_LOGGERS)
def test_library_loggers_and_their_children_are_redacted_at_every_handler(
    name: str, root_log: io.StringIO
) -> None:
    late = io.StringIO()
    handler = logging.StreamHandler(late)  # a handler configured after hmco was imported
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        logger.warning(
            "GET %s failed: %s", "https://etl:lib-pw-2468@host:8443/v1?api_key=lib-key-1357&x=1", "refused"
        )
    finally:
        logger.removeHandler(handler)

    for out in (root_log.getvalue(), late.getvalue()):
        assert "GET https://etl:***@host:8443/v1?api_key=***&x=1 failed: refused" in out
        assert "lib-pw-2468" not in out and "lib-key-1357" not in out


def test_tracebacks_logged_by_libraries_are_redacted(root_log: io.StringIO) -> None:
    try:
        raise ConnectionError("cannot reach postgresql://etl:tb-pw-8642@pg:5432/cat")
    except ConnectionError:
        logging.getLogger("sqlalchemy.pool.impl.QueuePool").exception("connection failed")

    out = root_log.getvalue()
    assert "ConnectionError: cannot reach postgresql://etl:***@pg:5432/cat" in out
    assert "tb-pw-8642" not in out


def test_records_are_rewritten_only_when_they_carry_a_secret() -> None:
    record = logging.getLogger("httpx").makeRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("GET", "https://api.eia.gov/v2/"), None
    )
    assert (record.msg, record.args) == ("HTTP Request: %s %s", ("GET", "https://api.eia.gov/v2/"))

    secret = logging.getLogger("httpx").makeRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("GET", "https://x/?token=t0k-1"), None
    )
    assert (secret.msg, secret.args) == ("HTTP Request: GET https://x/?token=***", ())

    try:
        raise TimeoutError("read timed out")
    except TimeoutError as exc:
        failed = logging.getLogger("httpx").makeRecord(
            "httpx", logging.ERROR, __file__, 1, "failed", (), (type(exc), exc, exc.__traceback__)
        )
    assert failed.exc_text is None  # left for the application's formatter to render its own way


def test_json_log_lines_mask_secrets_in_extra_fields(hmco_logger: logging.Logger) -> None:
    handler = configure_logging("INFO", json=True)
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("hmco.test").info("fetched", extra={"url": "https://x/?api_key=extra-key-0042"})

    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["url"] == "https://x/?api_key=***"
    assert line["msg"] == "fetched"
