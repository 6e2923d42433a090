"""parse_login, sent_date and the reason codes: what is accepted, how it is normalised, and
which reason each kind of bad message is rejected with."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from login_ingest.parsing import (
    DEVICE_ID_MAX,
    DEVICE_TYPE_MAX,
    LOCALE_MAX,
    USER_ID_MAX,
    LoginEvent,
    Reason,
    RecordRejected,
    parse_login,
    sent_date,
)


def body(**fields: Any) -> str:
    """A message body holding `user_id` "u-1" and `fields`."""
    return json.dumps({"user_id": "u-1", **fields})


def rejection(raw: str) -> Reason:
    with pytest.raises(RecordRejected) as caught:
        parse_login(raw)
    return caught.value.reason


# --- Reason and RecordRejected ---------------------------------------------------------------


def test_reason_codes_are_the_logged_strings() -> None:
    assert {reason.value for reason in Reason} == {
        "not_json",
        "not_an_object",
        "duplicate_key",
        "missing_user_id",
        "invalid_user_id",
        "invalid_device_type",
        "invalid_locale",
        "invalid_ip",
        "invalid_device_id",
        "invalid_app_version",
        "invalid_create_date",
        "invalid_sent_timestamp",
        "rejected_by_database",
        "internal_error",
    }
    assert isinstance(Reason.INVALID_IP, str)
    assert str(Reason.INVALID_IP) == "invalid_ip"
    assert f"{Reason.NOT_JSON}" == "not_json"


def test_record_rejected_carries_only_the_reason_code() -> None:
    error = RecordRejected(Reason.INVALID_LOCALE)
    assert error.reason is Reason.INVALID_LOCALE
    assert str(error) == "invalid_locale"
    assert error.args == ("invalid_locale",)


def test_rejection_message_never_quotes_the_body() -> None:
    secret = "alice@example.com"
    with pytest.raises(RecordRejected) as caught:
        parse_login(json.dumps({"user_id": secret, "ip": secret}))
    assert caught.value.reason is Reason.INVALID_IP
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# --- a complete, valid login -----------------------------------------------------------------


def test_full_login_is_parsed_and_normalised() -> None:
    raw = json.dumps(
        {
            "user_id": "  424cdd21-063a-43a7-b91b-7ca1a833afae ",
            "app_version": "2.3.0",
            "device_type": "android",
            "ip": " 199.172.111.135 ",
            "locale": "RU",
            "device_id": "593-47-5928",
            "create_date": "2024-05-06",
        }
    )
    assert parse_login(raw) == LoginEvent(
        user_id="424cdd21-063a-43a7-b91b-7ca1a833afae",
        device_type="android",
        ip="199.172.111.135",
        device_id="593-47-5928",
        locale="RU",
        app_version=2003000,
        create_date=date(2024, 5, 6),
    )


def test_login_event_is_immutable() -> None:
    event = parse_login(body())
    with pytest.raises(AttributeError):
        event.user_id = "other"  # type: ignore[misc]


def test_only_user_id_is_required() -> None:
    assert parse_login('{"user_id": "u-1"}') == LoginEvent(
        user_id="u-1",
        device_type=None,
        ip=None,
        device_id=None,
        locale=None,
        app_version=None,
        create_date=None,
    )


@pytest.mark.parametrize(
    "field", ["device_type", "ip", "device_id", "locale", "app_version", "create_date"]
)
def test_null_optional_field_is_none(field: str) -> None:
    event = parse_login(body(**{field: None}))
    assert getattr(event, field) is None


def test_unknown_fields_are_ignored() -> None:
    raw = body(
        locale="FR",
        extra="x",
        nested={"a": [1, 2, {"b": None}]},
        number=1.5,
        flag=True,
        bad_ip_elsewhere="not an ip",
    )
    event = parse_login(raw)
    assert event.user_id == "u-1"
    assert event.locale == "FR"
    assert event == parse_login(body(locale="FR"))


def test_whitespace_around_the_document_is_allowed() -> None:
    assert parse_login(' \n\t{"user_id": "u-1"}\r\n ').user_id == "u-1"


def test_values_are_not_altered_beyond_trimming() -> None:
    event = parse_login(body(user_id="  Mixed Case\tId  ", device_type="iOS", locale="pt-BR"))
    assert event.user_id == "Mixed Case\tId"
    assert event.device_type == "iOS"
    assert event.locale == "pt-BR"


def test_non_ascii_text_is_kept() -> None:
    event = parse_login(
        body(user_id="ユーザー", device_id="\ud83d\ude00-phone", locale="\u0440\u0443")
    )
    assert event.user_id == "ユーザー"
    assert event.device_id == "😀-phone"
    assert event.locale == "\u0440\u0443"


def test_escaped_surrogate_pair_is_one_valid_character() -> None:
    event = parse_login('{"user_id": "\\ud83d\\ude00"}')
    assert event.user_id == "😀"


# --- document-level rejections ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", Reason.NOT_JSON),
        ("   ", Reason.NOT_JSON),
        ("login user=12345", Reason.NOT_JSON),
        ("{user_id: 'u-1'}", Reason.NOT_JSON),
        ('{"user_id": "u-1",}', Reason.NOT_JSON),
        ('{"user_id": "u-1"} {}', Reason.NOT_JSON),
        ('{"user_id": "u-1"', Reason.NOT_JSON),
        ('\ufeff{"user_id": "u-1"}', Reason.NOT_JSON),
        ('{"user_id": "u-1", "app_version": NaN}', Reason.NOT_JSON),
        ('{"user_id": "u-1", "app_version": Infinity}', Reason.NOT_JSON),
        ('{"user_id": "u-1", "app_version": -Infinity}', Reason.NOT_JSON),
        ('{"user_id": "u-1", "extra": NaN}', Reason.NOT_JSON),
        ("NaN", Reason.NOT_JSON),
        ("[" * 100_000, Reason.NOT_JSON),
        ('{"a":' * 100_000, Reason.NOT_JSON),
        ('{"user_id": "u-1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", Reason.NOT_JSON),
        ("[]", Reason.NOT_AN_OBJECT),
        ('["login", 42]', Reason.NOT_AN_OBJECT),
        ('"{\\"user_id\\": \\"u-1\\"}"', Reason.NOT_AN_OBJECT),
        ("42", Reason.NOT_AN_OBJECT),
        ("1.5", Reason.NOT_AN_OBJECT),
        ("null", Reason.NOT_AN_OBJECT),
        ("true", Reason.NOT_AN_OBJECT),
        ('[{"user_id": "u-1"}]', Reason.NOT_AN_OBJECT),
        ('{"user_id": "a", "user_id": "b"}', Reason.DUPLICATE_KEY),
        ('{"user_id": "a", "user_id": "a"}', Reason.DUPLICATE_KEY),
        ('{"user_id": "a", "ip": null, "ip": "1.2.3.4"}', Reason.DUPLICATE_KEY),
        ('{"user_id": "a", "x": {"k": 1, "k": 2}}', Reason.DUPLICATE_KEY),
        ('[{"k": 1, "k": 2}]', Reason.DUPLICATE_KEY),
        ('{"x": 1, "x": 2}', Reason.DUPLICATE_KEY),
    ],
)
def test_document_rejections(raw: str, reason: Reason) -> None:
    assert rejection(raw) is reason


def test_deep_nesting_is_rejected_without_recursion_error() -> None:
    for raw in ("[" * 100_000, "{" * 100_000, '{"a":[' * 50_000):
        with pytest.raises(RecordRejected) as caught:
            parse_login(raw)
        assert caught.value.reason is Reason.NOT_JSON


def test_moderate_nesting_in_unknown_field_is_accepted() -> None:
    raw = '{"user_id": "u-1", "x": ' + "[" * 50 + "]" * 50 + "}"
    assert parse_login(raw).user_id == "u-1"


# --- user_id ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["{}", '{"user_id": null}', '{"foo": "oops_wrong_msg_type", "bar": "123"}',
     '{"userId": "u-1"}', '{"USER_ID": "u-1"}'],
)
def test_missing_user_id(raw: str) -> None:
    assert rejection(raw) is Reason.MISSING_USER_ID


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "\t\n",
        "a" * (USER_ID_MAX + 1),
        " " + "a" * (USER_ID_MAX + 1) + " ",
        "é" * (USER_ID_MAX + 1),
        "u\x00",
        "\x00",
        "a\x00b",
        42,
        0,
        1.5,
        True,
        False,
        ["u-1"],
        {"id": "u-1"},
    ],
)
def test_invalid_user_id(value: object) -> None:
    assert rejection(json.dumps({"user_id": value})) is Reason.INVALID_USER_ID


@pytest.mark.parametrize("escaped", ["\\ud800", "a\\udfffb", "\\ude00\\ud83d", "\\udbff"])
def test_lone_surrogate_user_id_is_invalid(escaped: str) -> None:
    assert rejection('{"user_id": "' + escaped + '"}') is Reason.INVALID_USER_ID


def test_user_id_length_limit_counts_characters_after_trimming() -> None:
    assert parse_login(body(user_id="a" * USER_ID_MAX)).user_id == "a" * USER_ID_MAX
    assert parse_login(body(user_id="é" * USER_ID_MAX)).user_id == "é" * USER_ID_MAX
    padded = "  " + "a" * USER_ID_MAX + "  "
    assert parse_login(body(user_id=padded)).user_id == "a" * USER_ID_MAX


def test_field_limits_match_the_table_columns() -> None:
    assert (USER_ID_MAX, DEVICE_TYPE_MAX, LOCALE_MAX) == (128, 32, 32)


# --- optional text fields --------------------------------------------------------------------

TEXT_FIELDS = [
    ("device_type", DEVICE_TYPE_MAX, Reason.INVALID_DEVICE_TYPE),
    ("locale", LOCALE_MAX, Reason.INVALID_LOCALE),
    ("device_id", DEVICE_ID_MAX, Reason.INVALID_DEVICE_ID),
]


@pytest.mark.parametrize(("field", "limit", "reason"), TEXT_FIELDS)
def test_optional_text_at_its_limit_is_kept(field: str, limit: int, reason: Reason) -> None:
    value = "x" * limit
    assert getattr(parse_login(body(**{field: f" {value}\n"})), field) == value


@pytest.mark.parametrize(("field", "limit", "reason"), TEXT_FIELDS)
@pytest.mark.parametrize(
    "make_value",
    [
        lambda limit: "",
        lambda limit: "    ",
        lambda limit: "x" * (limit + 1),
        lambda limit: "ü" * (limit + 1),
        lambda limit: "a\x00",
        lambda limit: 7,
        lambda limit: 1.0,
        lambda limit: True,
        lambda limit: ["android"],
        lambda limit: {"v": "android"},
    ],
    ids=["empty", "blank", "too-long", "too-long-non-ascii", "nul", "int", "float", "bool",
         "list", "object"],
)
def test_invalid_optional_text(
    field: str, limit: int, reason: Reason, make_value: Any
) -> None:
    assert rejection(body(**{field: make_value(limit)})) is reason


@pytest.mark.parametrize(("field", "limit", "reason"), TEXT_FIELDS)
def test_lone_surrogate_in_optional_text(field: str, limit: int, reason: Reason) -> None:
    raw = '{"user_id": "u-1", "' + field + '": "ok\\ud800"}'
    assert rejection(raw) is reason


def test_device_type_limit_is_32_and_locale_limit_is_32() -> None:
    assert parse_login(body(device_type="d" * 32)).device_type == "d" * 32
    assert rejection(body(device_type="d" * 33)) is Reason.INVALID_DEVICE_TYPE
    assert parse_login(body(locale="l" * 32)).locale == "l" * 32
    assert rejection(body(locale="l" * 33)) is Reason.INVALID_LOCALE


def test_first_invalid_field_decides_the_reason() -> None:
    # Fields are judged in a fixed order: user_id, device_type, ip, device_id, locale,
    # app_version, create_date.
    everything_bad = {
        "user_id": 1,
        "device_type": 1,
        "ip": "x",
        "device_id": 1,
        "locale": 1,
        "app_version": "x",
        "create_date": "x",
    }
    order = [
        ("user_id", Reason.INVALID_USER_ID),
        ("device_type", Reason.INVALID_DEVICE_TYPE),
        ("ip", Reason.INVALID_IP),
        ("device_id", Reason.INVALID_DEVICE_ID),
        ("locale", Reason.INVALID_LOCALE),
        ("app_version", Reason.INVALID_APP_VERSION),
        ("create_date", Reason.INVALID_CREATE_DATE),
    ]
    fields: dict[str, object] = dict(everything_bad)
    for field, reason in order:
        assert rejection(json.dumps(fields)) is reason
        fields[field] = "u-1" if field == "user_id" else None
    assert parse_login(json.dumps(fields)).user_id == "u-1"


# --- ip --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("\t192.168.1.1\n", "192.168.1.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:db8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        (" 2001:DB8:0::0:1 ", "2001:db8::1"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::", "::"),
        ("FE80::ABCD", "fe80::abcd"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::FFFF:1.2.3.4", "1.2.3.4"),
        ("::ffff:0102:0304", "1.2.3.4"),
        ("0:0:0:0:0:ffff:102:304", "1.2.3.4"),
        (" ::ffff:10.0.0.1 ", "10.0.0.1"),
    ],
)
def test_ip_is_canonicalised(value: str, canonical: str) -> None:
    assert parse_login(body(ip=value)).ip == canonical


def test_ipv6_spellings_collapse_to_one_form() -> None:
    spellings = [
        "2001:DB8::1",
        "2001:db8:0:0:0:0:0:1",
        "2001:0DB8:0000:0000:0000:0000:0000:0001",
        "2001:db8::0:1",
        " 2001:db8::1\n",
    ]
    assert {parse_login(body(ip=spelling)).ip for spelling in spellings} == {"2001:db8::1"}


def test_ipv4_mapped_ipv6_matches_plain_ipv4() -> None:
    assert parse_login(body(ip="::ffff:1.2.3.4")).ip == parse_login(body(ip="1.2.3.4")).ip


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not an ip",
        "256.1.1.1",
        "998.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.4/32",
        "1.2.3.-4",
        "1.2.3.4:80",
        "[::1]",
        "2001:db8::1::2",
        "2001:db8:0:0:0:0:0:0:1",
        "gggg::1",
        "1.2.3.4%eth0",
        "1.2.3.4\x00",
        "1.2.3\x004",
        "1 .2.3.4",
        16909060,
        1.5,
        True,
        ["1.2.3.4"],
        {"v4": "1.2.3.4"},
    ],
)
def test_invalid_ip(value: object) -> None:
    assert rejection(body(ip=value)) is Reason.INVALID_IP


def test_lone_surrogate_ip_is_invalid() -> None:
    assert rejection('{"user_id": "u-1", "ip": "1.2.3.4\\ud800"}') is Reason.INVALID_IP


# IPv6 zone ids ("%eth0") are accepted by ipaddress with any text at all after the "%", and
# parse_login passes them through: the "canonical" ip then carries arbitrary, unbounded text,
# and a lone surrogate in it makes Masker.mask_ip raise UnicodeEncodeError (internal_error).
@pytest.mark.parametrize(
    "raw_ip", ["::1%\\ud800", "fe80::1%eth0", "::1%\\u0000", "::1%" + "x" * 1000]
)
def test_ipv6_zone_id_is_invalid(raw_ip: str) -> None:
    assert rejection('{"user_id": "u-1", "ip": "' + raw_ip + '"}') is Reason.INVALID_IP


# --- app_version (in a message) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("json_value", "encoded"),
    [
        ('"2.3.0"', 2003000),
        ('"0.96"', 96000),
        ('"2.00"', 2000000),
        ('"7"', 7000000),
        ("7", 7000000),
        ("0", 0),
        ("999", 999000000),
        ('"v2.3.0"', 2003000),
        ('"V2.3"', 2003000),
        ('" 2.3.0 "', 2003000),
        ("2.30", 2030000),
        ("2.3", 2003000),
        ("2.00", 2000000),
        ("0.96", 96000),
        ("2.03", 2003000),
        ("1.100", 1100000),
        ('"999.999.999"', 999999999),
        ("null", None),
    ],
)
def test_app_version_in_message(json_value: str, encoded: int | None) -> None:
    raw = '{"user_id": "u-1", "app_version": ' + json_value + "}"
    assert parse_login(raw).app_version == encoded


def test_json_float_keeps_its_literal_text() -> None:
    as_float_230 = parse_login('{"user_id": "u", "app_version": 2.30}').app_version
    as_float_23 = parse_login('{"user_id": "u", "app_version": 2.3}').app_version
    as_text_230 = parse_login('{"user_id": "u", "app_version": "2.30"}').app_version
    assert as_float_230 == as_text_230 == 2030000
    assert as_float_23 == 2003000


@pytest.mark.parametrize(
    "json_value",
    [
        '"2.3.0.1"',
        '"1.2.3.4"',
        '"beta"',
        '"2.3b"',
        '"2.x"',
        '"-1"',
        "-1",
        '"-2.3"',
        "-2.3",
        '""',
        '"  "',
        '"1000"',
        "1000",
        '"1.1000"',
        '"1.2.1000"',
        '"2."',
        '".3"',
        '"2..3"',
        '"v"',
        '"vv2"',
        '"2.3.0 rc1"',
        '"2 .3"',
        '"+2"',
        "2e3",
        "2.3e0",
        "1E2",
        "1e400",
        "-0.0",
        "true",
        "false",
        "[2, 3, 0]",
        '{"major": 2}',
        '"' + "1" * 33 + '"',
        '"2.3.0\\u0000"',
        '"\\ud800"',
    ],
)
def test_invalid_app_version_in_message(json_value: str) -> None:
    raw = '{"user_id": "u-1", "app_version": ' + json_value + "}"
    assert rejection(raw) is Reason.INVALID_APP_VERSION


def test_huge_integer_app_version_is_rejected() -> None:
    raw = '{"user_id": "u-1", "app_version": ' + "9" * 40 + "}"
    assert rejection(raw) is Reason.INVALID_APP_VERSION


# --- create_date -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-06", date(2024, 5, 6)),
        (" 2024-05-06 ", date(2024, 5, 6)),
        ("2024-02-29", date(2024, 2, 29)),
        ("0001-01-01", date(1, 1, 1)),
        ("9999-12-31", date(9999, 12, 31)),
        ("2024-05-06T10:20:30", date(2024, 5, 6)),
        ("2024-05-06 23:59:59", date(2024, 5, 6)),
        ("2024-05-06T23:59:59.999999", date(2024, 5, 6)),
        ("2024-05-06T00:00:00", date(2024, 5, 6)),
        ("2024-05-06T10:00:00+00:00", date(2024, 5, 6)),
        ("2024-05-06T10:00:00Z", date(2024, 5, 6)),
        ("2024-05-06T23:30:00-02:00", date(2024, 5, 7)),
        ("2024-05-06T22:00:00-02:00", date(2024, 5, 7)),
        ("2024-05-06T21:59:59-02:00", date(2024, 5, 6)),
        ("2024-05-06T01:00:00+02:00", date(2024, 5, 5)),
        ("2024-05-06T02:00:00+02:00", date(2024, 5, 6)),
        ("2024-01-01T00:30:00+01:00", date(2023, 12, 31)),
        ("2023-12-31T23:30:00-01:00", date(2024, 1, 1)),
        ("2024-03-01T05:00:00+05:30", date(2024, 2, 29)),
        ("2024-05-06T12:00:00+14:00", date(2024, 5, 5)),
        ("null", None),
    ],
)
def test_create_date(value: str, expected: date | None) -> None:
    raw = body(create_date=None if value == "null" else value)
    assert parse_login(raw).create_date == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
        "2024-1-1",
        "24-01-01",
        "06/05/2024",
        "2024/05/06",
        "May 6, 2024",
        "yesterday",
        "2024-05-06T25:00:00",
        "2024-05-06T10:61:00",
        "2024-05-06T10:00:00+25:00",
        "2024-05-06T24:00:00",
        "2024-05-06Tnoon",
        "2024-05-06\x00",
        "2024-05-06T10:00:00\x00x",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "2024-05-06" + " " * 60 + "x",
        "2024-05-06T10:00:00" + "0" * 60,
        1714953600,
        1714953600000,
        20240506,
        1.5,
        True,
        ["2024-05-06"],
        {"date": "2024-05-06"},
    ],
)
def test_invalid_create_date(value: object) -> None:
    assert rejection(body(create_date=value)) is Reason.INVALID_CREATE_DATE


# CPython 3.11's datetime.fromisoformat stops reading at a NUL that follows a complete time,
# so a create_date with a trailing NUL is accepted instead of rejected.
@pytest.mark.parametrize("value", [
        "2024-05-06T10:00:00\x00",
        "2024-05-06 10:00\x00",
        "2024-05-06T10:00:00+01:00\x00",
    ])
def test_create_date_with_trailing_nul_is_invalid(value: str) -> None:
    assert rejection(body(create_date=value)) is Reason.INVALID_CREATE_DATE


def test_lone_surrogate_create_date_is_invalid() -> None:
    raw = '{"user_id": "u-1", "create_date": "2024-05-06T10:00:00\\ud800"}'
    assert rejection(raw) is Reason.INVALID_CREATE_DATE


def test_over_long_create_date_is_rejected_even_if_mostly_whitespace() -> None:
    assert rejection(body(create_date=" " * 60 + "2024-05-06")) is Reason.INVALID_CREATE_DATE
    assert parse_login(body(create_date=" " * 54 + "2024-05-06")).create_date == date(2024, 5, 6)


# --- sent_date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1700000000000", date(2023, 11, 14)),
        ("0", date(1970, 1, 1)),
        ("86399999", date(1970, 1, 1)),
        ("86400000", date(1970, 1, 2)),
        ("1704067199999", date(2023, 12, 31)),
        ("1704067200000", date(2024, 1, 1)),
        ("1709164800000", date(2024, 2, 29)),
        ("4102444800000", date(2100, 1, 1)),
    ],
)
def test_sent_date(timestamp: str, expected: date) -> None:
    assert sent_date(timestamp) == expected


@pytest.mark.parametrize(
    "timestamp",
    [
        None,
        "",
        "   ",
        "garbage",
        "1700000000000ms",
        "1.7e12",
        "1700000000000.0",
        "0x18bcfe56800",
        "9" * 30,
        "-" + "9" * 30,
        "1" * 5000,
    ],
)
def test_invalid_sent_timestamp(timestamp: str | None) -> None:
    with pytest.raises(RecordRejected) as caught:
        sent_date(timestamp)
    assert caught.value.reason is Reason.INVALID_SENT_TIMESTAMP
