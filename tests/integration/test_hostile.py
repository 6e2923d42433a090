"""Every body of the hostile corpus in one batch, judged against the real database."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import psycopg2.extensions

from login_ingest.local.context import LocalLambdaContext
from login_ingest.masking import Masker
from login_ingest.parsing import parse_login
from tests.conftest import rejections
from tests.hostile_corpus import CORPUS
from tests.integration.test_storage import sqs_event

COLUMNS = ["user_id", "device_type", "masked_ip", "masked_device_id", "locale", "app_version",
           "create_date"]


def test_corpus_is_large_and_mixed() -> None:
    assert len(CORPUS) >= 50
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)
    assert sum(isinstance(outcome, dict) for _, _, outcome in CORPUS) >= 10


def test_every_hostile_body_gets_its_outcome(handler_module: ModuleType,
                                             db: psycopg2.extensions.cursor, masker: Masker,
                                             function_logs: list[str]) -> None:
    event = sqs_event(*(body for _, body, _ in CORPUS))

    response = handler_module.lambda_handler(event, LocalLambdaContext())

    ids = {f"m{i}": (name, outcome) for i, (name, _, outcome) in enumerate(CORPUS)}
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert sorted(failed) == sorted(i for i, (_, o) in ids.items() if isinstance(o, str))
    reasons = rejections(function_logs)
    assert {ids[i][0]: reasons[i] for i in failed} == {ids[i][0]: ids[i][1] for i in failed}

    db.execute(f"SELECT message_id, {', '.join(COLUMNS)} FROM user_logins")
    stored = {row[0]: dict(zip(COLUMNS, row[1:], strict=True)) for row in db.fetchall()}
    assert set(stored) == {i for i, (_, o) in ids.items() if isinstance(o, dict)}
    bodies = {f"m{i}": body for i, (_, body, _) in enumerate(CORPUS)}
    for message_id, row in stored.items():
        name, expected = ids[message_id]
        assert isinstance(expected, dict)
        actual: dict[str, Any] = {**row, "create_date": str(row["create_date"])}
        assert {k: actual[k] for k in expected} == expected, name
        login = parse_login(bodies[message_id])
        assert row["masked_ip"] == (login.ip and masker.mask_ip(login.ip)), name
        assert row["masked_device_id"] == (
            login.device_id and masker.mask_device_id(login.device_id)), name

    log_text = "\n".join(function_logs)
    for raw in ["1.2.3.4", "123-45-6789", "fe80::1", "256.1.1.1", "16909060"]:
        assert raw not in log_text
