"""The main job, locally: Postgres, an SQS queue with its DLQ, messages, and the event source
mapping driving `handler.lambda_handler` until the queue is drained."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import psycopg2
from psycopg2.extensions import parse_dsn

from login_ingest.config import ConfigError, Settings, without_passwords
from login_ingest.local.context import REGION
from login_ingest.local.esm import EventSourceMapping, Function, MappingStats
from login_ingest.local.generator import generate
from login_ingest.local.inputs import InputError, read_bodies
from login_ingest.local.postgres import LocalPostgres
from login_ingest.local.sqs import LocalSqsServer, create_queues, queue_depth, send_bodies
from login_ingest.masking import MaskingKeyError
from login_ingest.storage import apply_schema
from login_ingest.telemetry import logger


@dataclass
class RunOptions:
    batch_size: int = 100
    batching_window: float = 1.0
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
    failed_invocations: int
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
            f"invocations   {self.invocations}  ({self.failed_invocations} failed as a whole)",
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

    with BatchTotals() as totals:
        stats = mapping.run_until_drained(progress=report if progress else None)
    drained = time.monotonic() - started
    rows_after = count_rows(database_url)
    return RunSummary(
        enqueued=len(bodies),
        stored=rows_after - rows_before,
        duplicates=totals.duplicates,
        item_failures=stats.item_failures,
        dead_lettered=queue_depth(sqs, queues.dlq_url),
        rows_in_table=rows_after,
        invocations=stats.invocations,
        failed_invocations=stats.failed_invocations,
        seconds=max(0.0, stats.last_acknowledged_at - started),
        seconds_to_drain=drained,
    )


class BatchTotals(logging.Handler):
    """Adds up what the function's "batch processed" log lines report, while in use."""

    def __init__(self) -> None:
        super().__init__()
        self.duplicates = 0
        self._logger = logging.getLogger(logger.service)

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "batch processed":
            self.duplicates += getattr(record, "duplicates", 0)

    def __enter__(self) -> BatchTotals:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


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


