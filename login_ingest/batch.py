"""Delivery semantics: validate every record of an SQS batch, store the valid ones in one
write, and report exactly the failed messages back to SQS."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from login_ingest.config import ConfigError
from login_ingest.masking import MaskingKeyError
from login_ingest.metrics import BatchOutcome, publish
from login_ingest.parsing import Reason, RecordRejected, parse_login, sent_date
from login_ingest.storage import DatabaseUnavailable, LoginRow, LoginStore
from login_ingest.telemetry import logger, traced

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from login_ingest.masking import Masker
    from login_ingest.vault import RecordingMasker, Vault


# SQS message ids are 36 characters: 500 of them keep a log line far below CloudWatch's
# 256 KB event limit.
REJECTED_IDS_PER_LINE = 500


class LoginBatchProcessor(BatchProcessor):
    """A Powertools SQS batch processor whose records are written together, after all of them
    are validated, instead of one by one inside the record handler."""

    def __init__(self, store: LoginStore, masker: Callable[[], Masker],
                 vault: Callable[[], Vault | None] = lambda: None) -> None:
        # Every record failing is reported as a full list of failures, not raised: the
        # response then shows which messages failed and why the batch came back.
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self._store = store
        self._load_masker = masker
        self._masker: Masker | RecordingMasker | None = None
        self._load_vault = vault
        self._vault: Vault | None = None
        self._recorder: RecordingMasker | None = None
        self._valid: list[tuple[dict[str, Any], LoginRow]] = []
        self._rejected: dict[tuple[Reason, str | None], list[str]] = {}
        self._stored = 0
        self._duplicates = 0
        self._failed_by_reason: dict[str, int] = {}
        self._write_ms: float | None = None

    def handle(self, event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        """Process one Lambda SQS event and return Lambda's partial batch response.

        `context` is Lambda's context object, or any object with the same attributes. Raises
        when the batch as a whole cannot be judged (database or configuration unusable), so
        that SQS redelivers all of it.
        """
        records = event.get("Records") if isinstance(event, dict) else None
        received = len(records) if isinstance(records, list) else 0
        self._failed_by_reason = {}
        self._write_ms = None
        failed = False
        try:
            return process_partial_response(event, self._to_row_of, self, context)
        except Exception as error:
            failed = True
            logger.error(
                "invocation failed; SQS will redeliver the whole batch",
                extra={
                    "received": received if isinstance(records, list) else None,
                    "error": _describe(error),
                },
            )
            raise
        finally:
            self._publish_metrics(received, failed)

    def _publish_metrics(self, received: int, failed: bool) -> None:
        # Once per invocation, raised or not: a few EMF lines, never one per record. Metrics
        # that cannot be published must not fail a batch that is already stored.
        try:
            publish(BatchOutcome(
                received=received,
                stored=0 if failed else self._stored,
                duplicates=0 if failed else self._duplicates,
                failed_by_reason=self._failed_by_reason,
                write_ms=None if failed else self._write_ms,
                invocation_failed=failed,
            ))
        except Exception as error:
            logger.warning("metrics not published", extra={"error": type(error).__name__})

    def __call__(self, records: list[dict[str, Any]], handler: Callable[..., Any],
                 lambda_context: Any = None) -> LoginBatchProcessor:
        # Powertools inspects the record handler's signature on every call, to learn whether
        # it wants the context; ours never does. That was a tenth of a warm 10-record call.
        self.records = records
        self.handler = handler
        self.lambda_context = lambda_context
        self._handler_accepts_lambda_context = False
        return self

    def _prepare(self) -> None:
        super()._prepare()  # type: ignore[no-untyped-call]
        self._valid.clear()
        self._rejected.clear()
        self._stored = self._duplicates = 0
        # Loaded per batch so that a rotated key is picked up; cached by the config layer.
        # A failure here fails the whole invocation, before any record is judged.
        self._masker = self._load_masker()
        # With the vault on, the masker also notes each token's original, for this batch
        # only: they are sealed and stored beside the rows, never logged.
        self._vault = self._load_vault()
        if self._vault is not None:
            self._masker = self._recorder = self._vault.recorder(self._masker)

    def _process_record(self, record: dict[str, Any]) -> tuple[str, Any, Any]:
        # The per-record step of Powertools' BatchProcessor, without what this function
        # never uses (models, an injected context, a data-class wrap per record): it runs
        # 10,000 times in a large batch. A valid record is not yet a success: the verdict
        # comes after the one write, in __exit__.
        try:
            row = self._to_row(record)
        except Exception:
            return self.failure_handler(SQSRecord(record), sys.exc_info())
        self._valid.append((record, row))
        return ("success", row, record)

    def _to_row(self, record: dict[str, Any]) -> LoginRow:
        masker = self._masker
        assert masker is not None
        user_id, device_type, ip, device_id, locale, app_version, create_date = parse_login(
            record["body"])
        return LoginRow(
            record["messageId"],
            user_id,
            device_type,
            None if ip is None else masker.mask_ip(ip),
            None if device_id is None else masker.mask_device_id(device_id),
            locale,
            app_version,
            create_date or sent_date(sent_timestamp(record)),
        )

    def _to_row_of(self, record: SQSRecord) -> LoginRow:
        # The record handler Powertools' API asks for; _process_record calls _to_row itself.
        return self._to_row(record.raw_event)

    def failure_handler(self, record: SQSRecord, exception: Any) -> tuple[str, Any, Any]:
        error = exception[1]
        if isinstance(error, RecordRejected):
            self._reject(record, error.reason)
        else:
            # A bug, not bad input. Only the class is logged: its message may quote the body.
            self._reject(record, Reason.INTERNAL_ERROR, error=type(error).__name__)
        return ("fail", exception[0].__name__, record)

    def _reject(self, record: SQSRecord, reason: Reason, error: str | None = None) -> None:
        self.fail_messages.append(record)
        self.exceptions.append((RecordRejected, RecordRejected(reason), None))
        self._failed_by_reason[reason] = self._failed_by_reason.get(reason, 0) + 1
        self._rejected.setdefault((reason, error), []).append(record.message_id)

    def _log_rejections(self) -> None:
        # One line per reason rather than per record: a producer that sends nothing but bad
        # messages would otherwise write a line per message per retry, and formatting them
        # was most of what a bad record cost (see README, Performance).
        for (reason, error), message_ids in self._rejected.items():
            for start in range(0, len(message_ids), REJECTED_IDS_PER_LINE):
                chunk = message_ids[start:start + REJECTED_IDS_PER_LINE]
                detail = {} if error is None else {"error": error}
                logger.warning(
                    "records rejected",
                    extra={"reason": reason.value, "count": len(chunk), **detail,
                           "message_ids": chunk},
                )
        self._rejected.clear()

    def __exit__(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        try:
            if exception_type is None:
                self._write_valid()
        finally:
            self._log_rejections()
        super().__exit__(exception_type, exception_value, traceback)  # type: ignore[no-untyped-call]

    def _clean(self) -> None:
        super()._clean()  # type: ignore[no-untyped-call]
        self._recorder = None  # the batch's originals leave memory with it
        logger.info(
            "batch processed",
            extra={
                "received": len(self.records),
                "stored": self._stored,
                "duplicates": self._duplicates,
                "failed": len(self.fail_messages),
            },
        )

    def _write_valid(self) -> None:
        sealed = None
        if self._vault is not None and self._recorder is not None:
            sealed = self._vault.seal(self._recorder.originals)
        rows = [row for _, row in self._valid]
        started = time.perf_counter()
        with traced("store_rows"):
            result = self._store.store(rows, sealed)
        if rows:
            self._write_ms = (time.perf_counter() - started) * 1000
        if result.rejected:
            for record, row in self._valid:
                if row.message_id in result.rejected:
                    self._reject(SQSRecord(record), Reason.REJECTED_BY_DATABASE,
                                 error=result.rejected[row.message_id])
        self.success_messages.extend(
            SQSRecord(record) for record, row in self._valid
            if row.message_id not in result.rejected)
        self._stored = len(result.inserted)
        self._duplicates = len(self.success_messages) - self._stored


# A message attribute the dead-letter tooling puts on a redriven copy: SQS stamps the copy
# anew, and a login without create_date keeps the date of its first sending.
ORIGINAL_SENT_TIMESTAMP = "original_sent_timestamp"


def sent_timestamp(record: dict[str, Any]) -> str | None:
    """The record's SentTimestamp: its first sending's, when it is a redriven copy."""
    attributes = record.get("messageAttributes")
    original = attributes.get(ORIGINAL_SENT_TIMESTAMP) if isinstance(attributes, dict) else None
    if isinstance(original, dict) and original.get("stringValue"):
        return original["stringValue"]  # type: ignore[no-any-return]
    return (record.get("attributes") or {}).get("SentTimestamp")  # type: ignore[no-any-return]


# Errors whose messages we write ourselves and which therefore quote no input.
_OWN_MESSAGES = (DatabaseUnavailable, ConfigError, MaskingKeyError)


def _describe(error: Exception) -> str:
    if isinstance(error, _OWN_MESSAGES):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__
