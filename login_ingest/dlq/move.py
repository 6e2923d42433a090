"""Move dead-lettered messages back to their queue; none is deleted before its copy is sent."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from login_ingest.batch import ORIGINAL_SENT_TIMESTAMP
from login_ingest.dlq.peek import DeadLetter, Held

Progress = Callable[[int], None]  # called with how many messages were just moved


@dataclass
class MoveReport:
    """What a redrive did. `copied_not_deleted` are in both queues: nothing is lost, but the
    copy has a new messageId (see README, Runbook) and the original is still dead-lettered.
    `in_doubt` were in hand when the move stopped (`stopped_by`): each may be in both."""

    moved: int = 0
    not_sent: dict[str, str] = field(default_factory=dict)  # message id -> SQS's error code
    copied_not_deleted: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    # Sent without original_sent_timestamp: the message had SQS's ten attributes already.
    undated: list[str] = field(default_factory=list)
    stopped_by: BaseException | None = None


# What an endpoint answers to StartMessageMoveTask when it has no task to offer this caller.
_NO_MOVE_TASK = {"UnsupportedOperation", "InvalidAction", "NotImplemented",
                 "AccessDenied", "AccessDeniedException", "InvalidClientTokenId"}


def move_task(sqs: Any, dlq_arn: str, source_arn: str, progress: Progress,
              poll_seconds: float = 2.0) -> MoveReport | None:
    """Redrive the whole queue with SQS's own message-move task, waiting for it to finish.

    Returns None when the endpoint offers no such task (moto, some emulators, a role
    without sqs:StartMessageMoveTask), so that the caller moves the messages itself. A start
    that fails otherwise (a timeout, a server error) may still have started a task: moving
    the messages beside it would copy them twice, so the task list decides.
    """
    started_at = time.time() * 1000
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
    except (ClientError, BotoCoreError) as error:
        code = error.response.get("Error", {}).get("Code") if isinstance(
            error, ClientError) else None
        if code in _NO_MOVE_TASK or not _task_started_since(sqs, dlq_arn, started_at):
            return None
    moved = 0
    while True:
        time.sleep(poll_seconds)
        (task,) = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)["Results"]
        now = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        progress(now - moved)
        moved = now
        if task["Status"] != "RUNNING":
            break
    if task["Status"] != "COMPLETED":
        raise RuntimeError(f"the message-move task ended {task['Status']}: "
                           f"{task.get('FailureReason', 'no reason given')}")
    return MoveReport(moved=moved)


def _task_started_since(sqs: Any, dlq_arn: str, started_at: float) -> bool:
    try:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)["Results"]
    except (ClientError, BotoCoreError):
        return False  # no task list either: no task was started
    # A task of ours, not an earlier one; the server's clock may differ by a little.
    return any(task.get("StartedTimestamp", 0) >= started_at - 60_000 for task in tasks)


def move_messages(sqs: Any, held: Held, chosen: Sequence[DeadLetter], dlq_url: str,
                  source_url: str, progress: Progress) -> MoveReport:
    """Send each chosen message's body and attributes to `source_url`, ten at a time, and
    delete it from the dead-letter queue only once its copy was sent.

    A message whose copy failed stays in the dead-letter queue (made visible again by the
    peek). A delete that fails after the send leaves the message in both queues. Any other
    error, or Ctrl-C, stops the move there and is returned in the report, which names the
    messages of the ten in hand as in doubt; every message not deleted is still in the
    dead-letter queue.
    """
    report = MoveReport()
    chunk: dict[str, DeadLetter] = {}
    try:
        for start in range(0, len(chosen), 10):
            chunk = {str(i): message for i, message in enumerate(chosen[start:start + 10])}
            copied = _send(sqs, source_url, chunk, report)
            report.undated += [message.message_id for message in copied
                               if message.sent_timestamp
                               and ORIGINAL_SENT_TIMESTAMP not in message.message_attributes
                               and len(message.message_attributes) >= 10]
            deleted = _delete(sqs, dlq_url, copied) if copied else set()
            for message in copied:
                if message.message_id in deleted:
                    held.released.add(message.message_id)
                else:
                    report.copied_not_deleted.append(message.message_id)
            chunk = {}
            report.moved += len(deleted)
            progress(len(deleted))
    except (Exception, KeyboardInterrupt) as error:
        report.stopped_by = error
        report.in_doubt = [message.message_id for message in chunk.values()
                           if message.message_id not in held.released]
    return report


def _send(sqs: Any, source_url: str, chunk: dict[str, DeadLetter],
          report: MoveReport) -> list[DeadLetter]:
    """Send copies of the chunk's messages; the ones sent. A batch SQS refuses as a whole (one
    body too large for the queue, say) is sent again message by message, so that one
    message cannot hold back the other nine; a refused message is noted, not sent."""
    entries = {entry_id: {"MessageBody": message.body, **_attributes_of_copy(message)}
               for entry_id, message in chunk.items()}
    try:
        sent = sqs.send_message_batch(QueueUrl=source_url, Entries=[
            {"Id": entry_id, **entry} for entry_id, entry in entries.items()])
    except ClientError:
        sent = {"Successful": [], "Failed": []}
        for entry_id, entry in entries.items():
            try:
                sqs.send_message(QueueUrl=source_url, **entry)
                sent["Successful"].append({"Id": entry_id})
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "ClientError")
                sent["Failed"].append({"Id": entry_id, "Code": code})
    for failure in sent.get("Failed", []):
        report.not_sent[chunk[failure["Id"]].message_id] = failure.get("Code", "unknown")
    return [chunk[entry["Id"]] for entry in sent.get("Successful", [])]


def _delete(sqs: Any, dlq_url: str, messages: list[DeadLetter], attempts: int = 3) -> set[str]:
    """The message ids deleted; a failed delete is tried again, up to `attempts` times."""
    pending = {message.message_id: message for message in messages}
    deleted: set[str] = set()
    for attempt in range(attempts):
        try:
            answer = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": message.receipt_handle}
                for i, message in enumerate(pending.values())])
        except (ClientError, BotoCoreError):
            time.sleep(0.2 * (attempt + 1))
            continue
        ids = list(pending)
        for entry in answer.get("Successful", []):
            deleted.add(ids[int(entry["Id"])])
        pending = {message_id: pending[message_id] for message_id in ids
                   if message_id not in deleted}
        if not pending:
            break
    return deleted


def _attributes_of_copy(message: DeadLetter) -> dict[str, Any]:
    """The message's attributes in the shape SendMessage takes, and its first sending's time
    (SQS stamps the copy anew; the function dates a login without create_date by it)."""
    keys = ("DataType", "StringValue", "BinaryValue")
    attributes = {name: {key: value[key] for key in keys if key in value}
                  for name, value in message.message_attributes.items()}
    # SQS takes at most 10 attributes: a message that has them all keeps only its own.
    if message.sent_timestamp and len(attributes) < 10:
        attributes.setdefault(ORIGINAL_SENT_TIMESTAMP,
                              {"DataType": "Number", "StringValue": message.sent_timestamp})
    return {"MessageAttributes": attributes} if attributes else {}
