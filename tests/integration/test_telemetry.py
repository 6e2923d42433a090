"""Metrics (EMF on stdout), the correlation id in every log line, and the optional tracer."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2.extensions
import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from login_ingest import batch, telemetry
from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.masking import Masker
from login_ingest.metrics import NAMESPACE
from login_ingest.storage import DatabaseUnavailable, LoginStore
from tests.conftest import REPO, TEST_MASKING_KEY

EVENTS = REPO / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    blobs = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def values(blobs: list[dict[str, Any]]) -> dict[tuple[str, str | None], float]:
    """(metric name, reason dimension or None) -> value, over every blob."""
    found: dict[tuple[str, str | None], float] = {}
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        (dimensions,) = directive["Dimensions"]
        assert sorted(dimensions) in (["service"], ["reason", "service"])  # never per message
        assert blob["service"] == "login-ingest"
        for metric in directive["Metrics"]:
            key = (metric["Name"], blob.get("reason"))
            assert key not in found, f"{key} published twice in one invocation"
            (found[key],) = blob[metric["Name"]]  # one value per metric and invocation
    return found


def raw_values(event: dict[str, Any]) -> set[str]:
    found = set()
    for record in event["Records"]:
        found.add(record["messageId"])
        with contextlib.suppress(ValueError):
            body = json.loads(record["body"])
            if isinstance(body, dict):
                found |= {str(body[k]) for k in ("ip", "device_id", "user_id") if body.get(k)}
    return found


def test_mixed_batch_metrics(handler_module: ModuleType, db: psycopg2.extensions.cursor,
                             capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    event = load("mixed-batch.json")
    handler_module.lambda_handler(event, LocalLambdaContext())
    first = capsys.readouterr().out
    handler_module.lambda_handler(event, LocalLambdaContext())  # redelivered as a whole
    second = capsys.readouterr().out

    metrics = values(emf_blobs(first))
    write_ms = metrics.pop(("DatabaseWriteLatency", None))
    assert 0 < write_ms < 10_000
    assert metrics == {
        ("RecordsReceived", None): 6, ("BatchSize", None): 6, ("RecordsStored", None): 2,
        ("DuplicatesSkipped", None): 0, ("RecordsFailed", None): 4,
        ("InvocationsFailed", None): 0,
        ("RecordsFailed", "not_json"): 1, ("RecordsFailed", "missing_user_id"): 1,
        ("RecordsFailed", "invalid_app_version"): 1, ("RecordsFailed", "invalid_ip"): 1,
    }
    again = values(emf_blobs(second))
    assert (again[("RecordsStored", None)], again[("DuplicatesSkipped", None)]) == (0, 2)

    # One blob for the batch and one per reason present: nothing per record.
    assert len(emf_blobs(first)) == 1 + 4
    text = first + second
    assert not re.search(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", text)
    assert not [value for value in raw_values(event) if value in text]


def test_failed_invocation_still_publishes(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    store = LoginStore(lambda: "postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    masker = Masker(TEST_MASKING_KEY.encode())
    processor = LoginBatchProcessor(store, masker=lambda: masker)
    capsys.readouterr()

    with pytest.raises(DatabaseUnavailable):
        processor.handle(load("valid-batch.json"), LocalLambdaContext())

    metrics = values(emf_blobs(capsys.readouterr().out))
    assert metrics == {
        ("RecordsReceived", None): 3, ("BatchSize", None): 3, ("RecordsStored", None): 0,
        ("DuplicatesSkipped", None): 0, ("RecordsFailed", None): 3,
        ("InvocationsFailed", None): 1, ("RecordsFailed", "invocation_failed"): 3,
    }


def test_metrics_can_be_switched_off(handler_module: ModuleType, db: psycopg2.extensions.cursor,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    capsys.readouterr()
    handler_module.lambda_handler(load("mixed-batch.json"), LocalLambdaContext())
    assert emf_blobs(capsys.readouterr().out) == []


def test_every_log_line_carries_the_correlation_id(
    handler_module: ModuleType, db: psycopg2.extensions.cursor, function_logs: list[str]
) -> None:
    for request_id in ("req-one", "req-two"):
        handler_module.lambda_handler(load("mixed-batch.json"),
                                      LocalLambdaContext(aws_request_id=request_id))
    lines = [json.loads(line) for line in function_logs]
    # Four rejected records and the batch summary, per invocation.
    assert len(lines) == 10
    assert [line["correlation_id"] for line in lines] == ["req-one"] * 5 + ["req-two"] * 5


# --- tracing ------------------------------------------------------------------------------
class RecordedSegment(BaseSegment):
    def __init__(self, name: str) -> None:
        self.name = name
        self.annotations: dict[str, Any] = {}
        self.fault = False
        self.exceptions: list[BaseException] = []

    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        raise AssertionError("nothing is recorded as metadata")

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self.exceptions.append(exception)

    def add_fault_flag(self) -> None:
        self.fault = True


class RecordingProvider(BaseProvider):
    """Stands in for the X-Ray recorder, which needs a daemon; keeps what the SDK would get."""

    def __init__(self) -> None:
        self.segments: list[RecordedSegment] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[RecordedSegment]:
        segment = RecordedSegment(name or "")
        self.segments.append(segment)
        try:
            yield segment
        except BaseException as error:  # what the X-Ray SDK's context manager does
            segment.add_exception(error, [])
            raise

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Any) -> None:
        raise AssertionError("nothing is patched")

    def patch_all(self) -> None:
        raise AssertionError("nothing is patched")


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProvider]:
    provider = RecordingProvider()
    monkeypatch.setattr(telemetry, "tracer",
                        Tracer(service="login-ingest", provider=provider, disabled=False,
                               auto_patch=False))
    yield provider
    Tracer._reset_config()  # type: ignore[no-untyped-call]


def test_database_write_is_traced(recording: RecordingProvider, handler_module: ModuleType,
                                  db: psycopg2.extensions.cursor) -> None:
    handler_module.lambda_handler(load("valid-batch.json"), LocalLambdaContext())
    assert [segment.name for segment in recording.segments] == ["## store_rows"]
    assert recording.segments[0].annotations == {}


def test_traced_errors_keep_their_class_not_their_message(
    recording: RecordingProvider,
) -> None:
    with pytest.raises(ValueError, match="quoting"), telemetry.traced("get_secret"):
        raise ValueError("quoting 192.0.2.44")
    (segment,) = recording.segments
    assert segment.name == "## get_secret"
    assert segment.annotations == {"error": "ValueError"}
    assert segment.fault and segment.exceptions == []


def test_tracing_is_on_only_in_lambda_and_switchable_off() -> None:
    assert telemetry.tracing_wanted({"LAMBDA_TASK_ROOT": "/var/task"})
    assert not telemetry.tracing_wanted({})
    assert not telemetry.tracing_wanted({"LAMBDA_TASK_ROOT": "/var/task",
                                         "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not telemetry.tracing_wanted({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "1"})


def test_handler_imports_without_the_xray_sdk_when_tracing_is_off(database_url: str) -> None:
    # The SDK is in requirements.txt for AWS; here it is made unimportable on purpose.
    code = ("import sys\n"
            "sys.modules['aws_xray_sdk'] = None\n"
            "import handler\n"
            "from login_ingest import telemetry\n"
            "assert telemetry.tracer is None\n"
            "print('imported')\n")
    env = {k: v for k, v in os.environ.items() if k != "LAMBDA_TASK_ROOT"}
    env.update(DATABASE_URL=database_url, MASKING_KEY=TEST_MASKING_KEY,
               POWERTOOLS_TRACE_DISABLED="true")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(REPO), env=env,
                            capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "imported", result.stderr


def test_metrics_that_cannot_be_published_do_not_fail_the_batch(
    handler_module: ModuleType, db: psycopg2.extensions.cursor, function_logs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(outcome: Any) -> None:
        raise RuntimeError("the metrics sink is broken")

    monkeypatch.setattr(batch, "publish", broken)
    response = handler_module.lambda_handler(load("valid-batch.json"), LocalLambdaContext())
    assert response == {"batchItemFailures": []}
    db.execute("SELECT count(*) FROM user_logins")
    assert db.fetchone() == (3,)
    (warning,) = [json.loads(line) for line in function_logs if "metrics not" in line]
    assert warning["error"] == "RuntimeError"
