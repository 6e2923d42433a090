"""How rejected records are reported in the function's logs: one line per reason, never a
line per record, and logged even when the batch then fails as a whole."""

from __future__ import annotations

import json

import pytest

from login_ingest.batch import REJECTED_IDS_PER_LINE, LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.postgres import free_port
from login_ingest.masking import Masker
from login_ingest.storage import DatabaseUnavailable, LoginStore
from tests.conftest import rejections
from tests.integration.test_storage import sqs_event


def test_many_bad_records_make_a_few_lines_each_within_the_limit(
        database_url: str, masker: Masker, function_logs: list[str]) -> None:
    bad = REJECTED_IDS_PER_LINE * 2 + 1
    bodies = ["not json"] * bad + ['{"user_id": 7}'] * 3 + ['{"user_id": "u"}']
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), lambda: masker)

    response = processor.handle(sqs_event(*bodies), LocalLambdaContext())

    assert len(response["batchItemFailures"]) == bad + 3
    lines = [json.loads(line) for line in function_logs if '"records rejected"' in line]
    assert [(line["reason"], line["count"]) for line in lines] == [
        ("not_json", REJECTED_IDS_PER_LINE), ("not_json", REJECTED_IDS_PER_LINE),
        ("not_json", 1), ("invalid_user_id", 3)]
    assert rejections(function_logs) == {
        **{f"m{i}": "not_json" for i in range(bad)},
        **{f"m{i}": "invalid_user_id" for i in range(bad, bad + 3)}}


def test_rejections_are_logged_when_the_database_then_fails(
        masker: Masker, function_logs: list[str]) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    processor = LoginBatchProcessor(LoginStore(lambda: dead, connect_timeout=2), lambda: masker)

    with pytest.raises(DatabaseUnavailable):
        processor.handle(sqs_event('{"user_id": "u"}', "[1]"), LocalLambdaContext())

    assert rejections(function_logs) == {"m1": "not_an_object"}
