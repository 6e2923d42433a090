"""Hostile message bodies, each with the outcome the function must give it.

An outcome is a reason code (the record fails with it) or a dict of the columns the stored
row must hold (None meaning SQL NULL). Columns not named are not checked; masked columns
are checked against the test key by the test itself.
"""

from __future__ import annotations

import json
from typing import Any

U = "8b1c2d3e-4f50-4a6b-9c7d-8e9f0a1b2c3d"


def login(**fields: Any) -> str:
    return json.dumps({"user_id": U, **fields})


CORPUS: list[tuple[str, str, str | dict[str, Any]]] = [
    # --- not a login at all ---
    ("empty-looking", " ", "not_json"),
    ("plain text", "hello", "not_json"),
    ("truncated object", '{"user_id": "u"', "not_json"),
    ("trailing garbage", '{"user_id": "u"} x', "not_json"),
    ("NaN", '{"user_id": "u", "app_version": NaN}', "not_json"),
    ("Infinity", '{"user_id": "u", "x": -Infinity}', "not_json"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "not_json"),
    ("deep object nesting", '{"a":' * 50_000 + "1" + "}" * 50_000, "not_json"),
    ("huge integer", '{"user_id": "u", "x": ' + "9" * 5000 + "}", "not_json"),
    ("single quotes", "{'user_id': 'u'}", "not_json"),
    ("array", '[{"user_id": "u"}]', "not_an_object"),
    ("string", '"user_id"', "not_an_object"),
    ("number", "42", "not_an_object"),
    ("null", "null", "not_an_object"),
    ("duplicate user_id", '{"user_id": "a", "user_id": "b"}', "duplicate_key"),
    ("duplicate nested", '{"user_id": "a", "x": {"k": 1, "k": 2}}', "duplicate_key"),
    # --- user_id ---
    ("no user_id", json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"}), "missing_user_id"),
    ("null user_id", '{"user_id": null}', "missing_user_id"),
    ("empty user_id", '{"user_id": ""}', "invalid_user_id"),
    ("blank user_id", '{"user_id": "   "}', "invalid_user_id"),
    ("numeric user_id", '{"user_id": 123}', "invalid_user_id"),
    ("object user_id", '{"user_id": {"id": "u"}}', "invalid_user_id"),
    ("long user_id", json.dumps({"user_id": "u" * 129}), "invalid_user_id"),
    ("NUL in user_id", '{"user_id": "a\\u0000b"}', "invalid_user_id"),
    ("lone surrogate user_id", '{"user_id": "a\\ud800"}', "invalid_user_id"),
    ("128-char user_id", json.dumps({"user_id": "é" * 128}), {"user_id": "é" * 128}),
    ("emoji user_id", json.dumps({"user_id": "👩‍💻-user"}), {"user_id": "👩‍💻-user"}),
    ("RTL user_id", json.dumps({"user_id": "\u202euser"}), {"user_id": "\u202euser"}),
    # --- device_type, locale ---
    ("long device_type", login(device_type="x" * 33), "invalid_device_type"),
    ("list device_type", login(device_type=["ios"]), "invalid_device_type"),
    ("bool locale", login(locale=True), "invalid_locale"),
    ("empty locale", login(locale=""), "invalid_locale"),
    ("32-char locale", login(locale="L" * 32), {"locale": "L" * 32}),
    ("padded device_type", login(device_type="  ios \t"), {"device_type": "ios"}),
    # --- ip ---
    ("ip out of range", login(ip="256.1.1.1"), "invalid_ip"),
    ("ip leading zeros", login(ip="01.2.3.4"), "invalid_ip"),
    ("ip with port", login(ip="1.2.3.4:80"), "invalid_ip"),
    ("ip as number", login(ip=16909060), "invalid_ip"),
    ("ip cidr", login(ip="10.0.0.0/8"), "invalid_ip"),
    ("ipv6 zone id", login(ip="fe80::1%eth0"), "invalid_ip"),
    ("ipv6 too many groups", login(ip="1:2:3:4:5:6:7:8:9"), "invalid_ip"),
    ("empty ip", login(ip=""), "invalid_ip"),
    ("null ip", login(ip=None), {"masked_ip": None}),
    ("ipv6 upper case", login(ip=" 2001:DB8:0:0:0:0:0:1 ", device_id=" 593-47-5928\t"),
     {"user_id": U}),
    ("ipv4-mapped ipv6", login(ip="::FFFF:198.51.100.7"), {"user_id": U}),
    # --- device_id ---
    ("numeric device_id", login(device_id=5934759), "invalid_device_id"),
    ("long device_id", login(device_id="d" * 257), "invalid_device_id"),
    ("NUL device_id", '{"user_id": "u", "device_id": "\\u0000"}', "invalid_device_id"),
    # --- app_version ---
    ("four parts", login(app_version="1.2.3.4"), "invalid_app_version"),
    ("letters", login(app_version="2.3.0-beta"), "invalid_app_version"),
    ("part over 999", login(app_version="1.1000"), "invalid_app_version"),
    ("negative", login(app_version=-1), "invalid_app_version"),
    ("bool version", login(app_version=True), "invalid_app_version"),
    ("exponent", '{"user_id": "u", "app_version": 1e3}', "invalid_app_version"),
    ("arabic digits", login(app_version="٢.٣"), "invalid_app_version"),
    ("empty version", login(app_version=""), "invalid_app_version"),
    ("v prefix", login(app_version="v2.3.0"), {"app_version": 2003000}),
    ("number version", '{"user_id": "u", "app_version": 7}', {"app_version": 7000000}),
    ("float keeps text", '{"user_id": "u", "app_version": 2.30}', {"app_version": 2030000}),
    ("max version", login(app_version="999.999.999"), {"app_version": 999999999}),
    # --- create_date ---
    ("impossible date", login(create_date="2024-02-30"), "invalid_create_date"),
    ("year 0", login(create_date="0000-01-01"), "invalid_create_date"),
    ("epoch number", login(create_date=1700000000), "invalid_create_date"),
    ("UTC underflow", login(create_date="0001-01-01T00:00:00+01:00"), "invalid_create_date"),
    ("NUL after time", '{"user_id":"u","create_date":"2024-05-06T10:00:00\\u0000"}',
     "invalid_create_date"),
    ("far future", login(create_date="9999-12-31"), {"create_date": "9999-12-31"}),
    ("offset crosses midnight", login(create_date="2024-03-01T01:00:00+05:00"),
     {"create_date": "2024-02-29"}),
    # --- extra fields are ignored, not stored ---
    ("unknown fields", login(ssn="123-45-6789", nested={"ip": "1.2.3.4"}),
     {"user_id": U, "masked_ip": None}),
]
