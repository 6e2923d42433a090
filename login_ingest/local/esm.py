"""What Lambda's SQS event source mapping does, for a local queue and an in-process handler.

It long-polls the queue, gathers up to `batch_size` messages within the batching window,
invokes the function with the exact Lambda SQS event, deletes what the partial batch response
says succeeded and leaves the rest to reappear after the visibility timeout, where SQS counts
the receive and eventually moves the message to the dead-letter queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from login_ingest.local.context import REGION, LocalLambdaContext
from login_ingest.local.sqs import QueuePair, queue_depth

Function = Callable[[dict[str, Any], Any], Any]


@dataclass
class MappingStats:
    invocations: int = 0
    received: int = 0
    acknowledged: int = 0
    item_failures: int = 0
    failed_invocations: int = 0
    last_acknowledged_at: float = 0.0  # time.monotonic() of the latest deletion
    stale_deletes: int = 0


@dataclass
class EventSourceMapping:
    sqs: Any
    queue: QueuePair
    function: Function
    batch_size: int = 10
    batching_window: float = 0.0
    function_name: str = "login-ingest"
    stats: MappingStats = field(default_factory=MappingStats)

    def __post_init__(self) -> None:
        # The limits Lambda's CreateEventSourceMapping enforces for standard queues.
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be from 1 to 10000")
        if not 0 <= self.batching_window <= 300:
            raise ValueError("batching_window must be from 0 to 300 seconds")
        if self.batch_size > 10 and self.batching_window < 1:
            raise ValueError("a batch size over 10 needs a batching window of at least 1 s")

    def poll_once(self) -> int:
        """Receive one batch and hand it to the function; returns how many messages came."""
        messages = self._receive_batch()
        if messages:
            self._invoke(messages)
        return len(messages)

    def run_until_drained(self, progress: Callable[[MappingStats], None] | None = None,
                          progress_every: float = 2.0, timeout: float = 600.0) -> MappingStats:
        """Poll until the queue holds nothing, visible or in flight (failed messages included,
        until SQS moves them to the dead-letter queue)."""
        started = last_report = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.poll_once() and queue_depth(self.sqs, self.queue.url) == 0:
                return self.stats
            if progress and time.monotonic() - last_report >= progress_every:
                progress(self.stats)
                last_report = time.monotonic()
        raise TimeoutError(f"queue not drained after {timeout:.0f} s")

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = 0.0
        while len(messages) < self.batch_size:
            # Long-poll while the batch is empty; once it holds something, keep topping it
            # up until it is full or the batching window, counted from then, is over.
            received = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else 1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and not messages:
                deadline = time.monotonic() + self.batching_window
            messages += received
            if not messages or time.monotonic() >= deadline:
                break
            if not received:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(message) for message in messages]}
        # A message can come twice into one batch (its visibility ran out meanwhile): keep
        # every receipt, not one per message id.
        receipts = [(message["MessageId"], message["ReceiptHandle"]) for message in messages]
        self.stats.invocations += 1
        self.stats.received += len(messages)
        # Lambda passes the event and the response as JSON; so do we, to catch what would not.
        event = json.loads(json.dumps(event))
        try:
            response = json.loads(json.dumps(
                self.function(event, LocalLambdaContext(function_name=self.function_name))
            ))
            failed = failed_message_ids(response, {message_id for message_id, _ in receipts})
        except Exception:
            # A raised error or an unusable response: Lambda retries the whole batch.
            self.stats.failed_invocations += 1
            self.stats.item_failures += len(messages)
            return
        self.stats.item_failures += len(failed)
        succeeded = [handle for message_id, handle in receipts if message_id not in failed]
        self._delete(succeeded)
        self.stats.acknowledged += len(succeeded)
        if succeeded:
            self.stats.last_acknowledged_at = time.monotonic()

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue.arn,
            "awsRegion": REGION,
        }

    def _delete(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start:start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)],
            )
            # A receipt handle goes stale when its message was received again (or moved to
            # the dead-letter queue) meanwhile; the message then comes back, as in AWS.
            self.stats.stale_deletes += len(response.get("Failed", []))


class InvalidBatchResponse(ValueError):
    """The function's answer is not a partial batch response Lambda would accept."""


def failed_message_ids(response: Any, message_ids: set[str]) -> set[str]:
    """The messageIds a partial batch response reports failed, judged as Lambda judges it.

    None, {} or an empty list mean that every message succeeded. An itemIdentifier that is
    missing, empty or not in the batch makes the whole response invalid.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise InvalidBatchResponse("response is not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise InvalidBatchResponse("batchItemFailures is not a list")
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            raise InvalidBatchResponse("itemIdentifier missing, empty or not in the batch")
        failed.add(identifier)
    return failed
