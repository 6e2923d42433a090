"""read_bodies (JSON array / JSON Lines, optionally gzipped) and the message generator."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from login_ingest.local.generator import LOCALES, GeneratedMessage, generate
from login_ingest.local.inputs import read_bodies
from login_ingest.parsing import Reason, RecordRejected, parse_login

LOGINS = [
    {"user_id": "u-1", "ip": "1.2.3.4", "app_version": "2.3.0"},
    {"user_id": "u-2", "locale": None, "device_id": "593-47-5928"},
    {"user_id": "u-3"},
]


def write(path: Path, text: str, *, gzipped: bool = False) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path


# --- read_bodies: JSON array -----------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_json_array_gives_one_body_per_element(tmp_path: Path, gzipped: bool) -> None:
    path = write(tmp_path / "logins.json", json.dumps(LOGINS, indent=2), gzipped=gzipped)
    bodies = read_bodies(path)
    assert len(bodies) == 3
    assert [json.loads(b) for b in bodies] == LOGINS


def test_json_array_elements_keep_their_text(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", "[" + ",\n".join(json.dumps(item, indent=4)
                                                       for item in LOGINS) + "]")
    assert read_bodies(path) == [json.dumps(item, indent=4) for item in LOGINS]


def test_json_array_with_leading_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", "\n\n   " + json.dumps(LOGINS) + "\n")
    assert [json.loads(b) for b in read_bodies(path)] == LOGINS


def test_empty_json_array_gives_no_bodies(tmp_path: Path) -> None:
    assert read_bodies(write(tmp_path / "a.json", "[]")) == []
    assert read_bodies(write(tmp_path / "b.json.gz", " [ ] ", gzipped=True)) == []


def test_json_array_keeps_malformed_elements_as_messages(tmp_path: Path) -> None:
    items = [["login", 5], "just text", 42, None, {"foo": "bar"}]
    bodies = read_bodies(write(tmp_path / "a.json", json.dumps(items)))
    assert bodies == ['["login", 5]', '"just text"', "42", "null", '{"foo": "bar"}']
    reasons = []
    for b in bodies:
        with pytest.raises(RecordRejected) as caught:
            parse_login(b)
        reasons.append(caught.value.reason)
    assert reasons == [Reason.NOT_AN_OBJECT] * 4 + [Reason.MISSING_USER_ID]


def test_json_array_of_non_ascii_text_round_trips(tmp_path: Path) -> None:
    items = [{"user_id": "ユーザー", "locale": "zh-\u4e2d\u6587"}]
    bodies = read_bodies(write(tmp_path / "a.json", json.dumps(items, ensure_ascii=False)))
    assert parse_login(bodies[0]).user_id == "ユーザー"
    assert parse_login(bodies[0]).locale == "zh-\u4e2d\u6587"


def test_json_array_bodies_parse_like_the_originals(tmp_path: Path) -> None:
    items = [{"user_id": " u-1 ", "ip": "2001:DB8::1", "create_date": "2024-05-06T23:30:00-02:00"}]
    bodies = read_bodies(write(tmp_path / "a.json", json.dumps(items)))
    assert parse_login(bodies[0]) == parse_login(json.dumps(items[0]))


# Re-serialising array elements with json.loads/json.dumps changes some messages: a float's
# literal text is lost (app_version 2.30 is sent as 2.3, so 2030000 becomes 2003000) and a
# duplicate key is collapsed (a duplicate_key message reaches the queue as a valid login).
@pytest.mark.parametrize(
    "element",
    ['{"user_id": "u-1", "app_version": 2.30}', '{"user_id": "a", "user_id": "b"}'],
    ids=["float-literal", "duplicate-key"],
)
def test_json_array_element_is_judged_as_written(tmp_path: Path, element: str) -> None:
    [sent] = read_bodies(write(tmp_path / "a.json", "[" + element + "]"))
    try:
        expected: object = parse_login(element)
    except RecordRejected as error:
        expected = error.reason
    try:
        got: object = parse_login(sent)
    except RecordRejected as error:
        got = error.reason
    assert got == expected


# --- read_bodies: JSON Lines -----------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_json_lines_give_one_body_per_line(tmp_path: Path, gzipped: bool) -> None:
    lines = [json.dumps(item) for item in LOGINS]
    path = write(tmp_path / "logins.jsonl", "\n".join(lines) + "\n", gzipped=gzipped)
    assert read_bodies(path) == lines


def test_json_lines_are_sent_exactly_as_written(tmp_path: Path) -> None:
    lines = [
        '{"user_id":"u-1" ,  "ip":"1.2.3.4"}',
        '  {"user_id": "u-2"}  ',
        '{"user_id": "a", "user_id": "b"}',
        '{"user_id": "u-3", "app_version": 2.30}',
    ]
    assert read_bodies(write(tmp_path / "a.jsonl", "\n".join(lines))) == lines


def test_json_lines_skip_blank_lines(tmp_path: Path) -> None:
    text = '\n{"user_id": "u-1"}\n\n   \n\t\n{"user_id": "u-2"}\n\n'
    assert read_bodies(write(tmp_path / "a.jsonl", text)) == [
        '{"user_id": "u-1"}',
        '{"user_id": "u-2"}',
    ]


def test_json_lines_with_crlf(tmp_path: Path) -> None:
    text = '{"user_id": "u-1"}\r\n{"user_id": "u-2"}\r\n'
    assert read_bodies(write(tmp_path / "a.jsonl", text)) == [
        '{"user_id": "u-1"}',
        '{"user_id": "u-2"}',
    ]


def test_json_lines_keep_malformed_lines(tmp_path: Path) -> None:
    lines = ["login user=12345", "{not json", '["login", 5]', "42"]
    bodies = read_bodies(write(tmp_path / "a.jsonl", "\n".join(lines) + "\n"))
    assert bodies == lines
    with pytest.raises(RecordRejected) as caught:
        parse_login(bodies[0])
    assert caught.value.reason is Reason.NOT_JSON


def test_json_lines_whose_first_line_is_an_array(tmp_path: Path) -> None:
    lines = ['["login", 5]', '{"user_id": "u-1"}', '["x"]']
    assert read_bodies(write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")) == lines


def test_single_object_file_is_one_body(tmp_path: Path) -> None:
    assert read_bodies(write(tmp_path / "a.json", '{"user_id": "u-1"}')) == ['{"user_id": "u-1"}']


def test_empty_file_gives_no_bodies(tmp_path: Path) -> None:
    assert read_bodies(write(tmp_path / "a.jsonl", "")) == []
    assert read_bodies(write(tmp_path / "b.jsonl", "\n  \n\n")) == []
    assert read_bodies(write(tmp_path / "c.jsonl.gz", "", gzipped=True)) == []


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    lines = [json.dumps(item) for item in LOGINS]
    gz = write(tmp_path / "no-suffix", "\n".join(lines), gzipped=True)
    plain = write(tmp_path / "looks.gz", "\n".join(lines))
    assert read_bodies(gz) == read_bodies(plain) == lines


def test_gzip_and_plain_give_the_same_bodies(tmp_path: Path) -> None:
    text = json.dumps(LOGINS)
    assert read_bodies(write(tmp_path / "a.json", text)) == read_bodies(
        write(tmp_path / "a.json.gz", text, gzipped=True)
    )


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"user_id": "\xff"}\n')
    with pytest.raises(UnicodeDecodeError):
        read_bodies(path)


# str.splitlines also breaks at U+2028, U+2029, U+0085 (and \x0b, \x0c, \x1c-\x1e), which
# JSON allows raw inside strings: one JSON Lines record is sent as two broken messages.
@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_json_lines_split_only_at_newlines(tmp_path: Path, separator: str) -> None:
    line = '{"user_id": "a' + separator + 'b"}'
    bodies = read_bodies(write(tmp_path / "a.jsonl", line + "\n"))
    assert bodies == [line]


# --- generator -------------------------------------------------------------------------------


def outcome(message: GeneratedMessage) -> str | None:
    try:
        parse_login(message.body)
    except RecordRejected as error:
        return error.reason.value
    return None


def test_generate_is_deterministic_per_seed() -> None:
    assert generate(500, seed=3) == generate(500, seed=3)
    assert generate(500, seed=3, malformed_share=0.5) == generate(
        500, seed=3, malformed_share=0.5
    )


def test_generate_differs_between_seeds() -> None:
    assert generate(100, seed=1) != generate(100, seed=2)
    assert {m.body for m in generate(100, seed=1)}.isdisjoint(
        m.body for m in generate(100, seed=2) if m.reason is None
    )


def test_default_seed_is_fixed() -> None:
    assert generate(50) == generate(50, seed=1)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10, 257])
def test_generate_returns_count_messages(count: int) -> None:
    messages = generate(count)
    assert len(messages) == count
    assert all(isinstance(m, GeneratedMessage) for m in messages)
    assert all(isinstance(m.body, str) for m in messages)


@pytest.mark.parametrize("seed", range(10))
def test_every_generated_message_parses_as_labelled(seed: int) -> None:
    messages = generate(1000, seed=seed, malformed_share=0.3)
    for message in messages:
        assert outcome(message) == message.reason, message


def test_every_malformed_kind_gives_its_reason() -> None:
    messages = generate(3000, seed=11, malformed_share=1.0)
    assert all(m.reason is not None for m in messages)
    kinds = Counter(m.reason for m in messages)
    assert set(kinds) == {
        "not_json",
        "not_an_object",
        "missing_user_id",
        "invalid_ip",
        "invalid_app_version",
        "invalid_user_id",
        "duplicate_key",
    }
    assert set(kinds) <= {reason.value for reason in Reason}
    for message in messages:
        assert outcome(message) == message.reason, message


def test_no_malformed_messages_when_share_is_zero() -> None:
    messages = generate(2000, seed=5, malformed_share=0.0)
    assert all(m.reason is None for m in messages)
    assert all(outcome(m) is None for m in messages)


def test_malformed_share_is_roughly_respected() -> None:
    messages = generate(20_000, seed=9, malformed_share=0.1)
    malformed = sum(m.reason is not None for m in messages)
    assert 1_600 < malformed < 2_400


def test_default_malformed_share_is_small_but_present() -> None:
    messages = generate(10_000, seed=4)
    malformed = sum(m.reason is not None for m in messages)
    assert 100 < malformed < 300


def test_valid_messages_have_realistic_fields() -> None:
    messages = [m for m in generate(3000, seed=2) if m.reason is None]
    events = [parse_login(m.body) for m in messages]
    for message, event in zip(messages, events, strict=True):
        fields = json.loads(message.body)
        assert set(fields) == {
            "user_id", "app_version", "device_type", "ip", "locale", "device_id"
        }
        assert event.user_id == fields["user_id"]
        assert len(event.user_id) == 36
        assert event.device_type in {"android", "ios"}
        assert event.locale is None or event.locale in LOCALES
        assert event.ip is not None
        assert event.device_id is not None
        assert event.app_version is not None
        assert 0 <= event.app_version < 10_000_000
        assert event.create_date is None
    assert any(e.locale is None for e in events)
    assert any(e.ip is not None and ":" in e.ip for e in events)
    assert any(e.ip is not None and "." in e.ip for e in events)


def test_devices_and_addresses_repeat_across_users() -> None:
    events = [parse_login(m.body) for m in generate(3000, seed=6) if m.reason is None]
    users = Counter(e.user_id for e in events)
    devices = Counter(e.device_id for e in events)
    addresses = Counter(e.ip for e in events)
    assert max(users.values()) == 1
    assert max(devices.values()) > 1
    assert max(addresses.values()) > 1
    assert len(devices) <= 1000
    assert len(addresses) <= 1500


def test_generated_messages_round_trip_through_json_lines(tmp_path: Path) -> None:
    messages = generate(500, seed=8, malformed_share=0.2)
    path = write(tmp_path / "gen.jsonl.gz", "\n".join(m.body for m in messages) + "\n",
                 gzipped=True)
    assert read_bodies(path) == [m.body for m in messages]
