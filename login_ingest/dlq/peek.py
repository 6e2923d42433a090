"""Hold a dead-letter queue's messages for a look, then hand every one of them back."""

from __future__ import annotations

import datetime
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from login_ingest.batch import ORIGINAL_SENT_TIMESTAMP
from login_ingest.parsing import Reason, RecordRejected, parse_login, sent_date

# The verdict on a body that the function would accept today: it was dead-lettered for
# something outside the message (the database, a bug since fixed), and may be redriven.
PASSES = "passes_validation"


@dataclass
class DeadLetter:
    """One message of the dead-letter queue, as received for a look."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int  # SQS's ApproximateReceiveCount, this look included
    sent_timestamp: str | None  # when the producer sent it, SQS's text (epoch milliseconds)
    sent_at: datetime.datetime | None  # the same, as a time
    first_received_at: datetime.datetime | None  # ApproximateFirstReceiveTimestamp
    reason: str  # a parsing reason code, or PASSES
    message_attributes: dict[str, Any] = field(default_factory=dict)
    stored: bool | None = None  # whether the table has its row, when that was looked up


def verdict(body: str, sent_timestamp: str | None) -> str:
    """The reason code the function would give `body` now, or PASSES."""
    try:
        login = parse_login(body)
        if login.create_date is None:
            sent_date(sent_timestamp)
    except RecordRejected as rejected:
        return rejected.reason.value
    except Exception:
        return Reason.INTERNAL_ERROR.value  # what the function would say too
    return PASSES


def _moment(millis: str | None) -> datetime.datetime | None:
    """The time SQS (or a producer, for original_sent_timestamp) wrote; None for anything
    that is not a time: one odd message must not keep the queue from being inspected."""
    if not millis or not millis.isascii() or not millis.isdigit() or len(millis) > 18:
        return None
    try:
        return datetime.datetime.fromtimestamp(int(millis) / 1000, tz=datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    message_attributes = message.get("MessageAttributes", {})
    # A copy redriven before carries its first sending's time, which the function uses.
    original = message_attributes.get(ORIGINAL_SENT_TIMESTAMP, {}).get("StringValue")
    sent = original or attributes.get("SentTimestamp")
    return DeadLetter(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        sent_timestamp=sent,
        sent_at=_moment(sent),
        first_received_at=_moment(attributes.get("ApproximateFirstReceiveTimestamp")),
        reason=verdict(message["Body"], sent),
        message_attributes=message_attributes,
    )


@dataclass
class Held:
    """The messages a peek holds; those `released` are gone (moved) and are not handed back."""

    messages: list[DeadLetter]
    limit_reached: bool
    # A message came back while the look went on: the hiding ran out, and messages behind it
    # may not have been seen.
    hiding_ran_out: bool = False
    released: set[str] = field(default_factory=set)


@contextmanager
def peek(sqs: Any, queue_url: str, *, limit: int = 10_000, hide_seconds: int = 300,
         wait_seconds: int = 1) -> Iterator[Held]:
    """Receive up to `limit` messages of `queue_url`, hidden for `hide_seconds`, and make each
    one visible again at the end, however the block ends (a crash leaves them hidden for
    `hide_seconds` at most).

    SQS hands out at most 10 messages per receive, and fewer when it likes: receiving goes
    on until a long poll of `wait_seconds` comes back empty or with nothing new (the
    hiding of the first ones ran out meanwhile), or `limit` messages are held. A message
    received twice counts once, with its newest receipt handle. Receiving adds one to each
    message's receive count; a dead-letter queue has no redrive policy of its own, so that
    moves nothing anywhere (the command line refuses a queue that has one).
    """
    if hide_seconds < 1 or limit < 1:
        raise ValueError("hide_seconds and limit must be at least 1")
    held: dict[str, DeadLetter] = {}
    outcome = Held(messages=[], limit_reached=False)
    try:
        while len(held) < limit:
            received = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=min(10, limit - len(held)),
                VisibilityTimeout=hide_seconds, WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            new = [message for message in received if message["MessageId"] not in held]
            if len(new) < len(received):
                outcome.hiding_ran_out = True
            for message in received:
                held[message["MessageId"]] = _dead_letter(message)
            if not new:
                break
        outcome.messages = sorted(held.values(), key=_sent_order)
        outcome.limit_reached = len(held) >= limit
        yield outcome
    finally:
        with _ctrl_c_deferred():
            _make_visible(sqs, queue_url, [message for message in held.values()
                                            if message.message_id not in outcome.released])


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block ends: an impatient second Ctrl-C must not leave the
    messages hidden that are being handed back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def _sent_order(message: DeadLetter) -> tuple[float, str]:
    return (message.sent_at.timestamp() if message.sent_at else 0.0, message.message_id)


def _make_visible(sqs: Any, queue_url: str, messages: list[DeadLetter]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        # A failed entry is a message whose handle went stale: it is visible or gone already.
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
            for i, m in enumerate(chunk)])
