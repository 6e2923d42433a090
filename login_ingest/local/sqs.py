"""An SQS endpoint on 127.0.0.1 (moto's server) and the source queue with its dead-letter queue."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from login_ingest.local.context import REGION


def _tune_moto() -> None:
    """Make moto's SQS model safe under concurrent clients, and take two needless costs out
    of it; it decides exactly as before.

    The server answers each request on a thread of its own, but the model is not guarded:
    a delete rebuilds the message list while a send appends to it (the new message is then
    lost), and a receive can fail with "Set changed size during iteration". Each call on a
    queue now holds that queue's own lock, which a long poll releases while it waits.

    moto 5 checks each received message's retention period by computing every queue
    attribute, counts included, which scans the whole queue per message: 10,000 queued
    messages took minutes to drain. The replacement reads the one attribute it needs.
    Every send and receive still scans the queue, asking each message's clock through
    datetime arithmetic; the plain epoch clock gives the same number ten times faster.

    It also gains SQS's message-move task, which moto lacks (see _add_message_move_tasks).
    """
    from moto.sqs import models
    from moto.sqs.models import Message, SQSBackend

    if getattr(SQSBackend, "_login_ingest_tuned", False):
        return
    SQSBackend._login_ingest_tuned = True  # type: ignore[attr-defined]

    def holding_queue_lock(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def locked(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            with backend.get_queue(queue_name)._messages_lock:  # type: ignore[attr-defined]
                return method(backend, queue_name, *args, **kwargs)
        return locked

    for name in ["send_message", "send_message_batch", "receive_message", "delete_message",
                 "delete_message_batch", "change_message_visibility",
                 "change_message_visibility_batch", "get_queue_attributes", "purge_queue"]:
        setattr(SQSBackend, name, holding_queue_lock(getattr(SQSBackend, name)))

    models.unix_time = time.time  # type: ignore[attr-defined,assignment]
    models.unix_time_millis = _epoch_millis  # type: ignore[attr-defined,assignment]
    unix_time = time.time

    def within_retention(backend: SQSBackend, queue_name: str, message: Message) -> bool:
        retention = int(backend.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
        return retention + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]

    SQSBackend.is_message_valid_based_on_retention_period = within_retention  # type: ignore[method-assign,assignment]
    _add_message_move_tasks()


def _add_message_move_tasks() -> None:
    """Give moto SQS's message-move task (StartMessageMoveTask, ListMessageMoveTasks), which
    it lacks: the task moves every visible message of the source queue to the destination,
    body and attributes, before it answers, and is then listed as COMPLETED.

    AWS runs the task in the background; one finished at once is one the caller polls once.
    Each copy is sent before its original is removed, and gets a new messageId, as in AWS;
    a copy the destination refuses ends the task FAILED there.
    """
    import uuid

    from moto.core.responses import ActionResult
    from moto.sqs.responses import SQSResponse

    tasks: dict[str, list[dict[str, Any]]] = {}  # source ARN -> its tasks, newest first

    def queue_named_by_arn(backend: Any, arn: str) -> Any:
        return backend.get_queue(arn.rsplit(":", 1)[1])

    def start_message_move_task(self: Any) -> Any:
        source_arn = self._get_param("SourceArn")
        source = queue_named_by_arn(self.sqs_backend, source_arn)
        destination_arn = self._get_param("DestinationArn")
        destination = queue_named_by_arn(self.sqs_backend, destination_arn)
        with source._messages_lock:
            moving = [m for m in source._messages if m.visible and not m.delayed]
        moved = 0
        failure = None
        for message in moving:
            # One at a time, as the real task: a message the destination refuses (too large,
            # say) ends the task FAILED, with what was moved before it gone from the source.
            try:
                self.sqs_backend.send_message(destination.name, message.body,
                                              message_attributes=message.message_attributes)
            except Exception as error:
                failure = f"{type(error).__name__}: {error}"
                break
            with source._messages_lock:
                source._messages = [m for m in source._messages if m is not message]
            moved += 1
        handle = str(uuid.uuid4())
        tasks.setdefault(source_arn, []).insert(0, {
            "TaskHandle": handle, "Status": "FAILED" if failure else "COMPLETED",
            "SourceArn": source_arn, "DestinationArn": destination_arn,
            "ApproximateNumberOfMessagesMoved": moved,
            "ApproximateNumberOfMessagesToMove": len(moving),
            "StartedTimestamp": int(time.time() * 1000),
            **({"FailureReason": failure} if failure else {})})
        return ActionResult({"TaskHandle": handle})

    def list_message_move_tasks(self: Any) -> Any:
        found = tasks.get(self._get_param("SourceArn"), [])
        limit = int(self._get_param("MaxResults") or 1)
        return ActionResult({"Results": [
            {k: v for k, v in task.items() if k != "TaskHandle"} for task in found[:limit]]})

    SQSResponse.start_message_move_task = start_message_move_task  # type: ignore[attr-defined]
    SQSResponse.list_message_move_tasks = list_message_move_tasks  # type: ignore[attr-defined]


def _epoch_millis() -> float:
    return time.time() * 1000


class LocalSqsServer:
    """moto's threaded server, serving the SQS API over HTTP on a free local port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        _tune_moto()

        # One access log line per request would drown the run's own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalSqsServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self) -> Any:
        return sqs_client(self.endpoint_url)

    def __enter__(self) -> LocalSqsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sqs_client(endpoint_url: str | None) -> Any:
    """A boto3 SQS client; local endpoints get dummy credentials so no AWS profile is needed."""
    if endpoint_url is None:
        return boto3.client("sqs")
    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=REGION,
                        aws_access_key_id="local", aws_secret_access_key="local")


@dataclass(frozen=True)
class QueuePair:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def create_queues(sqs: Any, name: str, max_receive_count: int = 5,
                  visibility_timeout: int = 30) -> QueuePair:
    """Create `name` and `name-dlq`, joined by a redrive policy, as the SAM template does."""
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)}
    )["QueueUrl"]
    dlq_arn = queue_arn(sqs, dlq_url)
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=dlq_url,
        Attributes={"RedriveAllowPolicy": json.dumps(
            {"redrivePermission": "byQueue", "sourceQueueArns": [queue_arn(sqs, url)]}
        )},
    )
    return QueuePair(url=url, arn=queue_arn(sqs, url), dlq_url=dlq_url, dlq_arn=dlq_arn)


def queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
               ["Attributes"]["QueueArn"])


def queue_depth(sqs: Any, url: str) -> int:
    """Messages still in `url`: visible, in flight, or delayed (approximate, as in SQS)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def send_bodies(sqs: Any, url: str, bodies: list[str]) -> list[str]:
    """Send each body as one message, ten per request; returns the messageIds in order."""
    message_ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start:start + 10]
        response = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
        )
        if response.get("Failed"):
            codes = sorted({failure["Code"] for failure in response["Failed"]})
            raise RuntimeError(f"SQS refused {len(response['Failed'])} messages: {codes}")
        by_entry = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
        message_ids += [by_entry[str(i)] for i in range(len(chunk))]
    return message_ids
