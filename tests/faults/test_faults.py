"""Faults injected for real into the local stack: connections killed between and during
invocations, the server stopped and restarted, connections refused, and the function dying
after its commit. Each run must end with every valid message stored exactly once and every
invalid one in the dead-letter queue."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from login_ingest.local.generator import generate
from tests.faults.conftest import FaultStack


def test_connection_killed_between_invocations(stack: FaultStack,
                                               function_logs: list[str]) -> None:
    messages = generate(600, seed=21, malformed_share=0.03)
    processor = stack.processor()
    killed = 0

    def function(event: dict[str, Any], context: Any) -> Any:
        nonlocal killed
        killed += stack.terminate_function_connections()
        return processor.handle(event, context)

    summary = stack.drain(messages, function)

    stack.assert_exact(messages, summary)
    assert killed >= 50
    # The stale connection is noticed and replaced within the same invocation.
    assert summary.failed_invocations == 0
    assert sum('"reconnecting after stale connection"' in line for line in function_logs) >= 50


def test_connection_killed_during_the_insert(stack: FaultStack) -> None:
    # A trigger holds every write (COPY fires it too) for a moment, long enough to kill
    # the statement in flight.
    stack.admin.execute("""
        CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;
        CREATE TRIGGER slow_insert BEFORE INSERT ON user_logins
        FOR EACH STATEMENT EXECUTE FUNCTION slow_insert();
    """)
    messages = generate(120, seed=22, malformed_share=0.05)
    processor = stack.processor()
    kills_in_flight = 0

    def kill_inserts(stop: threading.Event) -> None:
        nonlocal kills_in_flight
        while not stop.is_set() and kills_in_flight < 4:
            stack.admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'login-ingest' AND state = 'active'"
                " AND (query LIKE 'COPY%' OR query LIKE 'INSERT%')")
            kills_in_flight += int((stack.admin.fetchone() or (0,))[0])
            time.sleep(0.05)

    stop = threading.Event()
    killer = threading.Thread(target=kill_inserts, args=(stop,))
    killer.start()
    try:
        summary = stack.drain(messages, processor.handle)
    finally:
        stop.set()
        killer.join()
        stack.admin.execute("DROP TRIGGER slow_insert ON user_logins; DROP FUNCTION slow_insert()")

    stack.assert_exact(messages, summary)
    assert kills_in_flight == 4


def test_server_stopped_and_restarted_mid_run(stack: FaultStack,
                                              function_logs: list[str]) -> None:
    messages = generate(1500, seed=23, malformed_share=0.02)
    processor = stack.processor()
    invocations = 0

    def function(event: dict[str, Any], context: Any) -> Any:
        nonlocal invocations
        invocations += 1
        if invocations == 20:
            stack.server.stop("immediate")
            threading.Timer(2.0, stack.server.start).start()
        return processor.handle(event, context)

    summary = stack.drain(messages, function, visibility_timeout=2)

    stack.reconnect_admin()
    stack.assert_exact(messages, summary)
    assert summary.failed_invocations >= 1
    errors = [json.loads(line) for line in function_logs if '"level":"ERROR"' in line]
    assert errors and all(e["error"].startswith("DatabaseUnavailable: OperationalError")
                          for e in errors)


def test_connections_refused_then_allowed(stack: FaultStack, function_logs: list[str]) -> None:
    messages = generate(400, seed=24, malformed_share=0.03)
    processor = stack.processor()
    invocations = 0

    def function(event: dict[str, Any], context: Any) -> Any:
        nonlocal invocations
        invocations += 1
        if invocations == 5:
            # The role may open no connection: what a full max_connections looks like.
            stack.admin.execute("ALTER ROLE ingest CONNECTION LIMIT 0")
            stack.terminate_function_connections()
            threading.Timer(2.5, stack.admin.execute,
                            ["ALTER ROLE ingest CONNECTION LIMIT -1"]).start()
        return processor.handle(event, context)

    summary = stack.drain(messages, function, visibility_timeout=2)

    time.sleep(0.1)
    stack.assert_exact(messages, summary)
    assert summary.failed_invocations >= 1
    # libpq reports a refused connection without a SQLSTATE: the class is what is logged.
    errors = [json.loads(line) for line in function_logs if '"level":"ERROR"' in line]
    assert errors and all(e["error"] == "DatabaseUnavailable: OperationalError" for e in errors)


def test_function_dies_after_commit_before_answering(stack: FaultStack) -> None:
    messages = generate(300, seed=25, malformed_share=0.04)
    processor = stack.processor()
    invocations = 0

    def function(event: dict[str, Any], context: Any) -> Any:
        nonlocal invocations
        invocations += 1
        answer = processor.handle(event, context)
        if invocations % 4 == 0:
            raise RuntimeError("instance lost after the commit")
        return answer

    summary = stack.drain(messages, function)

    stack.assert_exact(messages, summary)
    assert summary.failed_invocations >= 5
    assert summary.duplicates >= 5 * 9  # redelivered batches found their rows already there
