"""Parse, validate and normalise one SQS message body into a login event, or reject it."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import socket
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from login_ingest.app_version import encode_app_version

# Column widths of user_logins; varchar(n) counts characters, as len() does.
USER_ID_MAX = 128
DEVICE_TYPE_MAX = 32
LOCALE_MAX = 32
# Inputs that are only hashed have no column, but an unbounded one is not a login.
DEVICE_ID_MAX = 256

_EPOCH = date(1970, 1, 1)
# Dotted-quad IPv4 without leading zeros is already in canonical form; the regex decides
# it several times faster than ipaddress, which handles every other spelling.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
# IPv6 goes through the C library's parser and printer, which are over ten times faster
# than ipaddress and print the same RFC 5952 text, except where the first 96 bits are zero
# (inet_ntop then writes "::1.2.3.4"): those, and whatever inet_pton refuses, are left to
# ipaddress. tests/unit/test_properties.py holds the two to the same answers.
_IPV4_MAPPED = bytes(10) + b"\xff\xff"
_ZERO_96 = bytes(12)


class Reason(StrEnum):
    """Why a record was rejected; the only detail about a bad record that is ever logged."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    DUPLICATE_KEY = "duplicate_key"
    MISSING_USER_ID = "missing_user_id"
    INVALID_USER_ID = "invalid_user_id"
    INVALID_DEVICE_TYPE = "invalid_device_type"
    INVALID_LOCALE = "invalid_locale"
    INVALID_IP = "invalid_ip"
    INVALID_DEVICE_ID = "invalid_device_id"
    INVALID_APP_VERSION = "invalid_app_version"
    INVALID_CREATE_DATE = "invalid_create_date"
    INVALID_SENT_TIMESTAMP = "invalid_sent_timestamp"
    REJECTED_BY_DATABASE = "rejected_by_database"
    INTERNAL_ERROR = "internal_error"


