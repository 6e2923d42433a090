"""Recovery against the real server: `retokenize` after a masking-key rotation (dry run,
batches, resuming, rows the vault cannot help) and the `unmask` command line."""

from __future__ import annotations

import json

import psycopg2
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.keyring import parse_keyring
from login_ingest.local.context import LocalLambdaContext
from login_ingest.masking import Masker
from login_ingest.recovery import main, retokenize
from login_ingest.storage import LoginStore
from login_ingest.vault import LocalDataKeys, Vault, new_local_key
from tests.integration.test_storage import sqs_event

K1 = "recovery-test-key-one-0123456789abcdefghij"
K2 = "recovery-test-key-two-0123456789abcdefghij"
OLD = Masker(K1.encode(), "k1")
NEW = Masker(K2.encode(), "k2")
ROTATED = json.dumps({"current": "k2", "keys": {"k1": K1, "k2": K2}})
LOCAL_KEY = new_local_key()


def ingest(database_url: str, bodies: list[dict[str, str]], masker: Masker,
           vault: Vault | None, first: int = 0) -> None:
    processor = LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: masker,
                                    vault=lambda: vault)
    event = sqs_event(*[json.dumps(body) for body in bodies])
    for i, record in enumerate(event["Records"]):
        record["messageId"] = f"m{first + i:03}"
    assert processor.handle(event, LocalLambdaContext()) == {"batchItemFailures": []}


def logins(n: int, ip_base: str = "192.0.2") -> list[dict[str, str]]:
    return [{"user_id": f"u{i}", "ip": f"{ip_base}.{i % 4}", "device_id": f"dev-{i}"}
            for i in range(n)]


def table(db: psycopg2.extensions.cursor) -> list[tuple[str, str, str]]:
    db.execute("SELECT message_id, masked_ip, masked_device_id FROM user_logins ORDER BY 1")
    return db.fetchall()


def command_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """What the recovery commands read: the database, the rotated keyring, the vault key."""
    for name, value in {"DATABASE_URL": database_url, "MASKING_KEY": ROTATED,
                        "VAULT_LOCAL_KEY": LOCAL_KEY}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def rotated(database_url: str, vault_db: psycopg2.extensions.cursor) -> Vault:
    """10 rows stored under k1 with the vault on, 2 from before it, 3 already under k2."""
    vault = Vault(LocalDataKeys(LOCAL_KEY))
    ingest(database_url, logins(10), OLD, vault)
    ingest(database_url, logins(2, ip_base="203.0.113"), OLD, None, first=10)
    ingest(database_url, logins(3, ip_base="198.51.100"), NEW, vault, first=12)
    return vault


def test_retokenize_moves_every_recoverable_row_to_the_current_key(
        database_url: str, vault_db: psycopg2.extensions.cursor, rotated: Vault) -> None:
    keyring = parse_keyring(ROTATED)
    connection = psycopg2.connect(database_url)
    before = table(vault_db)

    dry = retokenize(connection, rotated, keyring, "ops", "rotation to k2", batch_size=4,
                     dry_run=True)
    assert (dry.examined, dry.retokenized, dry.unrecoverable, dry.already_current) == (
        12, 10, 2, 3)
    assert table(vault_db) == before

    batches: list[int] = []
    done = retokenize(connection, rotated, keyring, "ops", "rotation to k2", batch_size=4,
                      progress=batches.append)
    assert (done.examined, done.retokenized, done.unrecoverable, done.already_current) == (
        12, 10, 2, 3)
    assert batches == [4, 4, 4]

    people = logins(10)
    after = {message_id: (ip, device) for message_id, ip, device in table(vault_db)}
    for i, person in enumerate(people):
        assert after[f"m{i:03}"] == (NEW.mask_ip(person["ip"]),
                                     NEW.mask_device_id(person["device_id"]))
    # Duplicates stay duplicates across the rotation: 10 logins from 4 ips.
    assert len({after[f"m{i:03}"][0] for i in range(10)}) == 4
    # Rows from before the vault keep their old tokens: nothing can re-make them.
    assert after["m010"][0] == OLD.mask_ip("203.0.113.0")

    # The new tokens are in the vault too, so they can be unmasked in turn.
    vault_db.execute("SELECT v.ciphertext, v.data_key_id, k.wrapping_key, k.wrapped_key"
                     " FROM pii_vault v JOIN pii_vault_keys k USING (data_key_id)"
                     " WHERE token = %s", [NEW.mask_ip("192.0.2.3")])
    ciphertext, key_id, wrapping, wrapped = vault_db.fetchone()  # type: ignore[misc]
    assert rotated.open(NEW.mask_ip("192.0.2.3"), bytes(ciphertext), key_id, wrapping,
                        bytes(wrapped)) == "192.0.2.3"

    again = retokenize(connection, rotated, keyring, "ops", "rotation to k2", batch_size=4)
    assert (again.examined, again.retokenized, again.unrecoverable, again.already_current) == (
        2, 0, 2, 13)
    assert {message_id: (ip, device) for message_id, ip, device in table(vault_db)} == after

    # One audit row per batch that read the vault, the dry run's marked as such.
    vault_db.execute("SELECT action, requester, reason, cardinality(tokens), found, read_at"
                     " IS NOT NULL FROM pii_vault_audit ORDER BY audit_id")
    audit = vault_db.fetchall()
    assert len(audit) == 3 + 3 + 1
    assert all(row[:2] == ("retokenize", "ops") and row[5] for row in audit)
    assert audit[0][2:5] == ("rotation to k2 (dry run)", 8, True)  # 4 ips, 4 devices
    # The two pre-vault rows' ips: their device ids were seen again later, with the vault on,
    # so those were re-made in the first run.
    assert audit[-1][2:5] == ("rotation to k2", 2, False)
    assert after["m010"][1] == NEW.mask_device_id("dev-0")
    connection.close()


