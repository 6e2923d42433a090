"""The vault beside user_logins on the real server: written in the rows' own statement,
once per distinct token, never for a redelivered or refused row, and readable back."""

from __future__ import annotations

import json
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.masking import Masker
from login_ingest.storage import COPY_FROM_ROWS, LoginStore
from login_ingest.vault import LocalDataKeys, Vault, new_local_key
from tests.integration.test_storage import sqs_event

MASKER = Masker(b"vault-test-masking-key-0123456789abcdef", "k1")


def processor_with_vault(database_url: str) -> tuple[LoginBatchProcessor, Vault]:
    vault = Vault(LocalDataKeys(new_local_key()))
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER,
                                    vault=lambda: vault)
    return processor, vault


def login(i: int, ip: str = "192.0.2.1") -> str:
    return json.dumps({"user_id": f"u{i}", "ip": ip, "device_id": f"dev-{i % 3}"})


def vault_rows(db: psycopg2.extensions.cursor) -> dict[str, tuple[Any, ...]]:
    db.execute("SELECT v.token, v.ciphertext, v.data_key_id, k.wrapping_key, k.wrapped_key"
               " FROM pii_vault v JOIN pii_vault_keys k USING (data_key_id)")
    return {token: (bytes(ciphertext), key_id, wrapping, bytes(wrapped))
            for token, ciphertext, key_id, wrapping, wrapped in db.fetchall()}


def test_each_distinct_original_is_stored_once_and_opens_again(
        database_url: str, vault_db: psycopg2.extensions.cursor) -> None:
    processor, vault = processor_with_vault(database_url)
    event = sqs_event(*[login(i) for i in range(9)], "not json")

    response = processor.handle(event, LocalLambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": "m9"}]}
    found = vault_rows(vault_db)
    ip_token = MASKER.mask_ip("192.0.2.1")
    device_tokens = {MASKER.mask_device_id(f"dev-{i}") for i in range(3)}
    assert set(found) == {ip_token} | device_tokens  # 9 rows, one ip, three devices
    assert vault.open(ip_token, *found[ip_token]) == "192.0.2.1"
    for token in device_tokens:
        assert vault.open(token, *found[token]).startswith("dev-")
    assert all(b"192.0.2.1" not in ciphertext for ciphertext, *_ in found.values())
    vault_db.execute("SELECT count(*) FROM pii_vault_keys")
    assert vault_db.fetchone() == (1,)


def test_redelivery_adds_no_vault_rows(database_url: str,
                                       vault_db: psycopg2.extensions.cursor) -> None:
    processor, _ = processor_with_vault(database_url)
    event = sqs_event(*[login(i) for i in range(5)])
    processor.handle(event, LocalLambdaContext())
    vault_db.execute("SELECT token, ciphertext, created_at FROM pii_vault ORDER BY token")
    before = vault_db.fetchall()

    processor.handle(event, LocalLambdaContext())
    processor.handle(sqs_event(*[login(i) for i in range(5)]), LocalLambdaContext())

    vault_db.execute("SELECT token, ciphertext, created_at FROM pii_vault ORDER BY token")
    assert vault_db.fetchall() == before  # not rewritten either: the first row stands
    vault_db.execute("SELECT count(*) FROM user_logins")
    assert vault_db.fetchone() == (5,)


def test_a_failed_vault_insert_leaves_no_login_row(
        database_url: str, vault_db: psycopg2.extensions.cursor) -> None:
    # A vault insert that fails must take its rows with it: they share one transaction.
    vault_db.execute(
        "CREATE FUNCTION test_refuse_vault() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$;"
        " CREATE TRIGGER test_refuse_vault BEFORE INSERT ON pii_vault"
        " FOR EACH ROW EXECUTE FUNCTION test_refuse_vault()")
    try:
        processor, _ = processor_with_vault(database_url)
        response = processor.handle(
            sqs_event(login(0), json.dumps({"user_id": "no-pii"})), LocalLambdaContext())
    finally:
        vault_db.execute("DROP TRIGGER test_refuse_vault ON pii_vault;"
                         " DROP FUNCTION test_refuse_vault()")

    # The row with personal data is refused (and retried by SQS); the one without is stored.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    vault_db.execute("SELECT user_id FROM user_logins")
    assert vault_db.fetchall() == [("no-pii",)]
    vault_db.execute("SELECT count(*) FROM pii_vault")
    assert vault_db.fetchone() == (0,)


def test_a_refused_row_leaves_no_vault_row(database_url: str,
                                           vault_db: psycopg2.extensions.cursor) -> None:
    vault_db.execute("ALTER TABLE user_logins ADD CONSTRAINT test_no_blocked"
                     " CHECK (user_id <> 'blocked')")
    try:
        processor, _ = processor_with_vault(database_url)
        event = sqs_event(login(0, ip="192.0.2.1"), json.dumps(
            {"user_id": "blocked", "ip": "198.51.100.7", "device_id": "dev-0"}))
        response = processor.handle(event, LocalLambdaContext())
    finally:
        vault_db.execute("ALTER TABLE user_logins DROP CONSTRAINT test_no_blocked")

    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    # dev-0 is shared with the stored row, so it is kept; the refused row's own ip is not.
    assert set(vault_rows(vault_db)) == {MASKER.mask_ip("192.0.2.1"),
                                         MASKER.mask_device_id("dev-0")}


def test_a_large_batch_with_the_vault_skips_copy(
        database_url: str, vault_db: psycopg2.extensions.cursor,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_copy(connection: Any, rows: Any) -> None:
        raise AssertionError("COPY cannot share a transaction with the vault insert")

    monkeypatch.setattr("login_ingest.storage._copy", no_copy)
    processor, _ = processor_with_vault(database_url)
    count = COPY_FROM_ROWS + 20
    event = sqs_event(*[login(i, ip=f"10.0.{i // 256}.{i % 256}") for i in range(count)])

    assert processor.handle(event, LocalLambdaContext()) == {"batchItemFailures": []}

    vault_db.execute("SELECT count(*) FROM user_logins")
    assert vault_db.fetchone() == (count,)
    assert len(vault_rows(vault_db)) == count + 3


def test_without_a_vault_nothing_is_kept(database_url: str,
                                         vault_db: psycopg2.extensions.cursor) -> None:
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER)
    processor.handle(sqs_event(login(0)), LocalLambdaContext())
    assert vault_rows(vault_db) == {}
    vault_db.execute("SELECT masked_ip FROM user_logins")
    assert vault_db.fetchall() == [(MASKER.mask_ip("192.0.2.1"),)]
