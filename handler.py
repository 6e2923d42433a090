"""AWS Lambda entry point: SQS batch of login events in, partial batch response out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from login_ingest.batch import LoginBatchProcessor
from login_ingest.config import Settings
from login_ingest.storage import LoginStore
from login_ingest.telemetry import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Built once per Lambda instance; the database connection and the secrets are fetched on
# first use and then reused by every warm invocation.
settings = Settings.from_env()
processor = LoginBatchProcessor(
    store=LoginStore(
        settings.database_dsn,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    ),
    masker=settings.masker,
    vault=settings.vault,
)


# log_event=False even if POWERTOOLS_LOGGER_LOG_EVENT says otherwise: events carry raw PII.
# The request id is the invocation's correlation id: every log line of it carries the id,
# and `sam logs --filter` or Logs Insights finds them all (see README, Runbook).
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    logger.set_correlation_id(context.aws_request_id)
    return processor.handle(event, context)
