"""Settings from the environment, and the secrets they name (database login, masking keys)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg2.extensions import make_dsn

from login_ingest.keyring import Keyring, parse_keyring
from login_ingest.telemetry import traced

if TYPE_CHECKING:
    from login_ingest.masking import Masker
    from login_ingest.vault import Vault


class ConfigError(RuntimeError):
    """The function's configuration is missing or unusable; no record can be processed."""


# A password in a libpq URI (scheme://user:password@host) or keyword string (password=...).
_URI_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def without_passwords(text: str) -> str:
    """`text` with any database password in it replaced by ***: libpq quotes a DSN it
    cannot parse whole, and operators' commands print such errors."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URI_PASSWORD.sub(r"\1***@", text))


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
    vault_kms_key_id: str | None = None
    vault_local_key: str | None = None
    vault_data_key_max_age: int = 300

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
            vault_kms_key_id=text("VAULT_KMS_KEY_ID"),
            vault_local_key=text("VAULT_LOCAL_KEY"),
            vault_data_key_max_age=number("VAULT_DATA_KEY_MAX_AGE",
                                          cls.vault_data_key_max_age),
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
        """The masker for the current key: MASKING_KEY, else the MASKING_SECRET_ID secret."""
        return self.keyring().current

    def keyring(self) -> Keyring:
        """Every masking key, and which one is current (see keyring.parse_keyring's forms)."""
        if self.masking_key:
            return _keyring(self.masking_key, self.masking_key_id)
        if not self.masking_secret_id:
            raise ConfigError("set MASKING_KEY or MASKING_SECRET_ID")
        raw = _secret_text(self.masking_secret_id, self.secrets_max_age)
        return _keyring(raw, self.masking_key_id)

    def vault(self) -> Vault | None:
        """The vault of encrypted originals, or None when neither vault key is configured."""
        if self.vault_kms_key_id and self.vault_local_key:
            raise ConfigError("set VAULT_KMS_KEY_ID or VAULT_LOCAL_KEY, not both")
        if not (self.vault_kms_key_id or self.vault_local_key):
            return None
        # One Vault per instance: it keeps the current data key, so KMS is called once per
        # VAULT_DATA_KEY_MAX_AGE, not per batch.
        cache_key = (self.vault_kms_key_id, self.vault_local_key, self.vault_data_key_max_age)
        if cache_key not in _vaults:
            _vaults.clear()
            _vaults[cache_key] = self._new_vault()
        return _vaults[cache_key]

    def _new_vault(self) -> Vault:
        # Imported here: the vault needs `cryptography`, which a function without a vault
        # never loads.
        from login_ingest import vault

        try:
            if self.vault_kms_key_id:
                return vault.Vault(vault.KmsDataKeys(self.vault_kms_key_id,
                                                     self.vault_data_key_max_age))
            return vault.Vault(vault.LocalDataKeys(self.vault_local_key or ""))
        except vault.VaultKeyError as error:
            raise ConfigError(str(error)) from None


_keyrings: dict[tuple[str, str | None], Keyring] = {}
_vaults: dict[tuple[str | None, str | None, int], Vault] = {}


def _keyring(raw: str, key_id: str | None) -> Keyring:
    # One Keyring per secret value: building a Masker hashes its key, which is wasted work
    # on a warm start. A new value (a rotation) replaces the old one.
    cache_key = (raw, key_id)
    if cache_key not in _keyrings:
        _keyrings.clear()
        _keyrings[cache_key] = parse_keyring(raw, key_id)
    return _keyrings[cache_key]


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
