"""Property-based checks: whatever a producer sends, parsing yields a login or a reason code,
and masking is deterministic, well-formed and never shows its input."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_ingest import parsing
from login_ingest.masking import Masker
from login_ingest.parsing import LoginEvent, Reason, RecordRejected, parse_login

FIELDS = ["user_id", "device_type", "ip", "device_id", "locale", "app_version", "create_date"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Values near what producers send, so that many examples pass validation.
field_values = st.one_of(
    json_values,
    st.from_regex(r"\s?v?[0-9]{1,4}(\.[0-9]{1,4}){0,3}\s?", fullmatch=True),
    st.ip_addresses().map(str),
    st.from_regex(r"[0-9]{3}-[0-9]{2}-[0-9]{4}", fullmatch=True),
    st.dates().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
)
logins = st.fixed_dictionaries(
    {"user_id": st.text(min_size=1, max_size=130) | json_values},
    optional={field: field_values for field in FIELDS[1:]},
)


def judge(body: str) -> LoginEvent | Reason:
    try:
        return parse_login(body)
    except RecordRejected as rejected:
        return rejected.reason


@given(st.text())
def test_any_text_is_a_login_or_a_reason(body: str) -> None:
    assert isinstance(judge(body), LoginEvent | Reason)


@given(json_values)
def test_any_json_is_a_login_or_a_reason(value: Any) -> None:
    assert isinstance(judge(json.dumps(value)), LoginEvent | Reason)


@given(logins)
def test_a_login_keeps_its_values_within_their_columns(obj: dict[str, Any]) -> None:
    outcome = judge(json.dumps(obj))
    if isinstance(outcome, Reason):
        return
    assert outcome.user_id == obj["user_id"].strip() and 0 < len(outcome.user_id) <= 128
    for text in (outcome.device_type, outcome.locale):
        assert text is None or 0 < len(text) <= 32
    if outcome.ip is not None:
        assert str(ipaddress.ip_address(outcome.ip)) == outcome.ip
    if outcome.app_version is not None:
        assert 0 <= outcome.app_version <= 999_999_999


TOKEN = re.compile(r"k[0-9a-f]{8}:[A-Za-z0-9_-]{43}")


@given(st.binary(min_size=32, max_size=64), st.ip_addresses().map(str), st.text())
def test_masking_is_deterministic_and_hides_its_input(key: bytes, ip: str, device: str) -> None:
    masker = Masker(key)
    token = masker.mask_ip(ip)
    assert token == Masker(key).mask_ip(ip)
    assert TOKEN.fullmatch(token)
    assert ip not in token  # every ip has a "." or two ":"; a token has neither
    assert masker.mask_device_id(device) != masker.mask_ip(device)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.ip_addresses().map(str))
def test_another_key_gives_another_token(key: bytes, other: bytes, ip: str) -> None:
    if key != other:
        assert Masker(key).mask_ip(ip).split(":")[1] != Masker(other).mask_ip(ip).split(":")[1]


dotted = st.lists(st.one_of(st.integers(0, 300).map(str), st.from_regex(r"0[0-9]{1,2}",
                                                                        fullmatch=True)),
                  min_size=3, max_size=5).map(".".join)


@given(dotted)
def test_ipv4_fast_path_agrees_with_ipaddress(text: str) -> None:
    try:
        expected: str | Reason = str(ipaddress.ip_address(text))
    except ValueError:
        expected = Reason.INVALID_IP
    outcome = judge(json.dumps({"user_id": "u", "ip": text}))
    assert (outcome.ip if isinstance(outcome, LoginEvent) else outcome) == expected


def reference_ip(text: str) -> str | Reason:
    """What the parser must answer for an ip, decided by ipaddress alone."""
    if "%" in text:
        return Reason.INVALID_IP
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return Reason.INVALID_IP
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def spellings(address: ipaddress.IPv6Address, style: int) -> str:
    groups = address.exploded.split(":")
    if style == 0:
        return address.compressed.upper()
    if style == 1:
        return ":".join(group.lstrip("0") or "0" for group in groups)
    if style == 2:  # the last 32 bits as a dotted quad, as RFC 4291 allows
        tail = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return ":".join(groups[:6]) + f":{tail}"
    return address.exploded


# Addresses with runs of zero groups of every length and position, where compression
# choices differ, and the special prefixes (IPv4-mapped, first 96 bits zero).
hextets = st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x1F, 0xABC]) | st.integers(0, 0xFFFF)
ipv6_addresses = st.one_of(
    st.lists(hextets, min_size=8, max_size=8).map(
        lambda parts: ipaddress.IPv6Address(sum(p << (16 * (7 - i)) for i, p in enumerate(parts)))),
    st.integers(0, 2**32 - 1).map(lambda low: ipaddress.IPv6Address((0xFFFF << 32) | low)),
    st.integers(0, 2**32 - 1).map(ipaddress.IPv6Address),
    st.ip_addresses(v=6),
)


@given(ipv6_addresses, st.integers(0, 3))
def test_ipv6_fast_path_agrees_with_ipaddress(address: ipaddress.IPv6Address, style: int) -> None:
    text = spellings(address, style)
    outcome = judge(json.dumps({"user_id": "u", "ip": text}))
    assert (outcome.ip if isinstance(outcome, LoginEvent) else outcome) == reference_ip(text)


@given(st.text(alphabet="0123456789abcdefABCDEF:.% \t\x00", max_size=48))
def test_ip_like_text_gets_the_answer_ipaddress_gives(text: str) -> None:
    outcome = judge(json.dumps({"user_id": "u", "ip": text}))
    assert (outcome.ip if isinstance(outcome, LoginEvent) else outcome) == reference_ip(text)


def hooked_verdict(body: str) -> object:
    """The decoder with hooks alone: its value, or the class of what it raised."""
    try:
        return parsing._decoder.decode(body)
    except (ValueError, RecursionError) as error:
        return type(error)


def fast_verdict(body: str) -> object:
    try:
        return parsing._decode_object(body)
    except (ValueError, RecursionError) as error:
        return type(error)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
keys = st.sampled_from(["user_id", "ip", "a", 'q"', "\\", ""]) | st.text(max_size=4)
spaces = st.sampled_from(["", " ", "\n", "\t "])


@st.composite
def object_texts(draw: st.DrawFn) -> str:
    """Objects written out pair by pair, so that keys may repeat, values may nest."""
    pairs = draw(st.lists(st.tuples(keys, scalars | json_values), max_size=6))
    gap = draw(spaces)
    body = "{" + ",".join(f"{gap}{json.dumps(k)}{gap}:{gap}{json.dumps(v)}" for k, v in pairs)
    body += gap + "}" + draw(st.sampled_from(["", " ", "x", "}", "\n"]))
    # Cut anywhere, often where a value or a key should follow.
    return body[:draw(st.integers(0, len(body)))] if draw(st.booleans()) else body


@given(object_texts() | st.text() | json_values.map(json.dumps))
def test_fast_decoding_gives_the_hooked_decoders_answer(body: str) -> None:
    fast, hooked = fast_verdict(body), hooked_verdict(body)
    assert type(fast) is type(hooked)
    assert fast == hooked


@pytest.mark.parametrize(
    "body", ['{"a":', '{"a": ', '{"a":[', '{"a":x}', '{"a":1,', "{", '{"a":1} '])
def test_a_cut_or_padded_object_gets_the_decoders_own_answer(body: str) -> None:
    assert fast_verdict(body) == hooked_verdict(body)
    assert judge(body) == (Reason.NOT_JSON if body != '{"a":1} ' else Reason.MISSING_USER_ID)
