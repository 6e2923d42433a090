"""The vault's AWS path on moto's KMS (over HTTP): data keys from GenerateDataKey, fetched
once per VAULT_DATA_KEY_MAX_AGE and not per batch, and opened again with KMS Decrypt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg2
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.config import ConfigError, Settings
from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.sqs import LocalSqsServer
from login_ingest.recovery import unmask
from login_ingest.storage import LoginStore
from login_ingest.vault import KMS_ENCRYPTION_CONTEXT, KmsDataKeys, Vault, VaultKeyError
from tests.integration.test_storage import sqs_event
from tests.integration.test_vault_store import MASKER


@pytest.fixture
def kms(sqs_server: LocalSqsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's server answers KMS too."""
    for name, value in {"AWS_ENDPOINT_URL": sqs_server.endpoint_url,
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}.items():
        monkeypatch.setenv(name, value)
    yield boto3.client("kms")


class CountingKms:
    """The real client (moto over HTTP), counting the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def generate_data_key(self, **arguments: Any) -> Any:
        self.calls.append("GenerateDataKey")
        return self.client.generate_data_key(**arguments)

    def decrypt(self, **arguments: Any) -> Any:
        self.calls.append("Decrypt")
        return self.client.decrypt(**arguments)


def test_one_data_key_per_max_age_not_per_batch(
        kms: Any, database_url: str, vault_db: psycopg2.extensions.cursor) -> None:
    key_arn = kms.create_key(Description="vault")["KeyMetadata"]["Arn"]
    now = [1000.0]
    counting = CountingKms(kms)
    vault = Vault(KmsDataKeys(key_arn, max_age=300, client=counting, clock=lambda: now[0]))
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER,
                                    vault=lambda: vault)

    for batch in range(3):
        body = json.dumps({"user_id": "u", "ip": f"192.0.2.{batch}"})
        event = sqs_event(body)
        event["Records"][0]["messageId"] = f"early-{batch}"
        processor.handle(event, LocalLambdaContext())
    assert counting.calls == ["GenerateDataKey"]

    now[0] += 300
    event = sqs_event(json.dumps({"user_id": "u", "ip": "192.0.2.9"}))
    processor.handle(event, LocalLambdaContext())
    assert counting.calls == ["GenerateDataKey", "GenerateDataKey"]

    vault_db.execute("SELECT wrapping_key, count(*) FROM pii_vault_keys GROUP BY 1")
    assert vault_db.fetchall() == [(key_arn, 2)]


def test_unmask_needs_kms_decrypt_with_the_vault_context(
        kms: Any, database_url: str, vault_db: psycopg2.extensions.cursor) -> None:
    key_arn = kms.create_key(Description="vault")["KeyMetadata"]["Arn"]
    settings = Settings.from_env({"DATABASE_URL": database_url, "VAULT_KMS_KEY_ID": key_arn})
    vault = settings.vault()
    assert vault is not None and settings.vault() is vault  # one per instance
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER,
                                    vault=settings.vault)
    processor.handle(sqs_event(json.dumps({"user_id": "u", "device_id": "d-42"})),
                     LocalLambdaContext())

    # A fresh process with nothing cached: the data key comes back through KMS Decrypt.
    counting = CountingKms(kms)
    recovery = Vault(KmsDataKeys(key_arn, client=counting))
    connection = psycopg2.connect(database_url)
    token = MASKER.mask_device_id("d-42")
    assert unmask(connection, recovery, token, "ops", "test") == "d-42"
    assert counting.calls == ["Decrypt"]

    # The wrapped key is bound to the vault's encryption context: without it KMS refuses.
    vault_db.execute("SELECT wrapped_key FROM pii_vault_keys")
    (wrapped,) = vault_db.fetchone()  # type: ignore[misc]
    assert kms.decrypt(CiphertextBlob=bytes(wrapped),
                       EncryptionContext=KMS_ENCRYPTION_CONTEXT)["Plaintext"]
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=bytes(wrapped))
    connection.close()


def test_a_refused_decrypt_stops_recovery_with_a_clear_error(kms: Any) -> None:
    key_arn = kms.create_key(Description="vault")["KeyMetadata"]["Arn"]
    sealed = Vault(KmsDataKeys(key_arn)).seal({"k1:token": "192.0.2.1"})
    key = sealed.data_key
    forged = key.wrapped[:-1] + bytes([key.wrapped[-1] ^ 1])

    with pytest.raises(VaultKeyError, match="KMS refused decrypt: InvalidCiphertextException"):
        Vault(KmsDataKeys(key_arn)).open("k1:token", sealed.ciphertexts["k1:token"],
                                         key.data_key_id, key.wrapping_key, forged)


def test_vault_settings() -> None:
    assert Settings.from_env({}).vault() is None
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"VAULT_KMS_KEY_ID": "alias/x", "VAULT_LOCAL_KEY": "ab" * 32}).vault()
    with pytest.raises(ConfigError, match="32 bytes"):
        Settings.from_env({"VAULT_LOCAL_KEY": "short"}).vault()
    with pytest.raises(ConfigError, match="VAULT_DATA_KEY_MAX_AGE"):
        Settings.from_env({"VAULT_DATA_KEY_MAX_AGE": "soon"})


def test_a_kms_refusal_fails_the_invocation_with_its_code(
        kms: Any, database_url: str, vault_db: psycopg2.extensions.cursor,
        function_logs: list[str]) -> None:
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    vault = Vault(KmsDataKeys(missing))
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER,
                                    vault=lambda: vault)

    with pytest.raises(VaultKeyError):
        processor.handle(sqs_event(json.dumps({"user_id": "u", "ip": "192.0.2.1"})),
                         LocalLambdaContext())

    (error,) = [json.loads(line) for line in function_logs if '"level":"ERROR"' in line]
    assert error["error"] == "VaultKeyError: KMS refused generate_data_key: NotFoundException"
    vault_db.execute("SELECT count(*) FROM user_logins")
    assert vault_db.fetchone() == (0,)  # nothing stored without its original in the vault
