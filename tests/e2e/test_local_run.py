"""The main job end to end: moto's SQS server, the local event source mapping, the handler,
and Postgres, on the Fetch sample file and on our own generated messages."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2.extensions
import pytest

from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.generator import generate
from login_ingest.local.inputs import read_bodies
from login_ingest.local.run import RunOptions, RunSummary, run_pipeline
from login_ingest.local.sqs import LocalSqsServer
from login_ingest.masking import Masker
from login_ingest.parsing import RecordRejected, parse_login
from tests.conftest import REPO, each_rejection, shared_sample

_queue_names = (f"e2e-{n}" for n in itertools.count())


def drain(bodies: list[str], sqs_server: LocalSqsServer, database_url: str,
          function: Any) -> RunSummary:
    # A short visibility timeout keeps the five retries of a poison message to seconds; it
    # must outlast the batching window, or a message could come twice into one batch.
    options = RunOptions(batch_size=10, batching_window=0, max_receive_count=5,
                         visibility_timeout=1, queue_name=next(_queue_names))
    return run_pipeline(bodies, sqs_server.client(), database_url, options, function=function)


def table_text(db: psycopg2.extensions.cursor) -> str:
    db.execute("SELECT * FROM user_logins")
    return "\n".join(repr(row) for row in db.fetchall())


def check_masking(db: psycopg2.extensions.cursor, logins: list[dict[str, Any]],
                  masker: Masker) -> None:
    """Each row carries exactly the tokens of its input; equal inputs share a token."""
    db.execute("SELECT user_id, masked_ip, masked_device_id FROM user_logins")
    stored = {user_id: (ip, device) for user_id, ip, device in db.fetchall()}
    for login in logins:
        assert stored[login["user_id"]] == (
            masker.mask_ip(parse_login(json.dumps(login)).ip or ""),
            masker.mask_device_id(login["device_id"]),
        )


def test_fetch_sample_end_to_end(handler_module: ModuleType, sqs_server: LocalSqsServer,
                                 database_url: str, db: psycopg2.extensions.cursor,
                                 masker: Masker, function_logs: list[str]) -> None:
    bodies = read_bodies(shared_sample())
    delivered: list[dict[str, Any]] = []

    def recording_handler(event: dict[str, Any], context: Any) -> Any:
        delivered.append(event)
        return handler_module.lambda_handler(event, context)

    summary = drain(bodies, sqs_server, database_url, recording_handler)

    assert (summary.enqueued, summary.stored, summary.duplicates) == (100, 99, 0)
    assert summary.dead_lettered == 1
    assert summary.item_failures == 5  # the one malformed message, once per receive
    db.execute("SELECT count(*) FROM user_logins")
    assert db.fetchone() == (99,)

    # At-least-once: every batch delivered again, as after a crash before the deletes.
    for event in delivered:
        handler_module.lambda_handler(event, LocalLambdaContext())
    db.execute("SELECT count(*) FROM user_logins")
    assert db.fetchone() == (99,)

    logins = [json.loads(body) for body in bodies]
    valid = [login for login in logins if "user_id" in login]
    check_masking(db, valid, masker)
    stored_text, log_text = table_text(db), "\n".join(function_logs)
    # Five receives of the malformed message, then the same five deliveries replayed.
    assert log_text.count('"reason":"missing_user_id"') == 2 * 5
    for login in valid:
        for raw in (login["ip"], login["device_id"]):
            assert raw not in stored_text
            assert raw not in log_text


def test_generated_messages_end_to_end(handler_module: ModuleType, sqs_server: LocalSqsServer,
                                       database_url: str, db: psycopg2.extensions.cursor,
                                       masker: Masker, function_logs: list[str]) -> None:
    messages = generate(600, seed=7, malformed_share=0.05)
    malformed = [m for m in messages if m.reason is not None]
    assert malformed, "the generator must mix in malformed messages"

    summary = drain([m.body for m in messages], sqs_server, database_url,
                    handler_module.lambda_handler)

    assert summary.stored == len(messages) - len(malformed)
    assert summary.dead_lettered == len(malformed)
    assert summary.item_failures == 5 * len(malformed)
    valid = [json.loads(m.body) for m in messages if m.reason is None]
    check_masking(db, valid, masker)
    # Devices repeat across users in the generator: the table keeps them findable.
    db.execute("SELECT count(*) FROM (SELECT masked_device_id FROM user_logins"
               " GROUP BY 1 HAVING count(*) > 1) AS repeated")
    assert (db.fetchone() or (0,))[0] > 0
    reasons = sorted(reason for _, reason in each_rejection(function_logs))
    assert reasons == sorted(str(m.reason) for m in malformed for _ in range(5))
    log_text = "\n".join(function_logs)
    for login in valid:
        assert login["ip"] not in log_text and login["device_id"] not in log_text


def test_command_line_run_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         database_url: str, db: psycopg2.extensions.cursor,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from login_ingest.local.run import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    sample = tmp_path / "logins.jsonl"
    sample.write_text("\n".join(m.body for m in generate(40, seed=3, malformed_share=0.0))
                      + "\nnot json\n")

    assert main(["--input", str(sample), "--visibility-timeout", "2",
                 "--log-file", str(tmp_path / "logs.jsonl")]) == 0

    out = capsys.readouterr().out
    assert "stored        40" in out
    assert "dead-lettered 1" in out
    lines = (tmp_path / "logs.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [reason for _, reason in each_rejection(
        [line for line in lines if '"_aws"' not in line])] == ["not_json"] * 5
    # The metrics (EMF) land beside the log lines, as in CloudWatch Logs; stdout stays clean.
    metrics = [line for line in logged if "_aws" in line]
    assert sum(m["RecordsStored"][0] for m in metrics if "reason" not in m) == 40
    assert sum(m["RecordsFailed"][0] for m in metrics if m.get("reason") == "not_json") == 5
    assert '"_aws"' not in out


def test_malformed_reasons_match_generator() -> None:
    for message in generate(300, seed=11, malformed_share=0.3):
        if message.reason is None:
            parse_login(message.body)
        else:
            with pytest.raises(RecordRejected) as rejected:
                parse_login(message.body)
            assert rejected.value.reason == message.reason


def test_stay_keeps_the_servers_up_for_the_printed_commands(
        tmp_path: Path, database_url: str, db: psycopg2.extensions.cursor) -> None:
    # What README promises of `make run ARGS="--stay"`: the commands it prints work as they
    # stand, against what the run left, until Ctrl-C stops everything.
    env = {name: value for name, value in os.environ.items()
           if name not in ("MASKING_KEY", "VAULT_LOCAL_KEY", "VAULT_KMS_KEY_ID")}
    env["DATABASE_URL"] = database_url
    sample = tmp_path / "logins.jsonl"
    sample.write_text("\n".join(m.body for m in generate(20, seed=4, malformed_share=0.0))
                      + "\nnot json\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "login_ingest.local", "--input", str(sample),
         "--max-receive-count", "1", "--stay", "--log-file", str(tmp_path / "logs.jsonl")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert run.stdout is not None
        printed: list[str] = []
        while not printed or "recovery unmask" not in printed[-1]:
            line = run.stdout.readline()
            assert line, "the run ended without printing its commands"
            printed.append(line.strip())
        exports = dict(line.removeprefix("export ").split("=", 1) for line in printed
                       if line.startswith("export "))
        shell_env = {**env, **{name: value.strip("'") for name, value in exports.items()}}
        inspect, unmask = (shlex.split(line) for line in printed[-2:])

        looked = subprocess.run(inspect, cwd=REPO, env=shell_env, capture_output=True,
                                text=True, check=True)
        assert "1 message: not_json 1" in looked.stdout
        unmasked = subprocess.run(unmask, cwd=REPO, env=shell_env, capture_output=True,
                                  text=True, check=True)
        token = unmask[unmask.index("unmask") + 1]
        assert Masker(shell_env["MASKING_KEY"].encode()).mask_ip(
            unmasked.stdout.strip()) == token
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 0
