"""Every file in events/ through handler.lambda_handler, as `sam local invoke -e` would run it."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2.extensions
import pytest

from login_ingest.local.context import LocalLambdaContext
from tests.conftest import rejections

EVENTS = Path(__file__).resolve().parents[2] / "events"

# The messageIds each sample event must report failed; README quotes the same.
EXPECTED_FAILURES = {
    "valid-batch.json": [],
    "mixed-batch.json": [
        "1a2b3c4d-0002-4e5f-8a9b-0c1d2e3f4a02",  # not JSON
        "1a2b3c4d-0003-4e5f-8a9b-0c1d2e3f4a03",  # no user_id
        "1a2b3c4d-0004-4e5f-8a9b-0c1d2e3f4a04",  # app_version "2.3.0-beta"
        "1a2b3c4d-0005-4e5f-8a9b-0c1d2e3f4a05",  # ip "300.1.2.3"
    ],
    "redelivered-batch.json": [],
    "malformed-batch.json": [
        "2b3c4d5e-0001-4f6a-9b0c-1d2e3f4a5b01",
        "2b3c4d5e-0002-4f6a-9b0c-1d2e3f4a5b02",
        "2b3c4d5e-0003-4f6a-9b0c-1d2e3f4a5b03",
        "2b3c4d5e-0004-4f6a-9b0c-1d2e3f4a5b04",
    ],
}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def invoke(handler_module: ModuleType, name: str) -> list[str]:
    response = handler_module.lambda_handler(load(name), LocalLambdaContext())
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_every_event_file_has_an_expectation() -> None:
    names = {path.name for path in EVENTS.glob("*.json")} - {"env.json"}
    assert names == set(EXPECTED_FAILURES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_event_reports_exactly_its_failures(
    handler_module: ModuleType, db: psycopg2.extensions.cursor, name: str
) -> None:
    assert invoke(handler_module, name) == EXPECTED_FAILURES[name]

    db.execute("SELECT message_id FROM user_logins ORDER BY message_id")
    stored = [message_id for (message_id,) in db.fetchall()]
    records = load(name)["Records"]
    expected = sorted(r["messageId"] for r in records
                      if r["messageId"] not in EXPECTED_FAILURES[name])
    assert stored == expected


def test_valid_batch_rows(handler_module: ModuleType, db: psycopg2.extensions.cursor,
                          masker: Any) -> None:
    invoke(handler_module, "valid-batch.json")

    db.execute("SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version,"
               " create_date::text FROM user_logins ORDER BY app_version")
    rows = db.fetchall()
    assert rows == [
        ("a2c4e6f8-1b3d-4f5a-9c7e-0d2b4f6a8c53", "ios", masker.mask_ip("2001:db8::8:800:200c:417a"),
         masker.mask_device_id("087-31-6624"), None, 96000, "2024-12-03"),
        ("7d1f2b6e-4c3a-4e1b-8f0d-5a9c2e7b3d41", "android", masker.mask_ip("203.0.113.17"),
         masker.mask_device_id("412-55-9031"), "RU", 2003000, "2024-12-03"),
        # create_date from the body, 23:30 at UTC-2 being the next day in UTC.
        ("f0e1d2c3-b4a5-4968-8778-695a4b3c2d65", "android", masker.mask_ip("198.51.100.4"),
         masker.mask_device_id("412-55-9031"), "PH", 7000000, "2024-12-03"),
    ]
    # The same device on two logins: one token, so the duplicate stays findable.
    assert rows[1][3] == rows[2][3]


def test_redelivery_adds_no_row(handler_module: ModuleType, db: psycopg2.extensions.cursor,
                                function_logs: list[str]) -> None:
    assert invoke(handler_module, "valid-batch.json") == []
    assert invoke(handler_module, "redelivered-batch.json") == []

    db.execute("SELECT count(*) FROM user_logins")
    assert db.fetchone() == (3,)
    summaries = [json.loads(line) for line in function_logs if '"batch processed"' in line]
    assert [(s["stored"], s["duplicates"]) for s in summaries] == [(3, 0), (0, 3)]


def test_failed_records_are_logged_with_reason_and_without_payload(
    handler_module: ModuleType, db: psycopg2.extensions.cursor, function_logs: list[str]
) -> None:
    invoke(handler_module, "mixed-batch.json")

    assert rejections(function_logs) == {
        "1a2b3c4d-0002-4e5f-8a9b-0c1d2e3f4a02": "not_json",
        "1a2b3c4d-0003-4e5f-8a9b-0c1d2e3f4a03": "missing_user_id",
        "1a2b3c4d-0004-4e5f-8a9b-0c1d2e3f4a04": "invalid_app_version",
        "1a2b3c4d-0005-4e5f-8a9b-0c1d2e3f4a05": "invalid_ip",
    }
    assert sum('"records rejected"' in line for line in function_logs) == 4  # one per reason
    summary = json.loads(next(line for line in function_logs if '"batch processed"' in line))
    assert (summary["received"], summary["stored"], summary["failed"]) == (6, 2, 4)
    text = "\n".join(function_logs)
    for secret in ["192.0.2", "198.51.100.77", "230-18-4471", "555-01-202", "901-77-3150"]:
        assert secret not in text


def test_event_logging_cannot_be_switched_on(database_url: str, tmp_path: Path) -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT=true would log whole events, raw ip included: refused."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, TEST_MASKING_KEY

    script = ("import json, handler\n"
              "from login_ingest.local.context import LocalLambdaContext\n"
              f"event = json.load(open({str(EVENTS / 'mixed-batch.json')!r}))\n"
              "handler.lambda_handler(event, LocalLambdaContext())\n")
    env = {**os.environ, "POWERTOOLS_LOGGER_LOG_EVENT": "true", "DATABASE_URL": database_url,
           "MASKING_KEY": TEST_MASKING_KEY, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=True)

    assert '"batch processed"' in result.stdout
    assert "192.0.2.44" not in result.stdout + result.stderr
    assert "230-18-4471" not in result.stdout + result.stderr
