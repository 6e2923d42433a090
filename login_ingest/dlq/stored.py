"""Which dead-lettered messages the table already holds, by their SQS messageId."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psycopg2

from login_ingest.dlq.peek import DeadLetter


def mark_stored(messages: Sequence[DeadLetter], database_url: str) -> None:
    """Set each message's `stored` to whether user_logins has a row of its messageId.

    A message is dead-lettered only after failing, but one whose batch was committed just
    before its invocation failed can be both stored and dead-lettered (see README): a
    redrive would give it a new messageId, and so a second row.
    """
    ids = [message.message_id for message in messages]
    with (
        contextlib.closing(psycopg2.connect(database_url, connect_timeout=10)) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT message_id FROM user_logins WHERE message_id = ANY(%s)", (ids,))
        found = {message_id for (message_id,) in cursor.fetchall()}
    for message in messages:
        message.stored = message.message_id in found
