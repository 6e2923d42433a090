"""Masker: keyed HMAC-SHA256 tokens "<key id>:<43 base64url chars>", one label per field."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from login_ingest.masking import MIN_KEY_LENGTH, Masker, MaskingKeyError, derive_key_id

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TOKEN = re.compile(r"(?P<key_id>[A-Za-z0-9_-]{1,64}):(?P<digest>[A-Za-z0-9_-]{43})")


def expected_token(key: bytes, key_id: str, label: bytes, value: str) -> str:
    """The token computed independently: HMAC-SHA256(key, label NUL value), base64url."""
    digest = hmac.new(key, label + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()
    return key_id + ":" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def digest_of(token: str) -> bytes:
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return base64.urlsafe_b64decode(match["digest"] + "=")


# --- key and key id validation ---------------------------------------------------------------


def test_minimum_key_length_is_32_bytes() -> None:
    assert MIN_KEY_LENGTH == 32


@pytest.mark.parametrize("length", [0, 1, 16, 31])
def test_short_key_is_rejected(length: int) -> None:
    with pytest.raises(MaskingKeyError, match="at least 32 bytes"):
        Masker(b"k" * length)
    with pytest.raises(MaskingKeyError):
        Masker(b"k" * length, key_id="valid-id")


@pytest.mark.parametrize("length", [32, 33, 64, 1000])
def test_key_of_32_bytes_or_more_is_accepted(length: int) -> None:
    masker = Masker(b"k" * length)
    assert TOKEN.fullmatch(masker.mask_ip("1.2.3.4"))


def test_masking_key_error_is_a_value_error() -> None:
    assert issubclass(MaskingKeyError, ValueError)


def test_key_error_does_not_quote_the_key() -> None:
    secret = b"sekrit-material-0123456789"
    with pytest.raises(MaskingKeyError) as caught:
        Masker(secret)
    assert secret.decode() not in str(caught.value)


@pytest.mark.parametrize(
    "key_id",
    [
        "",
        " ",
        "k 1",
        "key:1",
        "key/1",
        "key.1",
        "key+1",
        "key=",
        "key\n",
        "\nkey",
        "key\x00",
        "ключ",
        "keyé",
        "a" * 65,
    ],
)
def test_bad_key_id_is_rejected(key_id: str) -> None:
    with pytest.raises(MaskingKeyError, match="key id"):
        Masker(KEY, key_id=key_id)


@pytest.mark.parametrize(
    "key_id", ["a", "Z", "0", "-", "_", "prod-2024_01", "K1", "a" * 64, "A-z_0-9"]
)
def test_good_key_id_is_used_as_token_prefix(key_id: str) -> None:
    masker = Masker(KEY, key_id=key_id)
    assert masker.key_id == key_id
    assert masker.mask_ip("1.2.3.4").startswith(key_id + ":")
    assert masker.mask_device_id("d").startswith(key_id + ":")


def test_short_key_is_rejected_before_key_id_is_checked() -> None:
    with pytest.raises(MaskingKeyError, match="at least 32 bytes"):
        Masker(b"short", key_id="bad id")


# --- derive_key_id ---------------------------------------------------------------------------


def test_derive_key_id_is_a_short_deterministic_fingerprint() -> None:
    key_id = derive_key_id(KEY)
    assert re.fullmatch(r"k[0-9a-f]{8}", key_id)
    assert derive_key_id(KEY) == key_id
    expected = "k" + hashlib.sha256(b"login-ingest key id\x00" + KEY).hexdigest()[:8]
    assert key_id == expected


def test_derive_key_id_differs_between_keys_and_hides_the_key() -> None:
    ids = {derive_key_id(bytes([i]) * 32) for i in range(256)}
    assert len(ids) == 256
    assert derive_key_id(KEY) != derive_key_id(OTHER_KEY)
    assert derive_key_id(KEY)[1:] != hashlib.sha256(KEY).hexdigest()[:8]


def test_default_key_id_is_derived_from_the_key() -> None:
    masker = Masker(KEY)
    assert masker.key_id == derive_key_id(KEY)
    assert masker.mask_ip("1.2.3.4").startswith(derive_key_id(KEY) + ":")


def test_derived_key_id_is_a_valid_key_id() -> None:
    for i in range(50):
        key = hashlib.sha256(bytes([i])).digest()
        Masker(key, key_id=derive_key_id(key))


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["1.2.3.4", "2001:db8::1", "", "x", "ユーザー", "😀", "a" * 10_000, "a\x00b"]
)
def test_token_shape(value: str) -> None:
    masker = Masker(KEY, key_id="kid")
    for token in (masker.mask_ip(value), masker.mask_device_id(value)):
        match = TOKEN.fullmatch(token)
        assert match is not None, token
        assert match["key_id"] == "kid"
        assert len(match["digest"]) == 43
        assert "=" not in token
        assert len(digest_of(token)) == 32


@pytest.mark.parametrize("value", ["1.2.3.4", "2001:db8::1", "593-47-5928", "", "é😀"])
def test_tokens_are_hmac_sha256_with_a_label_per_field(value: str) -> None:
    masker = Masker(KEY, key_id="kid")
    assert masker.mask_ip(value) == expected_token(KEY, "kid", b"ip", value)
    assert masker.mask_device_id(value) == expected_token(KEY, "kid", b"device_id", value)


def test_same_input_and_key_give_the_same_token() -> None:
    first, second = Masker(KEY), Masker(KEY)
    assert first.mask_ip("1.2.3.4") == first.mask_ip("1.2.3.4") == second.mask_ip("1.2.3.4")
    assert first.mask_device_id("d-1") == second.mask_device_id("d-1")


def test_masking_has_no_memory_between_values() -> None:
    masker = Masker(KEY)
    a = masker.mask_ip("10.0.0.1")
    masker.mask_ip("10.0.0.2")
    masker.mask_device_id("10.0.0.1")
    assert masker.mask_ip("10.0.0.1") == a
    assert Masker(KEY).mask_ip("10.0.0.1") == a


def test_different_inputs_give_different_tokens() -> None:
    masker = Masker(KEY)
    ips = [f"10.0.{i}.{j}" for i in range(20) for j in range(50)]
    assert len({masker.mask_ip(ip) for ip in ips}) == len(ips)
    assert masker.mask_device_id("abc") != masker.mask_device_id("abd")
    assert masker.mask_device_id("abc") != masker.mask_device_id("abc ")


def test_different_key_gives_a_different_token() -> None:
    same_id_a = Masker(KEY, key_id="shared")
    same_id_b = Masker(OTHER_KEY, key_id="shared")
    for value in ["1.2.3.4", "2001:db8::1"]:
        assert same_id_a.mask_ip(value) != same_id_b.mask_ip(value)
        assert digest_of(same_id_a.mask_ip(value)) != digest_of(same_id_b.mask_ip(value))
    assert same_id_a.mask_device_id("d") != same_id_b.mask_device_id("d")
    assert Masker(KEY).mask_ip("1.2.3.4") != Masker(OTHER_KEY).mask_ip("1.2.3.4")


def test_key_differing_only_in_length_gives_a_different_token() -> None:
    assert Masker(KEY).mask_ip("1.2.3.4") != Masker(KEY + b"\x00").mask_ip("1.2.3.4")


def test_key_id_does_not_change_the_digest() -> None:
    assert digest_of(Masker(KEY, key_id="a").mask_ip("1.2.3.4")) == digest_of(
        Masker(KEY, key_id="b").mask_ip("1.2.3.4")
    )


@pytest.mark.parametrize("value", ["1.2.3.4", "abc", "2001:db8::1", "593-47-5928", ""])
def test_ip_and_device_id_of_the_same_text_differ(value: str) -> None:
    masker = Masker(KEY)
    assert masker.mask_ip(value) != masker.mask_device_id(value)
    assert digest_of(masker.mask_ip(value)) != digest_of(masker.mask_device_id(value))


def test_labels_do_not_collide_across_fields() -> None:
    # "device_id\0x" can never equal "ip\0y", whatever x and y are.
    masker = Masker(KEY)
    assert masker.mask_ip("") != masker.mask_device_id("")
    assert masker.mask_ip("\x00") != masker.mask_device_id("")
    assert masker.mask_device_id("ip\x00x") != masker.mask_ip("x")


def test_token_is_not_an_unkeyed_hash() -> None:
    value = "1.2.3.4"
    digest = digest_of(Masker(KEY).mask_ip(value))
    assert digest != hashlib.sha256(value.encode()).digest()
    assert digest != hashlib.sha256(b"ip\x00" + value.encode()).digest()


@pytest.mark.parametrize(
    "value", ["1.2.3.4", "199.172.111.135", "2001:db8::1", "593-47-5928", "user@example.com"]
)
def test_raw_value_never_appears_in_the_token(value: str) -> None:
    masker = Masker(KEY, key_id="kid")
    for token in (masker.mask_ip(value), masker.mask_device_id(value)):
        assert value not in token
        assert value.replace(".", "").replace(":", "") not in token


def test_raw_value_is_not_recoverable_by_decoding() -> None:
    value = "593-47-5928"
    digest = digest_of(Masker(KEY).mask_device_id(value))
    assert value.encode() not in digest
    assert base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") not in Masker(
        KEY
    ).mask_device_id(value)


def test_key_never_appears_in_the_token() -> None:
    key = b"A" * 32
    masker = Masker(key)
    token = masker.mask_ip("1.2.3.4")
    assert key.decode() not in token
    assert base64.urlsafe_b64encode(key).decode().rstrip("=") not in token


# The masker keeps HMAC's inner and outer hash states instead of calling hmac per value:
# it must give hmac's bytes for every key length, including keys longer than SHA-256's
# 64-byte block (hashed first) and exactly one block long.
@settings(max_examples=300)
@given(key=st.binary(min_size=MIN_KEY_LENGTH, max_size=200), value=st.text())
def test_tokens_match_the_standard_hmac_for_any_key_and_value(key: bytes, value: str) -> None:
    masker = Masker(key, key_id="kid")
    assert masker.mask_ip(value) == expected_token(key, "kid", b"ip", value)
    assert masker.mask_device_id(value) == expected_token(key, "kid", b"device_id", value)


@pytest.mark.parametrize("length", [32, 63, 64, 65, 128])
def test_tokens_match_the_standard_hmac_at_block_boundaries(length: int) -> None:
    key = bytes(range(length))
    assert Masker(key, key_id="kid").mask_ip("1.2.3.4") == expected_token(
        key, "kid", b"ip", "1.2.3.4")