def redirect_function_logs(log_file: Path) -> TextIO:
    """Send the handler's JSON log lines to a file, as CloudWatch Logs would keep them.

    Returns the file, for the handler's metrics (EMF), which Powertools prints to stdout.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stream = log_file.open("a", encoding="utf-8")
    logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    return stream


def where(database_url: str) -> str:
    """host:port/dbname of a libpq URI or DSN, without the user's password."""
    parts = parse_dsn(database_url)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def ranged(kind: type[int] | type[float], least: float, most: float) -> Callable[[str], Any]:
    """An argparse type accepting `kind` values from `least` to `most`, as SQS and Lambda do."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"must be from {least:g} to {most:g}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m login_ingest.local",
        description="Run the ingest end to end on this machine: local Postgres, local SQS, "
                    "and the handler invoked as Lambda's SQS event source mapping would.",
    )
    parser.add_argument("--input", type=Path,
                        help="JSON array or JSON Lines file, optionally gzipped "
                             "(default: generated messages)")
    parser.add_argument("--count", type=ranged(int, 0, 1_000_000), default=2_000,
                        help="how many messages to generate without --input (default 2000)")
    parser.add_argument("--seed", type=int, default=1)
    defaults = RunOptions()
    parser.add_argument("--batch-size", type=ranged(int, 1, 10_000),
                        default=defaults.batch_size, help="1 to 10000 (default %(default)s)")
    parser.add_argument("--batching-window", type=ranged(float, 0, 300),
                        default=defaults.batching_window,
                        help="seconds, 0 to 300; at least 1 with a batch size over 10 "
                             "(default %(default)s)")
    parser.add_argument("--max-receive-count", type=ranged(int, 1, 1000),
                        default=defaults.max_receive_count,
                        help="receives before the DLQ, 1 to 1000 (default %(default)s)")
    parser.add_argument("--visibility-timeout", type=ranged(int, 0, 43_200),
                        default=defaults.visibility_timeout,
                        help="seconds before a failed message is received again "
                             "(default %(default)s)")
    parser.add_argument("--keep-db", type=Path, metavar="DIR",
                        help="keep the local Postgres data in DIR instead of a temporary folder")
    parser.add_argument("--log-file", type=Path, default=Path(".local/function-logs.jsonl"),
                        help="where the handler's JSON log lines go (default %(default)s)")
    parser.add_argument("--stay", action="store_true",
                        help="after the run, keep Postgres and SQS up until Ctrl-C, and print "
                             "how to reach them (to try the DLQ and recovery commands)")
    args = parser.parse_args(argv)
    if args.batch_size > 10 and args.batching_window < 1:
        parser.error("a batch size over 10 needs a batching window of at least 1 s, as in AWS")
    if args.visibility_timeout <= args.batching_window:
        # In AWS it must cover 6 function timeouts plus the window; here the function's
        # time is tiny, but a window longer than the timeout would hand a message out twice.
        parser.error("the visibility timeout must be longer than the batching window")
    if args.keep_db:
        args.keep_db = args.keep_db.resolve()  # before the cwd matters to anyone
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and a plain kill both unwind through the `with` blocks, which stop the servers.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; local servers stopped", file=sys.stderr)
        return 130
    except (OSError, EOFError, UnicodeDecodeError, InputError, ConfigError, MaskingKeyError,
            psycopg2.Error, subprocess.CalledProcessError) as error:
        print(f"error: {type(error).__name__}: {without_passwords(str(error))}".rstrip(),
              file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    if args.input:
        bodies = read_bodies(args.input)
        source = str(args.input)
    else:
        bodies = [message.body for message in generate(args.count, seed=args.seed)]
        source = f"generator (seed {args.seed})"
    options = RunOptions(args.batch_size, args.batching_window, args.max_receive_count,
                         args.visibility_timeout)
    generated_keys = {}  # printed by --stay, so that its shell can unmask this run's tokens
    if not os.environ.get("MASKING_KEY") and not os.environ.get("MASKING_SECRET_ID"):
        # A throwaway key: tokens are comparable within this run only.
        os.environ["MASKING_KEY"] = generated_keys["MASKING_KEY"] = secrets.token_urlsafe(32)
        print("MASKING_KEY not set: using a random key for this run"
              + (", so its tokens will not match earlier runs' in the kept database"
                 if args.keep_db else ""), file=sys.stderr)
    if not os.environ.get("VAULT_LOCAL_KEY") and not os.environ.get("VAULT_KMS_KEY_ID"):
        # The vault's development path: originals kept, encrypted under a throwaway key.
        from login_ingest.vault import new_local_key

        os.environ["VAULT_LOCAL_KEY"] = generated_keys["VAULT_LOCAL_KEY"] = new_local_key()
        print("VAULT_LOCAL_KEY not set: using a random key for this run"
              + (", so `login_ingest.recovery` cannot open this run's vault rows later"
                 if args.keep_db else ""), file=sys.stderr)
    # Refuse a bad key or setting here, before anything is enqueued, not in every batch.
    Settings.from_env().masker()
    Settings.from_env().vault()

    with database(args.keep_db) as database_url, LocalSqsServer() as sqs_server:
        os.environ["DATABASE_URL"] = database_url
        print(f"applied {', '.join(apply_schema(database_url))} to {where(database_url)}",
              file=sys.stderr)
        print(f"SQS endpoint {sqs_server.endpoint_url}; {len(bodies)} messages from {source}; "
              f"batch size {options.batch_size}, maxReceiveCount {options.max_receive_count}, "
              f"visibility timeout {options.visibility_timeout} s", file=sys.stderr)
        # In Lambda the metrics reach the log stream beside the log lines; here, the file.
        function_output = redirect_function_logs(args.log_file)
        with contextlib.redirect_stdout(function_output):
            summary = run_pipeline(bodies, sqs_server.client(), database_url, options,
                                   progress=True)
        function_output.flush()
        print("\n".join(summary.lines()))
        print(f"function logs: {args.log_file}")
        if args.stay:
            stay(database_url, sqs_server.endpoint_url, options, generated_keys)
    return 0


def stay(database_url: str, endpoint_url: str, options: RunOptions,
         generated_keys: dict[str, str]) -> None:
    """Print how to reach the run's servers, and keep them up until Ctrl-C."""
    exports = {"DATABASE_URL": database_url, **generated_keys,
               "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
               "AWS_DEFAULT_REGION": REGION}
    with (contextlib.closing(psycopg2.connect(database_url)) as connection,
          connection.cursor() as cursor):
        cursor.execute("SELECT masked_ip FROM user_logins WHERE masked_ip IS NOT NULL LIMIT 1")
        token = (cursor.fetchone() or ("<a masked_ip or masked_device_id>",))[0]
    lines = [
        "",
        "Postgres and SQS stay up until Ctrl-C. In another shell, in this folder:",
        *(f"  export {name}='{value}'" for name, value in exports.items()),
        *([] if len(generated_keys) == 2 else
          ["  (and export the MASKING_KEY / VAULT_LOCAL_KEY you set for this run)"]),
        f"  .venv/bin/python -m login_ingest.dlq inspect --dlq-name {options.queue_name}-dlq"
        f" --endpoint-url {endpoint_url}",
        f"  .venv/bin/python -m login_ingest.recovery unmask '{token}' --reason 'trying it'",
    ]
    print("\n".join(lines), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping the local servers", file=sys.stderr)
