"""LoginStore and the batch processor against the real server: idempotence, isolation of rows
the database refuses, and what happens when the database is gone."""

from __future__ import annotations

import datetime
import json
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.postgres import free_port
from login_ingest.masking import Masker, MaskingKeyError
from login_ingest.storage import (
    COLUMNS,
    COPY_FROM_ROWS,
    DatabaseUnavailable,
    LoginRow,
    LoginStore,
    _copy,
)

DAY = datetime.date(2024, 12, 3)


def row(message_id: str, user_id: str = "u", device_type: str | None = "ios") -> LoginRow:
    return LoginRow(message_id, user_id, device_type, None, None, None, 1000, DAY)


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [
        {"messageId": f"m{i}", "receiptHandle": f"r{i}", "body": body,
         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1733234400000"},
         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
        for i, body in enumerate(bodies)
    ]}


def test_store_is_idempotent_by_message_id(database_url: str,
                                           db: psycopg2.extensions.cursor) -> None:
    store = LoginStore(lambda: database_url)

    first = store.store([row("a"), row("b")])
    second = store.store([row("b"), row("c"), row("c")])

    assert first.inserted == {"a", "b"}
    assert second.inserted == {"c"}
    db.execute("SELECT message_id FROM user_logins ORDER BY 1")
    assert db.fetchall() == [("a",), ("b",), ("c",)]


def test_rows_the_database_refuses_are_isolated(database_url: str,
                                                db: psycopg2.extensions.cursor) -> None:
    # Validation would stop these; the store must cope with whatever slips past it.
    too_long = "x" * 33
    rows = [row(f"ok{i}") for i in range(10)]
    rows[3] = row("bad-type", device_type=too_long)
    rows[7] = row("bad-nul", user_id="nul\x00byte")

    result = LoginStore(lambda: database_url).store(rows)

    assert set(result.rejected) == {"bad-type", "bad-nul"}
    assert result.rejected["bad-type"] == "StringDataRightTruncation(22001)"
    assert result.inserted == {f"ok{i}" for i in range(10)} - {"ok3", "ok7"}
    for reason in result.rejected.values():
        assert too_long not in reason and "nul" not in reason


def test_unreachable_database_fails_the_whole_invocation(function_logs: list[str]) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    processor = LoginBatchProcessor(LoginStore(lambda: dead, connect_timeout=2),
                                    masker=lambda: Masker(b"k" * 32))
    event = sqs_event(json.dumps({"user_id": "u1", "ip": "192.0.2.1"}), "not json")

    with pytest.raises(DatabaseUnavailable, match="OperationalError"):
        processor.handle(event, LocalLambdaContext())

    errors = [json.loads(line) for line in function_logs if '"level":"ERROR"' in line]
    assert len(errors) == 1 and errors[0]["received"] == 2
    assert "192.0.2.1" not in "\n".join(function_logs)


def test_connection_killed_between_invocations_is_replaced(
    database_url: str, db: psycopg2.extensions.cursor
) -> None:
    store = LoginStore(lambda: database_url)
    store.store([row("before")])
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
               " WHERE application_name = 'login-ingest'")

    assert store.store([row("after")]).inserted == {"after"}

    db.execute("SELECT count(*) FROM user_logins")
    assert db.fetchone() == (2,)


def test_database_rejection_is_reported_per_record(database_url: str,
                                                   db: psycopg2.extensions.cursor) -> None:
    db.execute("ALTER TABLE user_logins ADD CONSTRAINT test_no_blocked"
               " CHECK (user_id <> 'blocked-user')")
    try:
        processor = LoginBatchProcessor(LoginStore(lambda: database_url),
                                        masker=lambda: Masker(b"k" * 32))
        event = sqs_event('{"user_id": "fine"}', '{"user_id": "blocked-user"}', "[]")
        response = processor.handle(event, LocalLambdaContext())
    finally:
        db.execute("ALTER TABLE user_logins DROP CONSTRAINT test_no_blocked")

    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"},
                                              {"itemIdentifier": "m1"}]}
    db.execute("SELECT user_id FROM user_logins")
    assert db.fetchall() == [("fine",)]


