"""Settings from the environment, and the secrets they name (database login, masking key)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg2.extensions import make_dsn

from login_ingest.masking import Masker
from login_ingest.telemetry import traced


class ConfigError(RuntimeError):
    """The function's configuration is missing or unusable; no record can be processed."""


@dataclass(frozen=True)
class Settings:
    """Everything the function reads from its environment; see README's configuration table."""

    database_url: str | None = None
    db_secret_id: str | None = None
    db_host: str | None = None
    db_name: str | None = None
    db_sslmode: str = "require"
    db_sslrootcert: str | None = None
    db_connect_timeout: int = 5
    db_statement_timeout_ms: int = 10_000
    masking_key: str | None = None
    masking_key_id: str | None = None
    masking_secret_id: str | None = None
    secrets_max_age: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def text(name: str) -> str | None:
            return env.get(name) or None

        def number(name: str, default: int) -> int:
            raw = env.get(name)
            try:
                return int(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name} must be a whole number") from None

        return cls(
            database_url=text("DATABASE_URL"),
            db_secret_id=text("DB_SECRET_ID"),
            db_host=text("DB_HOST"),
            db_name=text("DB_NAME"),
            db_sslmode=text("DB_SSLMODE") or cls.db_sslmode,
            db_sslrootcert=text("DB_SSLROOTCERT"),
            db_connect_timeout=number("DB_CONNECT_TIMEOUT", cls.db_connect_timeout),
            db_statement_timeout_ms=number("DB_STATEMENT_TIMEOUT_MS", cls.db_statement_timeout_ms),
            masking_key=text("MASKING_KEY"),
            masking_key_id=text("MASKING_KEY_ID"),
            masking_secret_id=text("MASKING_SECRET_ID"),
            secrets_max_age=number("SECRETS_MAX_AGE", cls.secrets_max_age),
        )

    def database_dsn(self) -> str:
        """A libpq connection string: DATABASE_URL as given, else built from the RDS secret."""
        if self.database_url:
            return self.database_url
        if not self.db_secret_id:
            raise ConfigError("set DATABASE_URL or DB_SECRET_ID")
        secret = _secret_json(self.db_secret_id, self.secrets_max_age)
        try:
            return make_dsn(
                host=self.db_host or secret["host"],
                port=secret.get("port", 5432),
                user=secret["username"],
                password=secret["password"],
                dbname=self.db_name or secret.get("dbname", "postgres"),
                sslmode=self.db_sslmode,
                sslrootcert=self.db_sslrootcert,
            )
        except KeyError as missing:
            raise ConfigError(f"database secret has no {missing} field") from None

    def masker(self) -> Masker:
        """The masker for the current key: MASKING_KEY, else the MASKING_SECRET_ID secret.

        The secret holds either the key itself or JSON {"key": ..., "key_id": ...}.
        """
        if self.masking_key:
            return _masker(self.masking_key, self.masking_key_id)
        if not self.masking_secret_id:
            raise ConfigError("set MASKING_KEY or MASKING_SECRET_ID")
        raw = _secret_text(self.masking_secret_id, self.secrets_max_age)
        key, key_id = raw, self.masking_key_id
        if raw.lstrip().startswith("{"):
            try:
                document = json.loads(raw)
                key, key_id = document["key"], document.get("key_id", key_id)
            except (ValueError, KeyError, TypeError):
                raise ConfigError("masking secret JSON must have a 'key' field") from None
        return _masker(key, key_id)


_maskers: dict[tuple[str, str | None], Masker] = {}


def _masker(key: str, key_id: str | None) -> Masker:
    # One Masker per key: building it hashes the key, which is wasted work on a warm start.
    cache_key = (key, key_id)
    if cache_key not in _maskers:
        _maskers.clear()
        _maskers[cache_key] = Masker(key.encode(), key_id)
    return _maskers[cache_key]


def _secret_text(secret_id: str, max_age: int) -> str:
    # Imported here: the parameters utility pulls in boto3, which local runs with plain
    # environment variables never need.
    from aws_lambda_powertools.utilities import parameters

    # Traced with a name only: the response is the secret itself and is never recorded.
    with traced("get_secret"):
        value = parameters.get_secret(secret_id, max_age=max_age)
    if not isinstance(value, str):
        raise ConfigError("secret must be a string, not binary")
    return value


def _secret_json(secret_id: str, max_age: int) -> dict[str, object]:
    try:
        document = json.loads(_secret_text(secret_id, max_age))
    except ValueError:
        raise ConfigError("database secret is not JSON") from None
    if not isinstance(document, dict):
        raise ConfigError("database secret is not a JSON object")
    return document
