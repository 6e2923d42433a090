"""The soak run: many messages through several concurrent pollers while faults are injected
(connections killed every few seconds, one server restart, deaths after commit).

SOAK_MESSAGES sets the size: 10,000 by default, 100,000 on CI (.ci/run)."""

from __future__ import annotations

import os

from login_ingest.local.soak import soak


def test_soak_with_faults_loses_and_doubles_nothing() -> None:
    messages = int(os.environ.get("SOAK_MESSAGES", "10000"))

    report = soak(messages, pollers=3, crash_every=50, progress=False)

    print("\n" + "\n".join(report.lines()))
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.rows == report.valid
    assert report.dead_lettered == report.invalid > 0
    assert report.left_in_queue == 0
    assert report.connection_kills > 0 and report.server_restarts == 1
    # Failed invocations beyond the deliberate crashes: the restart hit writes in flight.
    assert report.crashes_after_commit > 0
    assert report.failed_invocations > report.crashes_after_commit