class RecordRejected(Exception):
    """A record that can never be stored as it is. Its message says only the reason code."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


class LoginEvent(NamedTuple):
    """A validated login, normalised but not yet masked."""

    user_id: str
    device_type: str | None
    ip: str | None
    device_id: str | None
    locale: str | None
    app_version: int | None
    create_date: date | None


class _JsonFloat(float):
    """A JSON number with a fraction, keeping its literal text ("2.30" is not "2.3")."""

    __slots__ = ("text",)
    text: str


def _json_float(text: str) -> _JsonFloat:
    number = _JsonFloat(text)
    number.text = text
    return number


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


_decoder = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_float=_json_float, parse_constant=_refuse_constant
)
# Set by JSONDecoder.__init__ (the C scanner when there is one), undeclared in its stub.
_scan_value = _decoder.scan_once  # type: ignore[attr-defined]


def _decode_object(body: str) -> Any:
    """The JSON value in `body`, as `_decoder.decode` gives it.

    decode() wraps the C scanner in two whitespace matches and two Python-level calls, a
    third of its time on a login. A body that starts with "{" and ends where the object ends
    needs none of that; any other body gets decode's own verdict. So does a body cut off
    where a value should be: the scanner then raises StopIteration, which decode turns into
    its "Expecting value" error.
    """
    if body[:1] == "{":
        try:
            value, end = _scan_value(body, 0)
        except StopIteration:
            end = -1
        if end == len(body):
            return value
    return _decoder.decode(body)


def parse_login(body: str) -> LoginEvent:
    """Return the login in `body`, or raise RecordRejected with the first reason found.

    Missing and null fields become None; unknown fields are ignored; a field that is present
    but wrong is rejected, never altered beyond trimming surrounding whitespace.
    """
    try:
        obj = _decode_object(body)
    except _DuplicateKey:
        raise RecordRejected(Reason.DUPLICATE_KEY) from None
    except (ValueError, RecursionError):
        raise RecordRejected(Reason.NOT_JSON) from None
    if not isinstance(obj, dict):
        raise RecordRejected(Reason.NOT_AN_OBJECT)

    # Every record of a batch passes here: the optional fields are tested inline rather
    # than through a helper call each (see README, Performance).
    user_id = obj.get("user_id")
    if user_id is None:
        raise RecordRejected(Reason.MISSING_USER_ID)
    device_type = obj.get("device_type")
    ip = obj.get("ip")
    device_id = obj.get("device_id")
    locale = obj.get("locale")
    app_version = obj.get("app_version")
    create_date = obj.get("create_date")
    return LoginEvent(
        _text(user_id, USER_ID_MAX, Reason.INVALID_USER_ID),
        None if device_type is None
        else _text(device_type, DEVICE_TYPE_MAX, Reason.INVALID_DEVICE_TYPE),
        None if ip is None else _ip(ip),
        None if device_id is None else _text(device_id, DEVICE_ID_MAX, Reason.INVALID_DEVICE_ID),
        None if locale is None else _text(locale, LOCALE_MAX, Reason.INVALID_LOCALE),
        None if app_version is None else _app_version(app_version),
        None if create_date is None else _create_date(create_date),
    )


def _text(value: object, max_length: int, reason: Reason) -> str:
    """A non-empty string without NUL that Postgres can store, trimmed, within `max_length`."""
    if not isinstance(value, str):
        raise RecordRejected(reason)
    text = value.strip()
    if not text or len(text) > max_length or "\x00" in text or not (
            text.isascii() or _is_utf8(text)):
        raise RecordRejected(reason)
    return text


def _is_utf8(text: str) -> bool:
    # Lone surrogates ("\ud800" in JSON) decode into str but cannot be encoded for Postgres.
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _ip(value: object) -> str:
    """The canonical text of an IPv4 or IPv6 address; IPv4-mapped IPv6 becomes plain IPv4."""
    # A zone id ("fe80::1%eth0") names an interface of the sender's host, not an address,
    # and ipaddress would accept any text after the "%".
    if not isinstance(value, str) or "%" in value:
        raise RecordRejected(Reason.INVALID_IP)
    if _CANONICAL_IPV4.fullmatch(value):
        return value
    if ":" in value:
        try:
            packed = socket.inet_pton(socket.AF_INET6, value)
        except (OSError, ValueError):
            packed = None
        if packed is not None:
            prefix = packed[:12]
            if prefix == _IPV4_MAPPED:
                return socket.inet_ntop(socket.AF_INET, packed[12:])
            if prefix != _ZERO_96:
                return socket.inet_ntop(socket.AF_INET6, packed)
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise RecordRejected(Reason.INVALID_IP) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _app_version(value: object) -> int:
    if isinstance(value, str):
        text = value
    elif isinstance(value, _JsonFloat):
        text = value.text
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise RecordRejected(Reason.INVALID_APP_VERSION)
    encoded = _encoded_app_version(text) if len(text) <= 32 else None
    if encoded is None:
        raise RecordRejected(Reason.INVALID_APP_VERSION)
    return encoded


# A fleet runs a few hundred app versions at most: most batches encode each one once.
_encoded_app_version = functools.lru_cache(maxsize=4096)(encode_app_version)


def _create_date(value: object) -> date:
    """An ISO date, or an ISO datetime converted to its UTC date (no offset means UTC)."""
    # fromisoformat stops reading at a NUL after a complete time, so only ASCII printable
    # text is given to it.
    if not isinstance(value, str) or len(value) > 64 or not value.isascii():
        raise RecordRejected(Reason.INVALID_CREATE_DATE)
    text = value.strip()
    if not text.isprintable():
        raise RecordRejected(Reason.INVALID_CREATE_DATE)
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.date()
        return moment.astimezone(UTC).date()
    except (ValueError, OverflowError):
        raise RecordRejected(Reason.INVALID_CREATE_DATE) from None


def sent_date(sent_timestamp: str | None) -> date:
    """The UTC date of SQS's SentTimestamp attribute (milliseconds since the epoch)."""
    # ASCII digits only: str.isdigit() alone also takes other scripts' digits and "²".
    if not (isinstance(sent_timestamp, str) and sent_timestamp.isascii()
            and sent_timestamp.isdigit() and len(sent_timestamp) <= 15):
        raise RecordRejected(Reason.INVALID_SENT_TIMESTAMP)
    return _epoch_day(int(sent_timestamp) // 86_400_000)


@functools.lru_cache(maxsize=64)
def _epoch_day(days: int) -> date:
    # A batch's messages were mostly sent on the same day or two: compute each date once.
    try:
        return _EPOCH + timedelta(days=days)
    except OverflowError:
        raise RecordRejected(Reason.INVALID_SENT_TIMESTAMP) from None
