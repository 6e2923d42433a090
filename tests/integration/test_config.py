"""Settings from the environment, and the AWS path: secrets read from Secrets Manager
(moto's server over HTTP), turned into a working database connection and masker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlparse

import boto3
import psycopg2
import pytest
from aws_lambda_powertools.utilities import parameters

from login_ingest.config import ConfigError, Settings
from login_ingest.local.sqs import LocalSqsServer
from login_ingest.masking import Masker


@pytest.fixture
def secretsmanager(sqs_server: LocalSqsServer,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's server answers every AWS API, Secrets Manager included."""
    for name, value in {"AWS_ENDPOINT_URL": sqs_server.endpoint_url,
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]
    yield boto3.client("secretsmanager")
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    parameters.base.DEFAULT_PROVIDERS.clear()  # type: ignore[attr-defined]


def test_database_dsn_from_rds_secret(secretsmanager: object, database_url: str) -> None:
    url = urlparse(database_url)
    secret = {"engine": "postgres", "host": "db.example.invalid", "port": url.port,
              "username": "postgres", "password": "unused-with-trust-auth", "dbname": "postgres"}
    arn = secretsmanager.create_secret(  # type: ignore[attr-defined]
        Name="rds-login", SecretString=json.dumps(secret))["ARN"]

    # DB_HOST overrides the secret's host, as an RDS Proxy endpoint would.
    settings = Settings.from_env({"DB_SECRET_ID": arn, "DB_HOST": "127.0.0.1",
                                  "DB_SSLMODE": "disable"})
    with psycopg2.connect(settings.database_dsn()) as connection, connection.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("postgres",)
    connection.close()


@pytest.mark.parametrize("secret_string, key_id", [
    ("a-plain-secret-string-that-is-long-enough-0123", None),
    (json.dumps({"key": "a-json-held-key-that-is-long-enough-0123456", "key_id": "k2026"}),
     "k2026"),
])
def test_masker_from_secret(secretsmanager: object, secret_string: str,
                            key_id: str | None) -> None:
    name = f"masking-{key_id}"
    secretsmanager.create_secret(Name=name, SecretString=secret_string)  # type: ignore[attr-defined]

    masker = Settings.from_env({"MASKING_SECRET_ID": name}).masker()

    key = json.loads(secret_string)["key"] if key_id else secret_string
    assert masker.mask_ip("192.0.2.1") == Masker(key.encode(), key_id).mask_ip("192.0.2.1")
    if key_id:
        assert masker.key_id == key_id


def test_missing_settings_are_reported() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL or DB_SECRET_ID"):
        Settings.from_env({}).database_dsn()
    with pytest.raises(ConfigError, match="MASKING_KEY or MASKING_SECRET_ID"):
        Settings.from_env({}).masker()
    with pytest.raises(ConfigError, match="DB_CONNECT_TIMEOUT"):
        Settings.from_env({"DB_CONNECT_TIMEOUT": "soon"})


def test_rotated_masking_secret_masks_with_its_current_key(secretsmanager: object) -> None:
    old = "the-first-masking-key-0123456789abcdefghij"
    new = "the-next-masking-key-0123456789abcdefghijk"
    secret = {"current": "k2", "keys": {"k1": old, "k2": new}}
    secretsmanager.create_secret(  # type: ignore[attr-defined]
        Name="masking-rotated", SecretString=json.dumps(secret))

    settings = Settings.from_env({"MASKING_SECRET_ID": "masking-rotated"})

    assert settings.masker().mask_ip("192.0.2.1") == Masker(new.encode(), "k2").mask_ip(
        "192.0.2.1")
    assert set(settings.keyring().maskers) == {"k1", "k2"}
