"""Realistic login messages, with a share of malformed ones, from a seeded random source."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import NamedTuple

LOCALES = ["RU", "PH", "ID", "FR", "PT", "CN", "US", "BR", "DE", "IN", "NG", "MX", "JP", "TR"]

# Each malformed kind, as a producer might send it, with the reason the handler must give.
_MALFORMED: list[tuple[str, Callable[[random.Random], str]]] = [
    ("not_json", lambda rng: "login user=" + str(rng.randrange(10**6))),
    ("not_an_object", lambda rng: json.dumps(["login", rng.randrange(100)])),
    ("missing_user_id", lambda rng: json.dumps({"foo": "oops_wrong_msg_type", "bar": "123"})),
    ("invalid_ip", lambda rng: json.dumps({"user_id": str(uuid.UUID(int=rng.getrandbits(128))),
                                           "ip": f"{rng.randrange(256, 999)}.1.1.1"})),
    ("invalid_app_version", lambda rng: json.dumps(
        {"user_id": str(uuid.UUID(int=rng.getrandbits(128))), "app_version": "beta"})),
    ("invalid_user_id", lambda rng: json.dumps({"user_id": rng.randrange(10**6)})),
    ("duplicate_key", lambda rng: '{"user_id": "a", "user_id": "b"}'),
]


class GeneratedMessage(NamedTuple):
    body: str
    reason: str | None  # the reason code expected for a malformed message, None when valid


def generate(count: int, seed: int = 1, malformed_share: float = 0.02) -> list[GeneratedMessage]:
    """`count` messages; about `malformed_share` of them malformed, spread through the list.

    Devices and addresses repeat across users, as in real traffic, so that the masked
    columns have duplicates to find.
    """
    rng = random.Random(seed)
    devices = [_device_id(rng) for _ in range(max(1, count // 3))]
    addresses = [_ip(rng) for _ in range(max(1, count // 2))]
    messages = []
    for _ in range(count):
        if rng.random() < malformed_share:
            reason, make = rng.choice(_MALFORMED)
            messages.append(GeneratedMessage(make(rng), reason))
            continue
        login = {
            "user_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "app_version": _app_version(rng),
            "device_type": rng.choice(["android", "ios"]),
            "ip": rng.choice(addresses),
            "locale": rng.choice(LOCALES) if rng.random() < 0.7 else None,
            "device_id": rng.choice(devices),
        }
        messages.append(GeneratedMessage(json.dumps(login), None))
    return messages


def _device_id(rng: random.Random) -> str:
    return f"{rng.randrange(1000):03}-{rng.randrange(100):02}-{rng.randrange(10000):04}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return ":".join(f"{rng.randrange(65536):x}" for _ in range(8))
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _app_version(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return f"{rng.randrange(10)}.{rng.randrange(100):02}"
    return f"{rng.randrange(10)}.{rng.randrange(10)}.{rng.randrange(10)}"
