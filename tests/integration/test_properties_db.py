"""Property-based checks against the real database: every accepted login round-trips
through Postgres, and every batch gets an answer Lambda accepts."""

from __future__ import annotations

import json
from typing import Any

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from login_ingest.batch import LoginBatchProcessor
from login_ingest.local.context import LocalLambdaContext
from login_ingest.local.esm import failed_message_ids
from login_ingest.masking import Masker
from login_ingest.storage import LoginStore
from tests.integration.test_storage import sqs_event
from tests.unit.test_properties import json_values, logins

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
DB_SETTINGS = settings(max_examples=150, deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture,
                                              HealthCheck.too_slow])
MASKER = Masker(b"property-test-key-0123456789abcdef")


@pytest.fixture(scope="module")
def processor(database_url: str) -> LoginBatchProcessor:
    return LoginBatchProcessor(LoginStore(lambda: database_url), masker=lambda: MASKER)


@pytest.fixture(scope="module")
def cursor(database_url: str) -> Any:
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    yield connection.cursor()
    connection.close()


@DB_SETTINGS
@given(st.lists(logins | json_values.map(json.dumps) | st.text(), min_size=1, max_size=8))
def test_every_batch_gets_a_valid_answer_and_every_login_round_trips(
    processor: LoginBatchProcessor, cursor: Any, items: list[Any]
) -> None:
    bodies = [item if isinstance(item, str) else json.dumps(item) for item in items]
    cursor.execute("TRUNCATE user_logins")
    event = sqs_event(*bodies)

    response = processor.handle(event, LocalLambdaContext())

    ids = {record["messageId"] for record in event["Records"]}
    failed = failed_message_ids(response, ids)  # raises on anything Lambda would refuse
    cursor.execute("SELECT message_id, user_id FROM user_logins")
    stored = dict(cursor.fetchall())
    assert set(stored) == ids - failed, "every message is stored or reported failed, not both"
    for message_id, user_id in stored.items():
        original = json.loads(bodies[int(message_id[1:])])
        assert user_id == original["user_id"].strip()
