"""The dead-letter queue tooling against moto's SQS server, on a DLQ filled by SQS itself."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import psycopg2.extensions
import pytest
from botocore.exceptions import ClientError

from login_ingest.batch import ORIGINAL_SENT_TIMESTAMP
from login_ingest.dlq.cli import main, parse_args, redrive
from login_ingest.dlq.peek import peek
from login_ingest.local.context import REGION, LocalLambdaContext
from login_ingest.local.sqs import LocalSqsServer, QueuePair, create_queues
from tests.conftest import REPO

_names = (f"dlq-tool-{n}" for n in itertools.count())

# messageId order of events/mixed-batch.json, and what each body is.
EXPECTED = ["passes_validation", "not_json", "missing_user_id", "invalid_app_version",
            "invalid_ip", "passes_validation"]
SAMPLE = json.loads((REPO / "events" / "mixed-batch.json").read_text())["Records"]
BODIES = [record["body"] for record in SAMPLE]
RAW = {"192.0.2.44", "230-18-4471", "192.0.2.9", "999.1.1.1"}


@dataclass
class Stack:
    sqs: Any
    queues: QueuePair
    ids: list[str]  # in BODIES' order
    endpoint: str
    sent_timestamp: int  # epoch milliseconds, no later than the samples' SentTimestamp

    def args(self, *command: str) -> list[str]:
        return [*command, "--dlq-url", self.queues.dlq_url, "--endpoint-url", self.endpoint,
                "--region", REGION]

    def reasons(self) -> dict[str, str]:
        return dict(zip(self.ids, EXPECTED, strict=True))


def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of `url`."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while received := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30,
            MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
    ).get("Messages", []):
        messages += received
    return messages


@pytest.fixture
def stack(sqs_server: LocalSqsServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The sample bodies, dead-lettered by SQS after maxReceiveCount (1) failed receives."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "local")
    sqs = sqs_server.client()
    queues = create_queues(sqs, next(_names), max_receive_count=1, visibility_timeout=30)
    ids = []
    sent_timestamp = int(time.time() * 1000) - 1000
    for body in BODIES:
        ids.append(sqs.send_message(
            QueueUrl=queues.url, MessageBody=body,
            MessageAttributes={"producer": {"DataType": "String", "StringValue": "web"}},
        )["MessageId"])
    # A receive that fails the message: visible again at once. The next one dead-letters it.
    for _ in range(3):
        sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert counts(sqs, queues.url) == (0, 0)
    assert counts(sqs, queues.dlq_url) == (6, 0)
    return Stack(sqs, queues, ids, sqs_server.endpoint_url, sent_timestamp)


def table(output: str) -> dict[str, str]:
    """message id -> reason, from inspect's or a dry run's table."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) == 7 and cells[0] != "message":
            rows[cells[0]] = cells[-1]
    return rows


def test_inspect_lists_reasons_consumes_nothing_and_shows_no_personal_data(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(stack.args("inspect")) == 0
    captured = capsys.readouterr()

    assert table(captured.out) == stack.reasons()
    assert "6 messages: invalid_app_version 1, invalid_ip 1, missing_user_id 1, " \
           "not_json 1, passes_validation 2" in captured.out
    text = captured.out + captured.err
    assert not [value for value in RAW | set(BODIES) if value in text]
    # Every message is back, visible at once; and a second look sees the same.
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)
    assert main(stack.args("inspect")) == 0
    assert table(capsys.readouterr().out) == stack.reasons()


def test_inspect_shows_bodies_only_when_asked(stack: Stack,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*stack.args("inspect"), "--show-body"]) == 0
    out = capsys.readouterr().out
    assert all(body in out for body in BODIES)
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)


def test_dry_run_moves_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*stack.args("redrive"), "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert table(out) == stack.reasons()
    assert "would move 6 of 6 messages" in out
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)
    assert counts(stack.sqs, stack.queues.url) == (0, 0)


def test_redrive_by_reason_moves_exactly_those(stack: Stack,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*stack.args("redrive"), "--reason", "passes_validation",
                 "--reason", "invalid_ip"]) == 0
    assert "moved 3 of 3 chosen messages (6 looked at)" in capsys.readouterr().out

    moved = drain(stack.sqs, stack.queues.url)
    assert sorted(m["Body"] for m in moved) == sorted([BODIES[0], BODIES[4], BODIES[5]])
    # Body and attributes are kept, and the first sending's time is added; SQS gives each
    # copy a new messageId and a new SentTimestamp.
    for copy in moved:
        attributes = copy["MessageAttributes"]
        original = attributes.pop(ORIGINAL_SENT_TIMESTAMP)
        assert attributes == {"producer": {"DataType": "String", "StringValue": "web"}}
        assert original["DataType"] == "Number"
        assert stack.sent_timestamp <= int(original["StringValue"]) <= int(
            copy["Attributes"]["SentTimestamp"])
    assert not {m["MessageId"] for m in moved} & set(stack.ids)
    assert counts(stack.sqs, stack.queues.dlq_url) == (3, 0)
    assert main(stack.args("inspect")) == 0
    assert table(capsys.readouterr().out) == {
        stack.ids[i]: EXPECTED[i] for i in (1, 2, 3)}


