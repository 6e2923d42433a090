"""Property-based checks: whatever a producer sends, parsing yields a login or a reason code,
and masking is deterministic, well-formed and never shows its input."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

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
