"""Recovery from the vault: `unmask` one token, `retokenize` rows after a masking-key rotation.

The database audits every vault read.

    python -m login_ingest.recovery unmask TOKEN --reason "subject access request"
    python -m login_ingest.recovery retokenize --dry-run

Both read DATABASE_URL (or DB_SECRET_ID), the masking keys (MASKING_KEY or
MASKING_SECRET_ID) and the vault key (VAULT_KMS_KEY_ID with KMS Decrypt, or
VAULT_LOCAL_KEY), as the function does; see README, "Recovering PII".
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions

from login_ingest.config import ConfigError, Settings, without_passwords
from login_ingest.keyring import Keyring
from login_ingest.masking import MaskingKeyError
from login_ingest.vault import Vault, VaultKeyError

Connection = psycopg2.extensions.connection


class RecoveryError(RuntimeError):
    """A recovery request that cannot be carried out; the message quotes no original."""


def unmask(connection: Connection, vault: Vault, token: str, requester: str,
           reason: str) -> str | None:
    """The original behind `token`, or None if the vault has no row for it.

    The audit row (database user, requester, time, token, reason) is committed before the
    vault is read, and the read marks it found or not: a failed decryption is still on the
    record.
    """
    if not reason.strip():
        raise RecoveryError("a reason is required to unmask a token")
    audit_id = _request(connection, "pii_request_unmask", token, requester, reason)
    with connection, connection.cursor() as cursor:
        found = _read(cursor, audit_id)
    if not found:
        return None
    return _open(vault, found[0])


def _request(connection: Connection, function: str, tokens: str | list[str],
             requester: str, reason: str) -> int:
    """Record a vault read in the audit trail and commit it: the database refuses to read
    under a request that has not committed (sql/003_roles.sql)."""
    with connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s, %s)", [tokens, requester, reason])
        (audit_id,) = cursor.fetchone() or (None,)
    assert isinstance(audit_id, int)
    return audit_id


VaultRow = tuple[str, Any, str, str, Any]  # token, ciphertext, data key id, wrapping, wrapped


def _read(cursor: psycopg2.extensions.cursor, audit_id: int) -> list[VaultRow]:
    cursor.execute("SELECT * FROM pii_vault_read(%s)", [audit_id])
    return cursor.fetchall()


def _open(vault: Vault, row: VaultRow) -> str:
    token, ciphertext, data_key_id, wrapping_key, wrapped_key = row
    return vault.open(token, bytes(ciphertext), data_key_id, wrapping_key, bytes(wrapped_key))


@dataclass
class RetokenizeCounts:
    """What a retokenize run found: every row it examined is retokenised or unrecoverable."""

    already_current: int = 0  # rows with no token of an older key (none at all, too): skipped
    examined: int = 0  # rows with at least one token of an older key
    retokenized: int = 0  # rows now wholly on the current key (dry run: would be)
    unrecoverable: int = 0  # rows with a token the vault does not hold

    def line(self, dry_run: bool) -> str:
        verb = "would be retokenised" if dry_run else "retokenised"
        return (f"{self.examined} rows on older keys: {self.retokenized} {verb}, "
                f"{self.unrecoverable} unrecoverable (their originals are not in the vault); "
                f"{self.already_current} with nothing to do (on the current key, or with "
                "neither ip nor device id)")


_PENDING = (
    "FROM user_logins WHERE (NOT starts_with(masked_ip, %(prefix)s)"
    " OR NOT starts_with(masked_device_id, %(prefix)s))"
)
_NEXT_BATCH = (
    "SELECT message_id, masked_ip, masked_device_id " + _PENDING +
    " AND message_id > %(after)s ORDER BY message_id LIMIT %(limit)s"
)
_ADD_TO_VAULT = (
    "WITH data_key AS ("
    " INSERT INTO pii_vault_keys (data_key_id, wrapping_key, wrapped_key)"
    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING)"
    " INSERT INTO pii_vault (token, ciphertext, data_key_id)"
    " SELECT token, ciphertext, %s FROM unnest(%s::varchar[], %s::bytea[]) AS t (token, ciphertext)"
    " ON CONFLICT DO NOTHING"
)
_REWRITE = (
    "UPDATE user_logins SET masked_ip = coalesce(new.masked_ip, user_logins.masked_ip),"
    " masked_device_id = coalesce(new.masked_device_id, user_logins.masked_device_id)"
    " FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[])"
    " AS new (message_id, masked_ip, masked_device_id)"
    " WHERE user_logins.message_id = new.message_id"
)


def pending_rows(connection: Connection, keyring: Keyring) -> tuple[int, int]:
    """(rows with a token of an older key, all rows): what a run has ahead of it."""
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) " + _PENDING, {"prefix": keyring.current.key_id + ":"})
        (pending,) = cursor.fetchone() or (0,)
        cursor.execute("SELECT count(*) FROM user_logins")
        (total,) = cursor.fetchone() or (0,)
    return pending, total


def retokenize(connection: Connection, vault: Vault, keyring: Keyring, requester: str,
               reason: str, batch_size: int = 1000, dry_run: bool = False,
               progress: Callable[[int], object] = lambda rows: None) -> RetokenizeCounts:
    """Re-mask, with the current key, every row holding a token of an older key.

    HMAC is one-way, so the originals come from the vault: per batch of rows, an audit row
    naming the batch's old tokens, committed first; then the vault read, one insert of the
    new tokens' vault rows and one update, in one transaction. Rows already on the current
    key are never read, so a run can be stopped and started again; rows whose originals the
    vault lacks (stored before it was on) are counted and left as they are. A dry run reads
    and decrypts (audited) but writes nothing.
    """
    pending, total = pending_rows(connection, keyring)
    counts = RetokenizeCounts(already_current=total - pending)
    prefix = keyring.current.key_id + ":"
    audit_reason = f"{reason} (dry run)" if dry_run else reason
    after = ""
    while True:
        with connection, connection.cursor() as cursor:
            cursor.execute(_NEXT_BATCH, {"prefix": prefix, "after": after, "limit": batch_size})
            rows: list[tuple[str, str | None, str | None]] = cursor.fetchall()
        if not rows:
            break
        after = rows[-1][0]
        old_tokens = sorted({token for _, *tokens in rows for token in tokens
                             if token is not None and not keyring.is_current(token)})
        audit_id = _request(connection, "pii_request_retokenize", old_tokens, requester,
                            audit_reason)
        # The batch's read, its new vault rows and its update commit together.
        with connection, connection.cursor() as cursor:
            _retokenize_batch(cursor, vault, keyring, rows, audit_id, dry_run, counts)
        progress(len(rows))
    return counts


def _retokenize_batch(cursor: psycopg2.extensions.cursor, vault: Vault, keyring: Keyring,
                      rows: Sequence[tuple[str, str | None, str | None]], audit_id: int,
                      dry_run: bool, counts: RetokenizeCounts) -> None:
    originals = {row[0]: _open(vault, row) for row in _read(cursor, audit_id)}

    current = keyring.current
    new_tokens: dict[str, str] = {}  # new token -> original, for the vault
    rewrites: list[tuple[str, str | None, str | None]] = []
    for message_id, masked_ip, masked_device_id in rows:
        new_ip = _remask(masked_ip, originals, keyring, current.mask_ip, new_tokens)
        new_device_id = _remask(masked_device_id, originals, keyring, current.mask_device_id,
                                new_tokens)
        counts.examined += 1
        if _still_old(masked_ip, new_ip, keyring) or _still_old(masked_device_id,
                                                                new_device_id, keyring):
            counts.unrecoverable += 1
        else:
            counts.retokenized += 1
        if new_ip or new_device_id:
            rewrites.append((message_id, new_ip, new_device_id))

    if dry_run or not rewrites:
        return
    sealed = vault.seal(new_tokens)
    key = sealed.data_key
    tokens, ciphertexts = sealed.for_tokens(list(new_tokens))
    cursor.execute(_ADD_TO_VAULT, [key.data_key_id, key.wrapping_key, key.wrapped,
                                   key.data_key_id, tokens, ciphertexts])
    cursor.execute(_REWRITE, [list(column) for column in zip(*rewrites, strict=True)])


def _remask(token: str | None, originals: dict[str, str], keyring: Keyring,
            mask: Callable[[str], str], new_tokens: dict[str, str]) -> str | None:
    """The current key's token for `token`'s original; None if unchanged or unknown."""
    if token is None or keyring.is_current(token) or token not in originals:
        return None
    new_token = mask(originals[token])
    new_tokens[new_token] = originals[token]
    return new_token


def _still_old(token: str | None, new_token: str | None, keyring: Keyring) -> bool:
    return token is not None and new_token is None and not keyring.is_current(token)


# --- command line ------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    _check_audit_fields(parser, arguments)
    settings = Settings.from_env()
    try:
        vault = settings.vault()
        if vault is None:
            raise ConfigError("set VAULT_KMS_KEY_ID or VAULT_LOCAL_KEY to reach the vault")
        if arguments.command == "retokenize":
            settings.keyring()  # a bad masking secret is a setting, found before connecting
        connection = psycopg2.connect(settings.database_dsn(),
                                      application_name="login-ingest-recovery")
    except (ConfigError, MaskingKeyError, psycopg2.Error) as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        return 2
    try:
        if arguments.command == "unmask":
            return _unmask_command(connection, vault, arguments)
        return _retokenize_command(connection, vault, settings, arguments)
    except (RecoveryError, VaultKeyError, ConfigError, MaskingKeyError, psycopg2.Error) as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        return 1
    finally:
        connection.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m login_ingest.recovery",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)

    unmask_parser = commands.add_parser(
        "unmask", help="print the original behind one masked token (audited)")
    unmask_parser.add_argument("token", help="a masked_ip or masked_device_id value")
    unmask_parser.add_argument("--reason", required=True,
                               help="why the original is needed; kept in the audit row")
    unmask_parser.add_argument("--requester", default=getpass.getuser(),
                               help="who asked (default: this OS user)")

    retokenize_parser = commands.add_parser(
        "retokenize", help="re-mask rows of older masking keys with the current one")
    retokenize_parser.add_argument("--dry-run", action="store_true",
                                   help="count and decrypt, write nothing but the audit rows")
    retokenize_parser.add_argument("--batch-size", type=_positive, default=1000)
    retokenize_parser.add_argument("--reason", default="masking key rotation",
                                   help="kept in each batch's audit row")
    retokenize_parser.add_argument("--requester", default=getpass.getuser())
    retokenize_parser.add_argument("--no-progress", action="store_true",
                                   help="no progress bar (it goes to stderr)")
    return parser


def _unmask_command(connection: Connection, vault: Vault, arguments: argparse.Namespace) -> int:
    original = unmask(connection, vault, arguments.token, arguments.requester,
                      arguments.reason)
    if original is None:
        print("error: the vault holds no original for that token (the attempt is audited)",
              file=sys.stderr)
        return 1
    print(original)  # stdout only: never a log
    return 0


def _retokenize_command(connection: Connection, vault: Vault, settings: Settings,
                        arguments: argparse.Namespace) -> int:
    # Imported here: only this command draws a progress bar, and the function never does.
    from tqdm import tqdm

    keyring = settings.keyring()
    pending, _ = pending_rows(connection, keyring)
    with tqdm(total=pending, unit="row", disable=arguments.no_progress,
              desc=f"retokenising to {keyring.current.key_id}") as bar:
        counts = retokenize(connection, vault, keyring, arguments.requester, arguments.reason,
                            arguments.batch_size, arguments.dry_run, progress=bar.update)
    print(counts.line(arguments.dry_run))
    return 0


# The audit table's column sizes (sql/002_pii_vault.sql).
_AUDIT_TEXT_MAX = 256


def _check_audit_fields(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """Refuse, before connecting, what the audit row could not hold."""
    fields = {"--requester": arguments.requester, "--reason": arguments.reason}
    if arguments.command == "unmask":
        fields["TOKEN"] = arguments.token
    for name, value in fields.items():
        if not value.strip():
            parser.error(f"{name} must not be empty: it goes into the audit row")
    for name in ("--requester", "TOKEN"):
        if len(fields.get(name, "")) > _AUDIT_TEXT_MAX:
            parser.error(f"{name} is longer than {_AUDIT_TEXT_MAX} characters")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _describe(error: BaseException) -> str:
    if isinstance(error, psycopg2.Error):
        # Class and SQLSTATE only: a server message can quote a value. An error without a
        # SQLSTATE comes from libpq (no server, refused, timed out): its first line names the
        # host and port and what went wrong, never a password.
        code = getattr(error, "pgcode", None)
        if code:
            return f"{type(error).__name__}({code})"
        first_line = str(error).strip().splitlines()[:1]
        return without_passwords(": ".join([type(error).__name__, *first_line]))
    return without_passwords(str(error))


if __name__ == "__main__":
    sys.exit(main())
