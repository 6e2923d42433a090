"""The grants of sql/003_roles.sql, tried by logging in as each role: analysts read
user_logins and nothing of the vault; the function writes but cannot read the vault;
recovery reads one original at a time, and every read leaves an audit row."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.recovery import RecoveryError, unmask
from login_ingest.storage import LoginStore
from login_ingest.vault import LocalDataKeys, Vault, new_local_key
from tests.integration.test_storage import sqs_event
from tests.integration.test_vault_store import MASKER

VAULT_TABLES = ["pii_vault", "pii_vault_keys", "pii_vault_audit"]


@pytest.fixture
def login_as(database_url: str, vault_db: psycopg2.extensions.cursor) -> Iterator[object]:
    """login_as(group) -> the URL of a new LOGIN role that is a member of `group` only."""
    created: list[str] = []

    def make(group: str) -> str:
        name = f"test_{group}_{secrets.token_hex(4)}"
        vault_db.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE {group}')
        created.append(name)
        url = urlparse(database_url)
        return url._replace(netloc=f"{name}@{url.hostname}:{url.port}").geturl()

    yield make
    for name in created:
        vault_db.execute(f'DROP ROLE "{name}"')


def connect(url: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


@pytest.fixture
def stored(database_url: str, vault_db: psycopg2.extensions.cursor) -> Vault:
    vault = Vault(LocalDataKeys(new_local_key()))
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER,
                                    vault=lambda: vault)
    processor.handle(sqs_event(json.dumps({"user_id": "u1", "ip": "192.0.2.1"})),
                     LocalLambdaContext())
    return vault


def test_analyst_reads_user_logins_and_nothing_of_the_vault(login_as: object,
                                                             stored: Vault) -> None:
    connection = connect(login_as("analyst"))  # type: ignore[operator]
    with connection.cursor() as cursor:
        cursor.execute("SELECT masked_ip FROM user_logins")
        assert cursor.fetchall() == [(MASKER.mask_ip("192.0.2.1"),)]
        for table in VAULT_TABLES:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(f"SELECT * FROM {table}")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("SELECT pii_request_unmask(%s, 'me', 'curious')",
                           [MASKER.mask_ip("192.0.2.1")])
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("SELECT * FROM pii_vault_read(1)")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("INSERT INTO user_logins (message_id) VALUES ('x')")
    connection.close()


def test_the_function_writes_rows_and_vault_but_cannot_read_the_vault(
        login_as: object, vault_db: psycopg2.extensions.cursor) -> None:
    url = login_as("login_ingest_writer")  # type: ignore[operator]
    vault = Vault(LocalDataKeys(new_local_key()))
    processor = LoginBatchProcessor(LoginStore(lambda: url), masker=lambda: MASKER,
                                    vault=lambda: vault)
    event = sqs_event(json.dumps({"user_id": "u1", "ip": "192.0.2.1", "device_id": "d-1"}))

    assert processor.handle(event, LocalLambdaContext()) == {"batchItemFailures": []}
    assert processor.handle(event, LocalLambdaContext()) == {"batchItemFailures": []}

    vault_db.execute("SELECT count(*) FROM pii_vault")
    assert vault_db.fetchone() == (2,)
    connection = connect(url)
    with connection.cursor() as cursor:
        for table in VAULT_TABLES:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(f"SELECT * FROM {table}")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("UPDATE user_logins SET masked_ip = NULL")
    connection.close()


def test_recovery_unmasks_and_every_attempt_is_audited(
        login_as: object, stored: Vault, vault_db: psycopg2.extensions.cursor) -> None:
    url = login_as("pii_recovery")  # type: ignore[operator]
    connection = psycopg2.connect(url)
    token = MASKER.mask_ip("192.0.2.1")

    assert unmask(connection, stored, token, "alice", "subject access request") == "192.0.2.1"
    assert unmask(connection, stored, "k1:unknown", "alice", "typo") is None
    with pytest.raises(RecoveryError, match="reason is required"):
        unmask(connection, stored, token, "alice", "  ")

    vault_db.execute("SELECT db_user, requester, action, token, found, reason,"
                     " now() - at < interval '1 minute' FROM pii_vault_audit ORDER BY audit_id")
    role = urlparse(url).username
    assert vault_db.fetchall() == [
        (role, "alice", "unmask", token, True, "subject access request", True),
        (role, "alice", "unmask", "k1:unknown", False, "typo", True),
    ]
    # Reading the vault directly, around the audited function, is refused; and the trail
    # cannot be rewritten by those it records.
    for statement in ["SELECT * FROM pii_vault", "DELETE FROM pii_vault_audit"]:
        with (pytest.raises(psycopg2.errors.InsufficientPrivilege), connection,
              connection.cursor() as cursor):
            cursor.execute(statement)
    connection.close()


def test_the_audit_refuses_an_empty_reason_or_token(database_url: str, stored: Vault) -> None:
    connection = psycopg2.connect(database_url)
    with pytest.raises(psycopg2.errors.CheckViolation), connection, connection.cursor() as c:
        c.execute("SELECT pii_request_unmask(%s, 'alice', ' ')", [MASKER.mask_ip("192.0.2.1")])
    for request in ["SELECT pii_request_unmask(NULL, 'alice', 'why')",
                    "SELECT pii_request_unmask('k1:x', 'alice', E'\\t\\n')",
                    "SELECT pii_request_unmask('k1:x', 'alice', U&'\\00a0\\200b')",
                    "SELECT pii_request_unmask('k1:x', U&'\\feff', 'why')",
                    "SELECT pii_request_unmask('', 'alice', 'why')",
                    "SELECT pii_request_retokenize(NULL, 'alice', 'why')"]:
        with pytest.raises(psycopg2.errors.CheckViolation), connection, \
                connection.cursor() as c:
            c.execute(request)
    connection.close()


def test_a_read_whose_audit_row_could_be_rolled_back_is_refused(
        login_as: object, stored: Vault, vault_db: psycopg2.extensions.cursor) -> None:
    # Request and read in one transaction, then roll back: were the read allowed, it would
    # leave no trail. Savepoints and other logins' requests do not get around it either.
    url = login_as("pii_recovery")  # type: ignore[operator]
    connection = psycopg2.connect(url)
    token = MASKER.mask_ip("192.0.2.1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pii_request_unmask(%s, 'mallory', 'no trail')", [token])
        (audit_id,) = cursor.fetchone()  # type: ignore[misc]
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="not committed"):
            cursor.execute("SELECT * FROM pii_vault_read(%s)", [audit_id])
    connection.rollback()
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT s")
        cursor.execute("SELECT pii_request_unmask(%s, 'mallory', 'no trail')", [token])
        (audit_id,) = cursor.fetchone()  # type: ignore[misc]
        cursor.execute("RELEASE SAVEPOINT s")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="not committed"):
            cursor.execute("SELECT * FROM pii_vault_read(%s)", [audit_id])
    connection.rollback()
    vault_db.execute("SELECT count(*) FROM pii_vault_audit")
    assert vault_db.fetchone() == (0,)

    # A committed request of another login is not this login's to read under.
    other = psycopg2.connect(login_as("pii_recovery"))  # type: ignore[operator]
    with other, other.cursor() as cursor:
        cursor.execute("SELECT pii_request_unmask(%s, 'bob', 'fraud case')", [token])
        (bobs,) = cursor.fetchone()  # type: ignore[misc]
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="of this login"), \
            connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pii_vault_read(%s)", [bobs])

    # A request allows one read; a second needs a request of its own.
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT pii_request_unmask(%s, 'mallory', 'once')", [token])
        (once,) = cursor.fetchone()  # type: ignore[misc]
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pii_vault_read(%s)", [once])
        assert cursor.fetchone() == (1,)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="read already"), \
            connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pii_vault_read(%s)", [once])

    # A transaction held open from before a request cannot date it earlier than it was made.
    early = psycopg2.connect(login_as("pii_recovery"))  # type: ignore[operator]
    with early.cursor() as cursor:
        cursor.execute("SELECT now()")
        (opened,) = cursor.fetchone()  # type: ignore[misc]
        time.sleep(0.2)
        cursor.execute("SELECT pii_request_unmask(%s, 'eve', 'dated')", [token])
    early.commit()
    early.close()
    vault_db.execute("SELECT at FROM pii_vault_audit WHERE requester = 'eve'")
    (at,) = vault_db.fetchone()  # type: ignore[misc]
    assert (at - opened).total_seconds() >= 0.2

    # Nor is a request of its own once it is 15 minutes old.
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT pii_request_unmask(%s, 'mallory', 'later')", [token])
        (old,) = cursor.fetchone()  # type: ignore[misc]
    vault_db.execute("UPDATE pii_vault_audit SET at = at - interval '16 minutes'"
                     " WHERE audit_id = %s", [old])
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="expired"), \
            connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pii_vault_read(%s)", [old])
    connection.close()
    other.close()


def test_schema_files_apply_twice(database_url: str) -> None:
    from login_ingest.storage import apply_schema

    assert apply_schema(database_url) == apply_schema(database_url)


def test_a_temporary_table_cannot_stand_in_for_the_audit_trail(
        login_as: object, stored: Vault, vault_db: psycopg2.extensions.cursor) -> None:
    # Postgres searches pg_temp first unless a function's search_path puts it last: a forged
    # "request" in a temporary pii_vault_audit would otherwise open the vault unrecorded.
    connection = connect(login_as("pii_recovery"))  # type: ignore[operator]
    token = MASKER.mask_ip("192.0.2.1")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE pii_vault_audit (LIKE public.pii_vault_audit)")
        cursor.execute("SELECT pg_current_xact_id()")
        (committed_xact,) = cursor.fetchone()  # type: ignore[misc]
        cursor.execute(
            "INSERT INTO pii_vault_audit (audit_id, at, db_user, requester, action, token,"
            " reason, request_xact) VALUES (424242, clock_timestamp(), session_user, 'x',"
            " 'unmask', %s, 'forged', %s)", [token, committed_xact])
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="no vault request"):
            cursor.execute("SELECT * FROM pii_vault_read(424242)")
        # Dropped here: a closing session removes it only after the role is to be dropped.
        cursor.execute("DROP TABLE pg_temp.pii_vault_audit")
    connection.close()
    vault_db.execute("SELECT count(*) FROM pii_vault_audit")
    assert vault_db.fetchone() == (0,)


def test_two_reads_of_one_request_at_once_give_one_answer(
        login_as: object, stored: Vault) -> None:
    url = login_as("pii_recovery")  # type: ignore[operator]
    first, second = psycopg2.connect(url), psycopg2.connect(url)
    with first, first.cursor() as cursor:
        cursor.execute("SELECT pii_request_unmask(%s, 'carol', 'race')",
                       [MASKER.mask_ip("192.0.2.1")])
        (audit_id,) = cursor.fetchone()  # type: ignore[misc]
    with first.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pii_vault_read(%s)", [audit_id])
        assert cursor.fetchone() == (1,)
    # The second read waits for the first's transaction, then finds the request read.
    second.autocommit = True
    outcome: list[BaseException | tuple[int]] = []

    def read_again() -> None:
        try:
            with second.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pii_vault_read(%s)", [audit_id])
                outcome.append(cursor.fetchone())  # type: ignore[arg-type]
        except psycopg2.Error as error:
            outcome.append(error)

    waiting = threading.Thread(target=read_again)
    waiting.start()
    time.sleep(0.5)
    assert not outcome, "the second read should wait for the first's commit"
    first.commit()
    waiting.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], psycopg2.errors.InsufficientPrivilege)
    first.close()
    second.close()
