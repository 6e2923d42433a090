"""The masking secret's forms: a plain key, one JSON key, and several keys with a current one."""

from __future__ import annotations

import json

import pytest

from login_ingest.keyring import parse_keyring
from login_ingest.masking import Masker, MaskingKeyError, derive_key_id

K1 = "first-masking-key-0123456789-abcdefghijklmn"
K2 = "second-masking-key-0123456789-abcdefghijklm"


def test_plain_key_keeps_its_fingerprint_or_the_given_id() -> None:
    assert parse_keyring(K1).current.key_id == derive_key_id(K1.encode())
    ring = parse_keyring(K1, "legacy")
    assert ring.current.key_id == "legacy"
    assert ring.current.mask_ip("192.0.2.1") == Masker(K1.encode(), "legacy").mask_ip("192.0.2.1")


def test_single_json_key() -> None:
    ring = parse_keyring(json.dumps({"key": K1, "key_id": "k1"}))
    assert list(ring.maskers) == ["k1"]
    assert ring.current.mask_device_id("d") == Masker(K1.encode(), "k1").mask_device_id("d")
    assert parse_keyring(json.dumps({"key": K1}), "fallback").current.key_id == "fallback"


def test_rotating_keys_mask_with_current_and_explain_old_tokens() -> None:
    ring = parse_keyring(json.dumps({"current": "k2", "keys": {"k1": K1, "k2": K2}}))

    new_token = ring.current.mask_ip("192.0.2.1")
    old_token = Masker(K1.encode(), "k1").mask_ip("192.0.2.1")

    assert new_token == Masker(K2.encode(), "k2").mask_ip("192.0.2.1") != old_token
    assert new_token.startswith("k2:")
    assert ring.is_current(new_token) and not ring.is_current(old_token)
    assert ring.masker_for(old_token) is ring.maskers["k1"]
    assert ring.masker_for("k9:whatever") is None
    assert ring.masker_for("no-colon") is None


def test_a_key_id_that_is_a_prefix_of_another_is_not_current() -> None:
    ring = parse_keyring(json.dumps({"current": "k1", "keys": {"k1": K1, "k10": K2}}))
    assert not ring.is_current(ring.maskers["k10"].mask_ip("192.0.2.1"))


@pytest.mark.parametrize("raw, message", [
    ('{"current": "k3", "keys": {"k1": "' + K1 + '"}}', "'current' must name"),
    ('{"current": "k1", "keys": {}}', "'keys' must map"),
    ('{"current": "k1", "keys": {"k1": 7}}', "must be a string"),
    ('{"current": "k1", "keys": {"k1": "short"}}', "at least 32 bytes"),
    ('{"current": "k 1", "keys": {"k 1": "' + K1 + '"}}', "key id must be"),
    ('{"key_id": "k1"}', "needs a 'key' string"),
    ('{"key": "' + K1 + '", "key_id": 5}', "needs a 'key' string"),
    ('{"key": "' + K1 + '",', "not valid JSON"),
    ("[1, 2]", "at least 32 bytes"),  # not "{": a (too short) plain key
])
def test_bad_secrets_fail_without_quoting_keys(raw: str, message: str) -> None:
    with pytest.raises(MaskingKeyError, match=message) as caught:
        parse_keyring(raw)
    assert K1 not in str(caught.value)


def test_a_plain_key_moved_into_the_rotating_form_keeps_its_tokens() -> None:
    # README, "Rotating the masking key": the generated secret holds a plain key whose id is
    # its fingerprint; kept under that id, it goes on explaining the tokens it made.
    before = parse_keyring(K1).current
    rotated = parse_keyring(json.dumps(
        {"current": "k2", "keys": {before.key_id: K1, "k2": K2}}))
    old_token = before.mask_ip("192.0.2.1")
    masker = rotated.masker_for(old_token)
    assert masker is not None and masker.mask_ip("192.0.2.1") == old_token
