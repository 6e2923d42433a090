"""A server of the fault tests' own, which they terminate, stop and restart at will, and a
login role for the function that is not a superuser, so connection limits apply to it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.generator import GeneratedMessage
from login_ingest.local.postgres import LocalPostgres
from login_ingest.local.run import RunOptions, RunSummary, run_pipeline
from login_ingest.local.sqs import LocalSqsServer
from login_ingest.masking import Masker
from login_ingest.storage import LoginStore, apply_schema
from tests.conftest import TEST_MASKING_KEY

_queue_names = (f"faults-{n}" for n in itertools.count())


@dataclass
class FaultStack:
    server: LocalPostgres
    sqs_server: LocalSqsServer
    admin: psycopg2.extensions.cursor

    @property
    def function_url(self) -> str:
        return self.server.url.replace("postgres@", "ingest@", 1)

    def processor(self) -> LoginBatchProcessor:
        """What handler.py builds, pointed at this server as the `ingest` role."""
        store = LoginStore(lambda: self.function_url, connect_timeout=2)
        masker = Masker(TEST_MASKING_KEY.encode())
        return LoginBatchProcessor(store, masker=lambda: masker)

    def terminate_function_connections(self) -> int:
        self.admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                           " WHERE application_name = 'login-ingest'")
        return int((self.admin.fetchone() or (0,))[0])

    def reconnect_admin(self) -> None:
        connection = psycopg2.connect(self.server.url)
        connection.autocommit = True
        self.admin = connection.cursor()

    def drain(self, messages: list[GeneratedMessage], function: Callable[..., Any],
              visibility_timeout: int = 2, max_receive_count: int = 5) -> RunSummary:
        options = RunOptions(batch_size=10, batching_window=0,
                             max_receive_count=max_receive_count,
                             visibility_timeout=visibility_timeout, queue_name=next(_queue_names))
        return run_pipeline([m.body for m in messages], self.sqs_server.client(),
                            self.server.url, options, function=function)

    def assert_exact(self, messages: list[GeneratedMessage], summary: RunSummary) -> None:
        """Every valid message stored exactly once, every invalid one dead-lettered."""
        valid = {json.loads(m.body)["user_id"] for m in messages if m.reason is None}
        self.admin.execute("SELECT user_id, count(*) FROM user_logins GROUP BY 1")
        stored = dict(self.admin.fetchall())
        assert set(stored) == valid, "lost or foreign rows"
        assert set(stored.values()) == {1}, "a message stored twice"
        assert summary.dead_lettered == len(messages) - len(valid)


@pytest.fixture(scope="module")
def fault_stack(sqs_server: LocalSqsServer) -> Iterator[FaultStack]:
    with LocalPostgres() as server:
        apply_schema(server.url)
        connection = psycopg2.connect(server.url)
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("CREATE ROLE ingest LOGIN; GRANT SELECT, INSERT ON user_logins TO ingest")
        yield FaultStack(server, sqs_server, cursor)


@pytest.fixture
def stack(fault_stack: FaultStack) -> FaultStack:
    if not fault_stack.server.is_running():
        fault_stack.server.start()
    fault_stack.reconnect_admin()
    fault_stack.admin.execute("TRUNCATE user_logins; ALTER ROLE ingest CONNECTION LIMIT -1")
    return fault_stack