def test_cli_unmask_prints_only_the_original(
        database_url: str, vault_db: psycopg2.extensions.cursor, rotated: Vault,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command_env(monkeypatch, database_url)
    monkeypatch.delenv("VAULT_KMS_KEY_ID", raising=False)
    token = OLD.mask_device_id("dev-7")

    assert main(["unmask", token, "--reason", "fraud case", "--requester", "carol"]) == 0
    assert capsys.readouterr() == ("dev-7\n", "")

    assert main(["unmask", "k1:nothing", "--reason", "fraud case"]) == 1
    assert "holds no original" in capsys.readouterr().err

    with pytest.raises(SystemExit) as refused:
        main(["unmask", token])
    assert refused.value.code == 2
    assert "--reason" in capsys.readouterr().err

    vault_db.execute("SELECT requester, token, found FROM pii_vault_audit ORDER BY audit_id")
    assert vault_db.fetchall()[0] == ("carol", token, True)


def test_cli_retokenize_dry_run_then_for_real(
        database_url: str, vault_db: psycopg2.extensions.cursor, rotated: Vault,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command_env(monkeypatch, database_url)
    before = table(vault_db)

    assert main(["retokenize", "--dry-run", "--batch-size", "5"]) == 0
    out, err = capsys.readouterr()
    assert out == ("12 rows on older keys: 10 would be retokenised, 2 unrecoverable (their "
                   "originals are not in the vault); 3 with nothing to do (on the current key, or "
                   "with neither ip nor device id)\n")
    assert "retokenising to k2" in err and "12/12" in err  # the progress bar, on stderr
    assert table(vault_db) == before

    assert main(["retokenize", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("12 rows on older keys: 10 retokenised, 2 unrecoverable")
    assert err == ""
    vault_db.execute("SELECT count(*) FROM user_logins WHERE masked_ip LIKE 'k2:%'")
    assert vault_db.fetchone() == (13,)


def test_cli_without_a_vault_key_says_what_to_set(
        database_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("VAULT_LOCAL_KEY", raising=False)
    monkeypatch.delenv("VAULT_KMS_KEY_ID", raising=False)
    assert main(["unmask", "k1:x", "--reason", "r"]) == 2
    assert "VAULT_KMS_KEY_ID or VAULT_LOCAL_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("arguments", [
    ["unmask", "k1:x", "--reason", "fraud case", "--requester", " "],
    ["unmask", "k1:" + "x" * 300, "--reason", "fraud case"],
    ["unmask", "k1:x", "--reason", "fraud case", "--requester", "r" * 300],
    ["unmask", "k1:x", "--reason", ""],
    ["retokenize", "--reason", " "],
])
def test_cli_refuses_what_the_audit_row_cannot_hold_before_connecting(
        arguments: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(SystemExit) as refused:
        main(arguments)
    assert refused.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_cli_says_why_it_cannot_connect(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from login_ingest.local.postgres import free_port

    port = free_port()
    command_env(monkeypatch, f"postgresql://carol:secret@127.0.0.1:{port}/x")
    assert main(["unmask", "k1:x", "--reason", "fraud case"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: OperationalError: connection to server at")
    assert str(port) in err and "secret" not in err and err.count("\n") == 1


def test_cli_never_prints_a_password_from_a_broken_url(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command_env(monkeypatch, "postgresql://carol:SECRETPW@[::1/postgres")
    assert main(["unmask", "k1:x", "--reason", "fraud case"]) == 2
    err = capsys.readouterr().err
    assert "SECRETPW" not in err and "carol:***@" in err
