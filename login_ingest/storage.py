"""Postgres access: a lazily opened, reused connection and an idempotent bulk insert."""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import psycopg2
import psycopg2.extensions

from login_ingest.telemetry import logger

if TYPE_CHECKING:
    from login_ingest.vault import SealedOriginals

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "sql"


class LoginRow(NamedTuple):
    """One row of user_logins, in the INSERT's column order."""

    message_id: str
    user_id: str
    device_type: str | None
    masked_ip: str | None
    masked_device_id: str | None
    locale: str | None
    app_version: int | None
    create_date: datetime.date


COLUMNS = ", ".join(LoginRow._fields)

# One statement whatever the batch size: a column of values per array parameter. Postgres
# parses eight arrays much faster than thousands of VALUES rows (see README, Performance).
_INSERT = (
    f"INSERT INTO user_logins ({COLUMNS})"
    " SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[],"
    " %s::varchar[], %s::varchar[], %s::integer[], %s::date[])"
    " ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)

# The same insert with the vault: one statement, so one transaction. The originals of the
# rows it stores, and their data key, go to the vault; nothing for a redelivered or refused
# row, nothing twice for a token already there.
_INSERT_WITH_VAULT = (
    "WITH data_key AS ("
    " INSERT INTO pii_vault_keys (data_key_id, wrapping_key, wrapped_key)"
    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING),"
    f" stored AS (INSERT INTO user_logins ({COLUMNS})"
    " SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[],"
    " %s::varchar[], %s::varchar[], %s::integer[], %s::date[])"
    " ON CONFLICT (message_id) DO NOTHING"
    " RETURNING message_id, masked_ip, masked_device_id),"
    " vault AS ("
    " INSERT INTO pii_vault (token, ciphertext, data_key_id)"
    " SELECT original.token, original.ciphertext, %s"
    " FROM unnest(%s::varchar[], %s::bytea[]) AS original (token, ciphertext)"
    " WHERE original.token IN (SELECT masked_ip FROM stored"
    " UNION ALL SELECT masked_device_id FROM stored)"
    " ON CONFLICT DO NOTHING)"
    " SELECT message_id FROM stored"
)

# Errors caused by one row's values: worth isolating the row. Anything else is about the
# server or the connection and fails the whole batch.
_ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, ValueError)
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


# From this many rows on, COPY's extra round trip costs less than what it saves (measured
# with `make bench`; see README, Performance).
COPY_FROM_ROWS = 200


class DatabaseUnavailable(RuntimeError):
    """The database could not take the batch; nothing of it may be acknowledged."""


@dataclass
class StoreResult:
    """What became of each row: inserted now, already there (a redelivery), or refused."""

    inserted: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)  # message_id -> SQLSTATE or error class


class LoginStore:
    """Writes login rows; opens its connection on first use and keeps it across invocations."""

    def __init__(self, dsn: Callable[[], str], connect_timeout: int = 5,
                 statement_timeout_ms: int = 10_000) -> None:
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._connection: psycopg2.extensions.connection | None = None

    def store(self, rows: Sequence[LoginRow],
              sealed: SealedOriginals | None = None) -> StoreResult:
        """Insert `rows` in one statement, skipping message_ids already stored.

        With `sealed`, the encrypted originals of the rows stored go to the vault in the
        same statement. A row the database refuses is isolated by bisection and reported
        in `rejected`; the rest are stored. Raises DatabaseUnavailable when the server
        cannot be used.
        """
        if not rows:
            return StoreResult()
        reused = self._connection is not None and not self._connection.closed
        try:
            return self._store_isolating(self._connect(), rows, sealed)
        except _CONNECTION_ERRORS as error:
            self.close()
            if not reused:
                raise DatabaseUnavailable(_describe(error)) from error
            # A kept connection can die unseen while the instance is frozen or the server
            # restarts. One retry on a new connection is safe: the insert is idempotent.
            logger.warning("reconnecting after stale connection", extra={"error": _describe(error)})
        try:
            return self._store_isolating(self._connect(), rows, sealed)
        except _CONNECTION_ERRORS as error:
            self.close()
            raise DatabaseUnavailable(_describe(error)) from error

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _connect(self) -> psycopg2.extensions.connection:
        if self._connection is None or self._connection.closed:
            try:
                dsn = self._dsn()
            except Exception as error:
                raise DatabaseUnavailable(f"cannot resolve database settings: {error}") from error
            connection = psycopg2.connect(
                dsn,
                connect_timeout=self._connect_timeout,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
                application_name="login-ingest",
            )
            # Each INSERT commits by itself: one round trip per batch, no transaction left open.
            connection.autocommit = True
            self._connection = connection
        return self._connection

    def _store_isolating(self, connection: psycopg2.extensions.connection,
                         rows: Sequence[LoginRow],
                         sealed: SealedOriginals | None = None) -> StoreResult:
        # A large batch of new rows goes faster by COPY than by any INSERT. COPY is all or
        # nothing, so a redelivered message (unique violation) or a refused value leaves
        # nothing behind, and the batch goes the idempotent way. A small batch goes that
        # way at once: COPY waits for the server before sending data, one round trip more.
        # With the vault, COPY is skipped: the vault rows must share the rows' transaction.
        if sealed is None and len(rows) >= COPY_FROM_ROWS:
            try:
                _copy(connection, rows)
                return StoreResult(inserted={row.message_id for row in rows})
            except _ROW_ERRORS:
                pass
        result = StoreResult()
        pending = [rows]
        while pending:
            chunk = pending.pop()
            try:
                result.inserted.update(_insert(connection, chunk) if sealed is None
                                       else _insert_with_vault(connection, chunk, sealed))
            except _ROW_ERRORS as error:
                if len(chunk) == 1:
                    result.rejected[chunk[0].message_id] = _describe(error)
                else:
                    middle = len(chunk) // 2
                    pending += [chunk[middle:], chunk[:middle]]
        return result


