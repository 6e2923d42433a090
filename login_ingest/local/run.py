"""The main job, locally: Postgres, an SQS queue with its DLQ, messages, and the event source
mapping driving `handler.lambda_handler` until the queue is drained."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from login_ingest.local.esm import EventSourceMapping, Function, MappingStats
from login_ingest.local.generator import generate
from login_ingest.local.inputs import read_bodies
from login_ingest.local.postgres import LocalPostgres
from login_ingest.local.sqs import LocalSqsServer, create_queues, queue_depth, send_bodies
from login_ingest.storage import apply_schema


@dataclass
class RunOptions:
    batch_size: int = 100
    batching_window: float = 0.5
    max_receive_count: int = 5
    visibility_timeout: int = 2
    queue_name: str = "login-events"


@dataclass
class RunSummary:
    enqueued: int
    stored: int
    duplicates: int
    item_failures: int
    dead_lettered: int
    rows_in_table: int
    invocations: int
    seconds: float  # from the first poll until the last message was acknowledged
    seconds_to_drain: float  # until the queue was empty, retries of failed messages included

    def lines(self) -> list[str]:
        rate = self.stored / self.seconds if self.seconds else 0.0
        return [
            f"enqueued      {self.enqueued}",
            f"stored        {self.stored}  (rows in user_logins now: {self.rows_in_table})",
            f"duplicates    {self.duplicates}  (redelivered, already stored)",
            f"failed        {self.item_failures}  (failed receives, retried by SQS)",
            f"dead-lettered {self.dead_lettered}",
            f"invocations   {self.invocations}",
            f"throughput    {rate:.0f} rows/s ({self.stored} rows in {self.seconds:.1f} s)",
            f"drained in    {self.seconds_to_drain:.1f} s (failed messages wait out the"
            " visibility timeout before each retry)",
        ]


def count_rows(database_url: str) -> int:
    with (
        contextlib.closing(psycopg2.connect(database_url)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT count(*) FROM user_logins")
        (rows,) = cursor.fetchone() or (0,)
    return int(rows)


def run_pipeline(bodies: list[str], sqs: Any, database_url: str, options: RunOptions,
                 progress: bool = False, function: Function | None = None) -> RunSummary:
    """Enqueue `bodies` on a new queue pair and drain it through handler.lambda_handler
    (or `function`, which tests use to wrap it).

    DATABASE_URL and MASKING_KEY must already be in the environment when the handler is
    first imported, as they would be in Lambda's.
    """
    if function is None:
        function = importlib.import_module("handler").lambda_handler
    queues = create_queues(sqs, options.queue_name, options.max_receive_count,
                           options.visibility_timeout)
    rows_before = count_rows(database_url)
    send_bodies(sqs, queues.url, bodies)
    started = time.monotonic()
    mapping = EventSourceMapping(sqs, queues, function,
                                 batch_size=options.batch_size,
                                 batching_window=options.batching_window)

    def report(stats: MappingStats) -> None:
        print(f"  ... received {stats.received}, acknowledged {stats.acknowledged}"
              f"/{len(bodies)}, failed receives {stats.item_failures}", file=sys.stderr)

    stats = mapping.run_until_drained(progress=report if progress else None)
    drained = time.monotonic() - started
    rows_after = count_rows(database_url)
    return RunSummary(
        enqueued=len(bodies),
        stored=rows_after - rows_before,
        duplicates=stats.acknowledged - (rows_after - rows_before),
        item_failures=stats.item_failures,
        dead_lettered=queue_depth(sqs, queues.dlq_url),
        rows_in_table=rows_after,
        invocations=stats.invocations,
        seconds=max(0.0, stats.last_acknowledged_at - started),
        seconds_to_drain=drained,
    )


@contextlib.contextmanager
def database(keep_dir: Path | None) -> Iterator[str]:
    """DATABASE_URL when set; else a fresh local server, removed at exit unless kept."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = LocalPostgres(keep_dir).start()
    try:
        yield server.url
    finally:
        if keep_dir is None:
            server.destroy()
        else:
            server.stop()


def redirect_function_logs(log_file: Path) -> None:
    """Send the handler's JSON log lines to a file, as CloudWatch Logs would keep them."""
    from login_ingest.telemetry import logger

    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger.registered_handler.setStream(log_file.open("a", encoding="utf-8"))  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m login_ingest.local",
        description="Run the ingest end to end on this machine: local Postgres, local SQS, "
                    "and the handler invoked as Lambda's SQS event source mapping would.",
    )
    parser.add_argument("--input", type=Path,
                        help="JSON array or JSON Lines file, optionally gzipped "
                             "(default: generated messages)")
    parser.add_argument("--count", type=int, default=2_000,
                        help="how many messages to generate without --input (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    defaults = RunOptions()
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--batching-window", type=float, default=defaults.batching_window,
                        help="seconds")
    parser.add_argument("--max-receive-count", type=int, default=defaults.max_receive_count)
    parser.add_argument("--visibility-timeout", type=int, default=defaults.visibility_timeout,
                        help="seconds before a failed message is received again")
    parser.add_argument("--keep-db", type=Path, metavar="DIR",
                        help="keep the local Postgres data in DIR instead of a temporary folder")
    parser.add_argument("--log-file", type=Path, default=Path(".local/function-logs.jsonl"),
                        help="where the handler's JSON log lines go")
    args = parser.parse_args(argv)
    if args.keep_db:
        args.keep_db = args.keep_db.resolve()  # before the cwd matters to anyone

    if args.input:
        bodies = read_bodies(args.input)
        source = str(args.input)
    else:
        bodies = [message.body for message in generate(args.count, seed=args.seed)]
        source = f"generator (seed {args.seed})"
    options = RunOptions(args.batch_size, args.batching_window, args.max_receive_count,
                         args.visibility_timeout)
    if not os.environ.get("MASKING_KEY") and not os.environ.get("MASKING_SECRET_ID"):
        # A throwaway key: tokens are comparable within this run only.
        os.environ["MASKING_KEY"] = secrets.token_urlsafe(32)
        print("MASKING_KEY not set: using a random key for this run", file=sys.stderr)

    with database(args.keep_db) as database_url, LocalSqsServer() as sqs_server:
        os.environ["DATABASE_URL"] = database_url
        print(f"applied {', '.join(apply_schema(database_url))} to {database_url}", file=sys.stderr)
        print(f"SQS endpoint {sqs_server.endpoint_url}; {len(bodies)} messages from {source}; "
              f"batch size {options.batch_size}, maxReceiveCount {options.max_receive_count}, "
              f"visibility timeout {options.visibility_timeout} s", file=sys.stderr)
        redirect_function_logs(args.log_file)
        summary = run_pipeline(bodies, sqs_server.client(), database_url, options, progress=True)
    print("\n".join(summary.lines()))
    print(f"function logs: {args.log_file}")
    return 0