def test_redrive_by_id_moves_exactly_that_one(stack: Stack,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The one it has is moved; the one it lacks is named, and the exit status says so.
    assert main([*stack.args("redrive"), "--id", stack.ids[2], "--id", "no-such-id"]) == 1
    captured = capsys.readouterr()
    assert "moved 1 of 1 chosen messages" in captured.out
    assert "not in the dead-letter queue: no-such-id" in captured.err
    assert [m["Body"] for m in drain(stack.sqs, stack.queues.url)] == [BODIES[2]]
    assert counts(stack.sqs, stack.queues.dlq_url) == (5, 0)


def test_redrive_all_uses_the_message_move_task(stack: Stack,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # The local server has SQS's message-move task (login_ingest/local/sqs.py).
    assert main([*stack.args("redrive"), "--all"]) == 0
    assert f"moved 6 messages to {stack.queues.url}" in capsys.readouterr().out
    # The task copies attributes as they are: it cannot add the first sending's time.
    moved = drain(stack.sqs, stack.queues.url)
    assert sorted(m["Body"] for m in moved) == sorted(BODIES)
    assert all(m["MessageAttributes"] == {"producer": {"DataType": "String",
                                                       "StringValue": "web"}} for m in moved)
    assert counts(stack.sqs, stack.queues.dlq_url) == (0, 0)


def test_redrive_all_by_message(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*stack.args("redrive"), "--all", "--by-message"]) == 0
    assert "moved 6 of 6 chosen messages" in capsys.readouterr().out
    moved = drain(stack.sqs, stack.queues.url)
    assert all(ORIGINAL_SENT_TIMESTAMP in m["MessageAttributes"] for m in moved)


class RealClient:
    """The real SQS client; a subclass replaces the calls a test makes go wrong."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


class NoMoveTask(RealClient):
    """The real client of an endpoint without the message-move task (moto itself, some
    emulators, or a role without sqs:StartMessageMoveTask)."""

    def start_message_move_task(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "UnsupportedOperation", "Message": "no"}},
                          "StartMessageMoveTask")


class MoveTaskAnswers500(RealClient):
    """An emulator without the task that answers its start with a server error, as plain
    moto does, and has no task list either."""

    def start_message_move_task(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "500", "Message": "<html>"}},
                          "StartMessageMoveTask")

    def list_message_move_tasks(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "500", "Message": "<html>"}},
                          "ListMessageMoveTasks")


@pytest.mark.parametrize("endpoint", [NoMoveTask, MoveTaskAnswers500])
def test_redrive_all_falls_back_to_moving_message_by_message(
    stack: Stack, capsys: pytest.CaptureFixture[str], endpoint: type[RealClient]
) -> None:
    # Once, and only where no task was started: a server error is checked against the list.
    args = parse_args([*stack.args("redrive"), "--all"])
    assert redrive(endpoint(stack.sqs), stack.queues.dlq_url, args) == 0
    captured = capsys.readouterr()
    assert "no message-move task" in captured.err
    assert "moved 6 of 6 chosen messages" in captured.out
    assert sorted(m["Body"] for m in drain(stack.sqs, stack.queues.url)) == sorted(BODIES)
    assert counts(stack.sqs, stack.queues.dlq_url) == (0, 0)


class DeleteFails(RealClient):
    """The real client, except that deleting from the dead-letter queue fails as told."""

    def __init__(self, sqs: Any, error: Exception) -> None:
        super().__init__(sqs)
        self._error = error

    def delete_message_batch(self, **kwargs: Any) -> Any:
        raise self._error


@pytest.mark.parametrize("error", [
    ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}},
                "DeleteMessageBatch"),
    KeyboardInterrupt(),  # the operator's Ctrl-C, or a crash, right after the send
], ids=["delete refused", "interrupted after send"])
def test_a_failure_between_send_and_delete_loses_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str], error: BaseException
) -> None:
    args = parse_args([*stack.args("redrive"), "--reason", "not_json"])
    client = DeleteFails(stack.sqs, error)  # type: ignore[arg-type]
    interrupted = isinstance(error, KeyboardInterrupt)
    assert redrive(client, stack.queues.dlq_url, args) == (130 if interrupted else 1)
    # Either way the message in both queues is named, for the operator to settle.
    assert f"in both queues: {stack.ids[1]}" in capsys.readouterr().err

    # The copy was sent, and the original is still in the DLQ, visible again.
    assert [m["Body"] for m in drain(stack.sqs, stack.queues.url)] == [BODIES[1]]
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)


def test_queues_by_name(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    dlq_name = stack.queues.dlq_url.rsplit("/", 1)[1]
    source_name = stack.queues.url.rsplit("/", 1)[1]
    assert main(["redrive", "--dlq-name", dlq_name, "--queue-name", source_name,
                 "--endpoint-url", stack.endpoint, "--region", REGION,
                 "--id", stack.ids[3]]) == 0
    assert [m["Body"] for m in drain(stack.sqs, stack.queues.url)] == [BODIES[3]]
    assert main(["inspect", "--dlq-name", "no-such-queue", "--endpoint-url", stack.endpoint,
                 "--region", REGION]) == 2
    assert "error: QueueDoesNotExist" in capsys.readouterr().err


def test_stored_messages_are_shown_and_never_redriven(
    stack: Stack, capsys: pytest.CaptureFixture[str], database_url: str,
    db: psycopg2.extensions.cursor,
) -> None:
    # The first sample was committed before its invocation failed, and then dead-lettered.
    db.execute("INSERT INTO user_logins (message_id, user_id, create_date)"
               " VALUES (%s, 'u-1', '2024-12-03')", (stack.ids[0],))

    assert main([*stack.args("inspect"), "--database-url", database_url]) == 0
    stored = {cells[0]: cells[-1] for cells in map(str.split, capsys.readouterr().out
                                                   .splitlines()) if len(cells) == 8}
    assert stored == {message_id: "yes" if i == 0 else "no"
                      for i, message_id in enumerate(stack.ids)}

    # Without the lookup, a redrive of what passes validation moves both, with a warning.
    assert main([*stack.args("redrive"), "--reason", "passes_validation", "--dry-run"]) == 0
    assert "--database-url checks" in capsys.readouterr().err


@pytest.mark.parametrize("selection", [["--reason", "passes_validation"], ["--all"]])
def test_redrive_skips_what_is_stored(stack: Stack, capsys: pytest.CaptureFixture[str],
                                      database_url: str, db: psycopg2.extensions.cursor,
                                      selection: list[str]) -> None:
    db.execute("INSERT INTO user_logins (message_id, user_id, create_date)"
               " VALUES (%s, 'u-1', '2024-12-03')", (stack.ids[0],))
    assert main([*stack.args("redrive"), *selection, "--database-url", database_url]) == 0
    captured = capsys.readouterr()
    assert f"already stored, not moved: {stack.ids[0]}" in captured.err
    expected = [5] if selection[0] == "--reason" else [1, 2, 3, 4, 5]
    assert f"moved {len(expected)} of {len(expected)} chosen messages" in captured.out
    assert sorted(m["Body"] for m in drain(stack.sqs, stack.queues.url)) == sorted(
        BODIES[i] for i in expected)
    assert counts(stack.sqs, stack.queues.dlq_url) == (6 - len(expected), 0)


def test_a_redriven_copy_keeps_its_first_sending_date(
    handler_module: ModuleType, db: psycopg2.extensions.cursor
) -> None:
    # A login without create_date, sent on 2024-12-03 and redriven on 2024-12-20.
    record = {**SAMPLE[0], "attributes": {**SAMPLE[0]["attributes"],
                                          "SentTimestamp": "1734652800000"},
              "messageAttributes": {ORIGINAL_SENT_TIMESTAMP: {
                  "stringValue": "1733234400000", "dataType": "Number",
                  "stringListValues": [], "binaryListValues": []}}}
    assert "create_date" not in json.loads(record["body"])
    response = handler_module.lambda_handler({"Records": [record]}, LocalLambdaContext())
    assert response == {"batchItemFailures": []}
    db.execute("SELECT create_date::text FROM user_logins")
    assert db.fetchall() == [("2024-12-03",)]


def test_a_source_queue_is_refused_as_a_dead_letter_queue(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Receiving from a queue with a redrive policy counts towards its maxReceiveCount: a few
    # looks would dead-letter its live messages.
    stack.sqs.send_message(QueueUrl=stack.queues.url, MessageBody=BODIES[0])
    for command in (["inspect"], ["redrive", "--all"]):
        args = [*command, "--dlq-url", stack.queues.url, "--endpoint-url", stack.endpoint,
                "--region", REGION]
        assert main(args) == 2
        assert "it is a source queue" in capsys.readouterr().err
    assert counts(stack.sqs, stack.queues.url) == (1, 0)
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)


def test_redrive_goes_only_to_a_queue_that_feeds_the_dead_letter_queue(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    other = stack.sqs.create_queue(QueueName=next(_names))["QueueUrl"]
    for target in (stack.queues.dlq_url, other):
        assert main([*stack.args("redrive"), "--all", "--queue-url", target]) == 2
        assert "does not send its failures to this dead-letter queue" in \
            capsys.readouterr().err
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)
    assert counts(stack.sqs, other) == (0, 0)


def test_messages_in_flight_are_reported_and_looks_always_end(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another reader holds two messages: they cannot be shown, but the operator is told.
    stack.sqs.receive_message(QueueUrl=stack.queues.dlq_url, MaxNumberOfMessages=2,
                              VisibilityTimeout=60)
    assert main([*stack.args("inspect"), "--hide-seconds", "1"]) == 0
    captured = capsys.readouterr()
    assert "note: 2 messages are in flight" in captured.err
    assert len(table(captured.out)) == 4

    # A hiding shorter than the time between receives hands the same messages out again:
    # the look ends when nothing new comes, with each message counted once.
    with peek(SlowReceive(stack.sqs), stack.queues.dlq_url, limit=100, hide_seconds=1) as held:
        assert len(held.messages) == 4
        assert not held.limit_reached
        assert held.hiding_ran_out  # and inspect and redrive say so


class SlowReceive(RealClient):
    """The real client, with each receive coming later than the one-second hiding."""

    def __init__(self, sqs: Any) -> None:
        super().__init__(sqs)
        self.receives = 0

    def receive_message(self, **kwargs: Any) -> Any:
        self.receives += 1
        assert self.receives < 10, "the look should have ended"
        time.sleep(1.2)
        return self._sqs.receive_message(**kwargs)


@pytest.mark.parametrize("arguments", [
    ["inspect", "--hide-seconds", "0"], ["inspect", "--limit", "0"],
    ["redrive", "--reason", "not_json", "--by-message"],
    ["redrive", "--reason", "internal_error"],
])
def test_arguments_that_cannot_work_are_refused(arguments: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        parse_args([*arguments, "--dlq-name", "q"])
    assert refused.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_an_endpoint_without_a_scheme_is_one_error_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--dlq-name", "q", "--endpoint-url", "127.0.0.1:1",
                 "--region", REGION]) == 2
    assert capsys.readouterr().err.startswith("error: ValueError: Invalid endpoint")


def test_one_odd_timestamp_does_not_block_the_queue(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Any producer can set original_sent_timestamp; the function rejects such a message,
    # which is how it comes here. The tooling must still show the whole queue.
    odd = []
    for value in ["99999999999999999", "9" * 30, "\u00b2\u00b3"]:
        odd.append(stack.sqs.send_message(
            QueueUrl=stack.queues.dlq_url, MessageBody='{"user_id": "u-9"}',
            MessageAttributes={ORIGINAL_SENT_TIMESTAMP: {"DataType": "String",
                                                         "StringValue": value}},
        )["MessageId"])
    assert main(stack.args("inspect")) == 0
    out = capsys.readouterr().out
    assert "9 messages" in out
    rows = {cells[0]: cells[2:] for cells in map(str.split, out.splitlines())
            if cells and cells[0] in odd}
    assert rows == {key: ["-", *rows[odd[0]][1:3], "invalid_sent_timestamp"] for key in odd}


def test_a_database_password_never_reaches_the_terminal(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*stack.args("inspect"), "--database-url",
                 "postgresql://carol:SECRETPW@[::1/postgres"]) == 2
    captured = capsys.readouterr()
    assert "SECRETPW" not in captured.out + captured.err
    assert "carol:***@" in captured.err


def test_a_message_the_source_queue_refuses_holds_back_no_other(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.set_queue_attributes(QueueUrl=stack.queues.url,
                                   Attributes={"MaximumMessageSize": "1024"})
    big = stack.sqs.send_message(QueueUrl=stack.queues.dlq_url,
                                 MessageBody='{"user_id": "' + "u" * 2000 + '"}')["MessageId"]
    assert main([*stack.args("redrive"), "--all", "--by-message"]) == 1
    assert "not sent (" in capsys.readouterr().err
    assert sorted(m["Body"] for m in drain(stack.sqs, stack.queues.url)) == sorted(BODIES)
    (left,) = drain(stack.sqs, stack.queues.dlq_url)
    assert left["MessageId"] == big


def test_a_dead_letter_queue_with_two_sources_says_where_messages_go(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    second = stack.sqs.create_queue(QueueName=next(_names), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": stack.sqs.get_queue_attributes(
            QueueUrl=stack.queues.dlq_url, AttributeNames=["QueueArn"])["Attributes"]
            ["QueueArn"], "maxReceiveCount": "1"})})["QueueUrl"]
    assert main([*stack.args("redrive"), "--reason", "not_json"]) == 2
    assert "2 queues send to this dead-letter queue" in capsys.readouterr().err
    assert main([*stack.args("redrive"), "--reason", "not_json", "--queue-url", second]) == 0
    assert f"every message chosen goes to {second}" in capsys.readouterr().err
    assert [m["Body"] for m in drain(stack.sqs, second)] == [BODIES[1]]


class InterruptedReceive(RealClient):
    """The real client, with Ctrl-C arriving during the second receive."""

    def __init__(self, sqs: Any) -> None:
        super().__init__(sqs)
        self.receives = 0

    def receive_message(self, **kwargs: Any) -> Any:
        self.receives += 1
        if self.receives == 2:
            raise KeyboardInterrupt
        return self._sqs.receive_message(**{**kwargs, "MaxNumberOfMessages": 2})


def test_ctrl_c_while_looking_is_one_line_and_hands_every_message_back(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setattr(boto3, "client", lambda *a, **k: InterruptedReceive(stack.sqs))
    assert main(stack.args("inspect")) == 130
    assert capsys.readouterr().err.startswith("interrupted; the messages held were made visible")
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)


def test_a_move_task_that_fails_midway_is_not_moved_again_beside_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The task stops at the body the source queue refuses; what it moved before is gone from
    # the dead-letter queue. A fallback that moved everything again would copy those twice.
    stack.sqs.set_queue_attributes(QueueUrl=stack.queues.url,
                                   Attributes={"MaximumMessageSize": "1024"})
    big = stack.sqs.send_message(QueueUrl=stack.queues.dlq_url,
                                 MessageBody='{"user_id": "' + "u" * 2000 + '"}')["MessageId"]
    assert main([*stack.args("redrive"), "--all"]) == 2
    assert "the message-move task ended FAILED" in capsys.readouterr().err
    assert sorted(m["Body"] for m in drain(stack.sqs, stack.queues.url)) == sorted(BODIES)
    assert [m["MessageId"] for m in drain(stack.sqs, stack.queues.dlq_url)] == [big]


def test_ctrl_c_while_handing_back_waits_until_every_message_is_back(stack: Stack) -> None:
    import os
    import signal

    class CtrlCDuringHandBack(RealClient):
        def change_message_visibility_batch(self, **kwargs: Any) -> Any:
            os.kill(os.getpid(), signal.SIGINT)  # pressed while the first ten go back
            return self._sqs.change_message_visibility_batch(**kwargs)

    with pytest.raises(KeyboardInterrupt), peek(CtrlCDuringHandBack(stack.sqs),
                                                stack.queues.dlq_url) as held:
        assert len(held.messages) == 6
    assert counts(stack.sqs, stack.queues.dlq_url) == (6, 0)


def test_shown_bodies_cannot_repaint_the_terminal(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.sqs.send_message(QueueUrl=stack.queues.dlq_url,
                           MessageBody="\x1b[2J\x1b[31mfake row\r\n\u202e\u200b")
    assert main([*stack.args("inspect"), "--show-body"]) == 0
    out = capsys.readouterr().out
    assert "\\x1b[2J\\x1b[31mfake row\\r\\n\\u202e\\u200b" in out
    assert not any(char in out for char in "\x1b\r\u202e\u200b")


def test_a_dry_run_names_an_unknown_id_and_says_so_in_its_status(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*stack.args("redrive"), "--id", "no-such-id", "--dry-run"]) == 1
    assert "not in the dead-letter queue: no-such-id" in capsys.readouterr().err


def test_a_copy_that_cannot_keep_its_date_is_named(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    full = stack.sqs.send_message(
        QueueUrl=stack.queues.dlq_url, MessageBody='{"user_id": "u-10"}',
        MessageAttributes={f"a{i}": {"DataType": "String", "StringValue": "x"}
                           for i in range(10)})["MessageId"]
    assert main([*stack.args("redrive"), "--id", full]) == 0
    assert f"so dated by this redrive: {full}" in capsys.readouterr().err
    (copy,) = drain(stack.sqs, stack.queues.url)
    assert ORIGINAL_SENT_TIMESTAMP not in copy["MessageAttributes"]