_COPY = f"COPY user_logins ({COLUMNS}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_NULL = "\\N"


def _copy(connection: psycopg2.extensions.connection, rows: Sequence[LoginRow]) -> None:
    """All rows in one COPY, one implicit transaction in autocommit mode."""
    with connection.cursor() as cursor:
        cursor.copy_expert(_COPY, io.StringIO(copy_text(rows)))


def copy_text(rows: Sequence[LoginRow]) -> str:
    """`rows` in COPY's text format: tab-separated, escaped, \\N for NULL."""
    # This runs for every row of a large batch. Escaping is rare: one search over a row's
    # text decides it, and each distinct date is formatted once.
    lines = []
    days: dict[datetime.date, str] = {}
    needs_escape = _NEEDS_ESCAPE.search
    for row in rows:
        message_id, user_id, device_type, masked_ip, masked_device_id, locale, version, day = row
        day_text = days.get(day)
        if day_text is None:
            day_text = days[day] = day.isoformat()
        version_text = _NULL if version is None else version
        if needs_escape(f"{message_id}{user_id}{device_type}{masked_ip}{masked_device_id}{locale}"):
            lines.append(
                f"{_escaped(message_id)}\t{_escaped(user_id)}\t{_escaped(device_type)}\t"
                f"{_escaped(masked_ip)}\t{_escaped(masked_device_id)}\t{_escaped(locale)}\t"
                f"{version_text}\t{day_text}\n")
        else:
            lines.append(
                f"{message_id}\t{user_id}\t{_NULL if device_type is None else device_type}\t"
                f"{_NULL if masked_ip is None else masked_ip}\t"
                f"{_NULL if masked_device_id is None else masked_device_id}\t"
                f"{_NULL if locale is None else locale}\t{version_text}\t{day_text}\n")
    return "".join(lines)


def _escaped(value: str | None) -> str:
    if value is None:
        return _NULL
    return value.translate(_COPY_ESCAPES)


def _insert(connection: psycopg2.extensions.connection, rows: Sequence[LoginRow]) -> list[str]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, columns)
        return [message_id for (message_id,) in cursor.fetchall()]


def _insert_with_vault(connection: psycopg2.extensions.connection, rows: Sequence[LoginRow],
                       sealed: SealedOriginals) -> list[str]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    tokens, ciphertexts = sealed.for_tokens(
        [row.masked_ip for row in rows] + [row.masked_device_id for row in rows])
    key = sealed.data_key
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_WITH_VAULT, [
            key.data_key_id, key.wrapping_key, key.wrapped, *columns,
            key.data_key_id, tokens, ciphertexts])
        return [message_id for (message_id,) in cursor.fetchall()]


def _describe(error: BaseException) -> str:
    """Error class and SQLSTATE only: server messages can quote the offending value."""
    code = getattr(error, "pgcode", None)
    return f"{type(error).__name__}({code})" if code else type(error).__name__


def apply_schema(dsn: str, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Run every sql/NNN_*.sql file in name order; each is idempotent. Returns their names."""
    files = sorted(schema_dir.glob("*.sql"))
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        for path in files:
            cursor.execute(path.read_text())
    connection.close()
    return [path.name for path in files]
