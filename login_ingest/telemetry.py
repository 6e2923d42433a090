"""The function's structured logger and its optional tracer (Powertools), shared by every module."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "login-ingest"

logger = Logger(service=SERVICE)


def tracing_wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Powertools' own rule: trace in Lambda, unless POWERTOOLS_TRACE_DISABLED is true or the
    function runs under `sam local`."""
    disabled = env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower()
    if disabled in {"1", "true", "yes", "on", "y", "t"}:
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not env.get("AWS_SAM_LOCAL")


def build_tracer(env: Mapping[str, str] = os.environ) -> Tracer | None:
    """A Powertools Tracer when tracing is wanted, else None.

    Powertools' Tracer imports the X-Ray SDK even when disabled; built only when wanted, it
    leaves the SDK unimported (about 55 ms of a cold start here) and unneeded where nothing
    is traced: locally, in the tests, under `sam local`. auto_patch is off: the SDK would
    wrap every psycopg2 connection and cursor (a cost on each statement, and COPY through a
    proxy object); the two subsegments below say enough.
    """
    if not tracing_wanted(env):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE, auto_patch=False)


tracer = build_tracer()


@contextlib.contextmanager
def traced(name: str) -> Iterator[None]:
    """Run the block in an X-Ray subsegment `## name`, or as it is when tracing is off.

    An error is recorded by its class only, as an annotation and the subsegment's fault
    flag: the SDK's own exception record would keep its message, which is not ours to vet.
    """
    if tracer is None:
        yield
        return
    failure: Exception | None = None
    with tracer.provider.in_subsegment(name=f"## {name}") as subsegment:
        try:
            yield
        except Exception as error:
            failure = error
            subsegment.put_annotation(key="error", value=type(error).__name__)
            flag_fault = getattr(subsegment, "add_fault_flag", None)
            if flag_fault is not None:
                flag_fault()
    if failure is not None:
        raise failure
