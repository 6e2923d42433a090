"""Fixtures shared by the suite: a real Postgres over TCP, moto's SQS server, the handler."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg2
import pytest

from login_ingest.local.postgres import LocalPostgres
from login_ingest.local.sqs import LocalSqsServer
from login_ingest.masking import Masker
from login_ingest.storage import apply_schema
from login_ingest.telemetry import logger

TEST_MASKING_KEY = "test-only-masking-key-0123456789-abcdefghij"
REPO = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "fetch_sample_data.json.gz"


def shared_sample() -> Path:
    """The Fetch sample file beside the repo. CI always has it: there, missing is a failure."""
    if not SHARED_SAMPLE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_SAMPLE} is missing on CI")
        pytest.skip(f"{SHARED_SAMPLE} not found: only CI and the team's machines have it; "
                    "events/ and the generator cover the same path")
    return SHARED_SAMPLE


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh server for the session. DATABASE_URL is ignored: tests truncate tables."""
    with LocalPostgres() as server:
        apply_schema(server.url)
        yield server.url


@pytest.fixture(scope="session")
def handler_module(database_url: str) -> ModuleType:
    """handler.py, imported as Lambda would, with its environment set first."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["MASKING_KEY"] = TEST_MASKING_KEY
    os.environ.pop("DB_SECRET_ID", None)
    os.environ.pop("MASKING_SECRET_ID", None)
    return importlib.import_module("handler")


@pytest.fixture
def masker() -> Masker:
    return Masker(TEST_MASKING_KEY.encode())


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on an empty user_logins table."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE user_logins")
        yield cursor
    connection.close()


@pytest.fixture
def vault_db(database_url: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on empty user_logins and vault tables (audit trail included)."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE user_logins, pii_vault, pii_vault_keys, pii_vault_audit")
        yield cursor
    connection.close()


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[LocalSqsServer]:
    with LocalSqsServer() as server:
        yield server


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def function_logs() -> Iterator[list[str]]:
    """Every JSON line the function logs during the test, formatted as CloudWatch gets it."""
    capture = _Lines()
    capture.setFormatter(logger.registered_formatter)
    service_logger = logging.getLogger(logger.service)
    service_logger.addHandler(capture)
    yield capture.lines
    service_logger.removeHandler(capture)


def each_rejection(lines: list[str]) -> list[tuple[str, str]]:
    """(message id, reason code) for every rejection in the function's log lines."""
    found = []
    for line in map(json.loads, lines):
        if line["message"] == "records rejected":
            assert line["count"] == len(line["message_ids"])
            found += [(message_id, line["reason"]) for message_id in line["message_ids"]]
    return found


def rejections(lines: list[str]) -> dict[str, str]:
    """message id -> reason code, for lines of invocations that each saw a message once."""
    found = dict(each_rejection(lines))
    assert len(found) == len(each_rejection(lines)), "a message rejected twice"
    return found


# --- the whole suite's log scan ----------------------------------------------------------
# Every line the function logs in this process, from any test, is kept and searched at the
# end for anything shaped like an IPv4 address or a device id, and for the raw values of our
# sample events. A hit fails the run even when every test passed.
_SUITE_LOGS = _Lines()
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_DEVICE_ID = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")


def _raw_values_of_samples() -> set[str]:
    values: set[str] = set()
    for path in (REPO / "events").glob("*-batch.json"):
        for record in json.loads(path.read_text())["Records"]:
            try:
                body = json.loads(record["body"])
            except ValueError:
                continue
            if isinstance(body, dict):
                values |= {str(body[k]) for k in ("ip", "device_id") if body.get(k)}
    return values


def pytest_configure(config: pytest.Config) -> None:
    _SUITE_LOGS.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.service).addHandler(_SUITE_LOGS)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    text = "\n".join(_SUITE_LOGS.lines)
    leaks = set(_IPV4.findall(text)) | set(_DEVICE_ID.findall(text))
    leaks |= {value for value in _raw_values_of_samples() if value in text}
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        message = f"log scan: raw ip or device id in the function's logs: {sorted(leaks)[:5]}"
    else:
        message = (f"log scan: {len(_SUITE_LOGS.lines)} function log lines, "
                   "no raw ip or device id")
    if reporter is not None:
        reporter.write_line(message)
