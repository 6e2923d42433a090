"""A soak run: many messages, several concurrent Lambda instances, and faults injected while
they work; it ends with an exact account of every message.

Each poller is a process of its own, as each Lambda instance is: it imports `handler`,
keeps its own connection, and runs the local event source mapping. A producer keeps the
queue fed; a fault thread kills the function's connections, restarts the server once, and
the pollers' function dies after its commit now and then. SQS (moto) runs in a process of
its own too, so that no one's work slows the queue.

    python -m login_ingest.local.soak --messages 100000 --pollers 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from typing import Any

import psycopg2

from login_ingest.local.esm import EventSourceMapping, MappingStats
from login_ingest.local.generator import generate
from login_ingest.local.postgres import LocalPostgres
from login_ingest.local.sqs import QueuePair, create_queues, queue_depth, send_bodies, sqs_client
from login_ingest.storage import apply_schema

MASKING_KEY = "soak-test-masking-key-0123456789abcdefghijk"


@dataclass
class SoakReport:
    messages: int
    valid: int
    invalid: int
    pollers: int
    rows: int
    distinct_rows: int
    dead_lettered: int
    left_in_queue: int
    connection_kills: int
    server_restarts: int
    crashes_after_commit: int
    failed_invocations: int
    invocations: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.valid - self.distinct_rows

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct_rows

    def lines(self) -> list[str]:
        return [f"{name:<20} {value}" for name, value in
                [*asdict(self).items(), ("lost", self.lost), ("duplicated", self.duplicated)]]


@contextlib.contextmanager
def sqs_process() -> Iterator[str]:
    """moto's server in a child process; yields its endpoint URL."""
    code = ("from login_ingest.local.sqs import LocalSqsServer\n"
            "import sys, time\n"
            "server = LocalSqsServer().start()\n"
            "print(server.endpoint_url, flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.terminate()
        child.wait(10)


def poller(endpoint: str, queue: QueuePair, database_url: str, crash_every: int,
           stop: Event, results: Any) -> None:
    """One Lambda instance: its own handler import, connection and event source mapping."""
    os.environ.update(DATABASE_URL=database_url, MASKING_KEY=MASKING_KEY)
    import handler
    from login_ingest.telemetry import logger

    # The function's log lines would drown the report; the counts tell the story.
    logger.registered_handler.setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # and so would its metrics (EMF)

    crashes = 0

    def function(event: dict[str, Any], context: Any) -> Any:
        nonlocal crashes
        answer = handler.lambda_handler(event, context)
        if crash_every and mapping.stats.invocations % crash_every == 0:
            crashes += 1
            raise RuntimeError("instance lost after the commit")
        return answer

    sqs = sqs_client(endpoint)
    mapping = EventSourceMapping(sqs, queue, function, batch_size=10)
    while not stop.is_set():
        mapping.poll_once()
    results.put((asdict(mapping.stats), crashes))


def soak(messages: int, pollers: int, seed: int = 5, crash_every: int = 50,
         progress: bool = True) -> SoakReport:
    generated = generate(messages, seed=seed, malformed_share=0.01)
    bodies = [m.body for m in generated]
    invalid = sum(m.reason is not None for m in generated)
    context = multiprocessing.get_context("spawn")
    stop, results = context.Event(), context.Queue()
    started = time.monotonic()

    with LocalPostgres() as server, sqs_process() as endpoint:
        apply_schema(server.url)
        sqs = sqs_client(endpoint)
        # Longer than the function can block on a dead server (DB_CONNECT_TIMEOUT, 5 s), so
        # that an outage costs each message at most a receive or two of its five.
        queue = create_queues(sqs, "soak", max_receive_count=5, visibility_timeout=10)
        workers = [context.Process(target=poller, args=(endpoint, queue, server.url,
                                                        crash_every, stop, results))
                   for _ in range(pollers)]
        for worker in workers:
            worker.start()

        faults = Faults(server)
        faults.start()
        try:
            for start in range(0, len(bodies), 200):
                if start >= len(bodies) * 0.4:
                    faults.restart_soon.set()  # mid-run, while valid messages still flow
                send_bodies(sqs, queue.url, bodies[start:start + 200])
                # Keep the queue short: moto scans all of it on every call.
                while queue_depth(sqs, queue.url) > 400:
                    time.sleep(0.05)
                if progress and start % 10_000 == 0:
                    print(f"  ... sent {start}/{len(bodies)}", file=sys.stderr)
            while queue_depth(sqs, queue.url) > 0:
                time.sleep(0.5)
        finally:
            faults.stop()
            stop.set()
            reports = [results.get(timeout=120) for _ in workers]
            for worker in workers:
                worker.join(30)

        stats = [MappingStats(**report) for report, _ in reports]
        with psycopg2.connect(server.url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(DISTINCT user_id) FROM user_logins")
            rows, distinct = cursor.fetchone() or (0, 0)
        connection.close()
        return SoakReport(
            messages=messages, valid=messages - invalid, invalid=invalid, pollers=pollers,
            rows=rows, distinct_rows=distinct,
            dead_lettered=queue_depth(sqs, queue.dlq_url),
            left_in_queue=queue_depth(sqs, queue.url),
            connection_kills=faults.kills, server_restarts=faults.restarts,
            crashes_after_commit=sum(crashes for _, crashes in reports),
            failed_invocations=sum(s.failed_invocations for s in stats),
            invocations=sum(s.invocations for s in stats),
            seconds=round(time.monotonic() - started, 1),
        )


class Faults(threading.Thread):
    """Kills the function's connections every few seconds, and restarts the server once
    when the producer says so."""

    def __init__(self, server: LocalPostgres, every: float = 3.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.every = every
        self.kills = 0
        self.restarts = 0
        self.restart_soon = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            if self.restart_soon.is_set() and not self.restarts:
                self.server.stop("immediate")
                time.sleep(2)
                self.server.start()
                self.restarts += 1
                continue
            with (
                contextlib.suppress(psycopg2.Error),
                contextlib.closing(psycopg2.connect(self.server.url)) as connection,
                connection.cursor() as cursor,
            ):
                cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE application_name = 'login-ingest'")
                self.kills += int((cursor.fetchone() or (0,))[0])

    def stop(self) -> None:
        self._halt.set()
        self.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m login_ingest.local.soak",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--pollers", type=int, default=3)
    parser.add_argument("--crash-every", type=int, default=50,
                        help="each poller's function dies after its commit every N invocations")
    args = parser.parse_args(argv)
    report = soak(args.messages, args.pollers, crash_every=args.crash_every)
    print("\n".join(report.lines()))
    print(json.dumps({**asdict(report), "lost": report.lost, "duplicated": report.duplicated}))
    ok = (report.lost == 0 and report.duplicated == 0 and report.rows == report.valid
          and report.dead_lettered == report.invalid and report.left_in_queue == 0
          and report.failed_invocations > report.crashes_after_commit)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
