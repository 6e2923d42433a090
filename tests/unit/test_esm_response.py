"""failed_message_ids: a partial batch response judged as Lambda's SQS event source judges it."""

from __future__ import annotations

from typing import Any

import pytest

from login_ingest.local.esm import InvalidBatchResponse, failed_message_ids

BATCH = {"m-1", "m-2", "m-3"}


@pytest.mark.parametrize(
    "response",
    [
        None,
        {},
        {"batchItemFailures": []},
        {"batchItemFailures": None},
        {"statusCode": 200},
        {"batchItemFailures": [], "other": "ignored"},
    ],
    ids=["none", "empty-object", "empty-list", "null-list", "no-failures-key", "extra-key"],
)
def test_all_succeeded(response: Any) -> None:
    assert failed_message_ids(response, BATCH) == set()


def test_all_succeeded_even_for_an_empty_batch() -> None:
    assert failed_message_ids(None, set()) == set()
    assert failed_message_ids({"batchItemFailures": []}, set()) == set()


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (["m-1"], {"m-1"}),
        (["m-2", "m-3"], {"m-2", "m-3"}),
        (["m-1", "m-2", "m-3"], BATCH),
        (["m-1", "m-1"], {"m-1"}),
    ],
)
def test_reported_failures(failures: list[str], expected: set[str]) -> None:
    response = {"batchItemFailures": [{"itemIdentifier": f} for f in failures]}
    assert failed_message_ids(response, BATCH) == expected


def test_extra_keys_in_a_failure_are_ignored() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "m-2", "reason": "invalid_ip"}]}
    assert failed_message_ids(response, BATCH) == {"m-2"}


def test_result_is_a_fresh_set() -> None:
    batch = {"m-1"}
    result = failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m-1"}]}, batch)
    assert result == {"m-1"}
    assert result is not batch
    assert batch == {"m-1"}


@pytest.mark.parametrize(
    "failure",
    [
        {"itemIdentifier": "m-9"},
        {"itemIdentifier": "M-1"},
        {"itemIdentifier": " m-1"},
        {"itemIdentifier": ""},
        {"itemIdentifier": None},
        {},
        {"itemidentifier": "m-1"},
        {"messageId": "m-1"},
        {"itemIdentifier": 1},
        {"itemIdentifier": ["m-1"]},
        {"itemIdentifier": {"id": "m-1"}},
        "m-1",
        None,
        1,
        ["m-1"],
    ],
)
def test_invalid_failure_entry_makes_the_response_invalid(failure: Any) -> None:
    with pytest.raises(InvalidBatchResponse):
        failed_message_ids({"batchItemFailures": [failure]}, BATCH)


def test_one_bad_entry_among_good_ones_invalidates_the_response() -> None:
    response = {
        "batchItemFailures": [
            {"itemIdentifier": "m-1"},
            {"itemIdentifier": "unknown"},
            {"itemIdentifier": "m-2"},
        ]
    }
    with pytest.raises(InvalidBatchResponse, match="itemIdentifier"):
        failed_message_ids(response, BATCH)


def test_empty_identifier_is_invalid_even_for_an_empty_batch() -> None:
    with pytest.raises(InvalidBatchResponse):
        failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, set())


@pytest.mark.parametrize(
    "failures", [{"itemIdentifier": "m-1"}, "m-1", 1, True, {}, ("m-1",)]
)
def test_batch_item_failures_must_be_a_list(failures: Any) -> None:
    with pytest.raises(InvalidBatchResponse, match="not a list"):
        failed_message_ids({"batchItemFailures": failures}, BATCH)


@pytest.mark.parametrize("response", ["ok", "", 0, 1, True, 1.5])
def test_response_must_be_an_object(response: Any) -> None:
    with pytest.raises(InvalidBatchResponse, match="not an object"):
        failed_message_ids(response, BATCH)


def test_invalid_batch_response_is_a_value_error() -> None:
    assert issubclass(InvalidBatchResponse, ValueError)