def test_unusable_masking_key_fails_the_invocation_with_a_log_line(
    database_url: str, function_logs: list[str]
) -> None:
    def bad_key() -> Masker:
        return Masker(b"short")

    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=bad_key)

    with pytest.raises(MaskingKeyError):
        processor.handle(sqs_event('{"user_id": "u"}'), LocalLambdaContext())

    (error,) = [json.loads(line) for line in function_logs if '"level":"ERROR"' in line]
    assert error["error"] == "MaskingKeyError: masking key must be at least 32 bytes"
    assert error["received"] == 1


def test_copy_keeps_every_character(database_url: str, db: psycopg2.extensions.cursor) -> None:
    tricky = ["tab\there", "new\nline", "back\\slash\\N", "cr\rlf\r\n", "\\.", "é👩‍💻\u202e"]
    rows = [row(f"t{i}", user_id=text) for i, text in enumerate(tricky)]
    connection = psycopg2.connect(database_url)
    connection.autocommit = True

    _copy(connection, rows)  # the fast path itself, not the INSERT it falls back to

    db.execute("SELECT user_id FROM user_logins ORDER BY message_id")
    assert [user_id for (user_id,) in db.fetchall()] == tricky
    connection.close()


def test_copy_keeps_every_field_and_null_as_given(
        database_url: str, db: psycopg2.extensions.cursor) -> None:
    # Rows that need escaping and rows that do not, NULLs in every nullable column, and
    # several dates: the encoder takes a shortcut for the common rows and formats each date
    # once, and must give back exactly what it was handed.
    days = [DAY, datetime.date(2024, 2, 29), datetime.date(1, 1, 1), datetime.date(9999, 12, 31)]
    texts = [None, "plain", "tab\there", "back\\N", "\\N", "new\nline\r"]
    rows = [
        LoginRow(f"m{i}\t{i}" if i % 7 == 0 else f"m{i}", f"u{texts[i % 6] or ''}",
                 texts[i % 6], texts[(i + 1) % 6], texts[(i + 2) % 6], texts[(i + 3) % 6],
                 None if i % 5 == 0 else i, days[i % 4])
        for i in range(60)
    ]
    connection = psycopg2.connect(database_url)
    connection.autocommit = True

    _copy(connection, rows)

    db.execute(f"SELECT {COLUMNS} FROM user_logins")
    assert sorted(db.fetchall(), key=repr) == sorted((tuple(r) for r in rows), key=repr)
    connection.close()


def test_large_batch_goes_by_copy_and_its_redelivery_by_insert(
    database_url: str, db: psycopg2.extensions.cursor, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[int] = []

    def counted_copy(connection: Any, rows: Any) -> None:
        copies.append(len(rows))
        _copy(connection, rows)

    monkeypatch.setattr("login_ingest.storage._copy", counted_copy)
    rows = [row(f"big{i}", user_id=f"user {i}\twith tab") for i in range(COPY_FROM_ROWS + 50)]
    store = LoginStore(lambda: database_url)

    small = [row(f"small{i}") for i in range(COPY_FROM_ROWS - 1)]
    assert store.store(small).inserted == {r.message_id for r in small}
    assert copies == []  # a small batch goes straight to the INSERT

    first = store.store(rows)
    again = store.store([*rows[:10], row("big-new"), *rows[10:]])

    assert copies == [len(rows), len(rows) + 1]
    assert first.inserted == {r.message_id for r in rows}
    assert again.inserted == {"big-new"}  # COPY refused the redelivery; INSERT skipped it
    db.execute("SELECT count(*), count(*) FILTER (WHERE user_id LIKE '%\twith tab')"
               " FROM user_logins")
    assert db.fetchone() == (len(small) + len(rows) + 1, len(rows))
