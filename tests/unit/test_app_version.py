"""encode_app_version: major*1e6 + minor*1e3 + patch, each part 0-999, or None."""

from __future__ import annotations

import random

import pytest

from login_ingest.app_version import encode_app_version


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("2.3.0", 2003000),
        ("0.96", 96000),
        ("2.00", 2000000),
        ("2.30", 2030000),
        ("2.3", 2003000),
        ("2.03", 2003000),
        ("7", 7000000),
        ("0", 0),
        ("0.0.0", 0),
        ("0.0.1", 1),
        ("0.1", 1000),
        ("1.2.3", 1002003),
        ("10.20.30", 10020030),
        ("999", 999000000),
        ("999.999.999", 999999999),
        ("007.008.009", 7008009),
        ("v2.3.0", 2003000),
        ("V2.3.0", 2003000),
        ("v7", 7000000),
        ("v0.96", 96000),
        (" 2.3.0 ", 2003000),
        ("\t2.3.0\n", 2003000),
        (" v2.3 ", 2003000),
    ],
)
def test_encode(text: str, encoded: int) -> None:
    assert encode_app_version(text) == encoded


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "v",
        "V",
        "vv2",
        "v 2",
        "version2",
        "2.3.0.1",
        "1.2.3.4",
        "0.0.0.0",
        "beta",
        "2.3b",
        "2.3.0-rc1",
        "2.3.0+build",
        "2.x",
        "x.2",
        "a",
        "1a",
        "-1",
        "-2.3",
        "2.-3",
        "+2",
        "1000",
        "1000.0",
        "1.1000",
        "1.2.1000",
        "0001",
        "2.",
        ".3",
        "2..3",
        "2.3.",
        "2 .3",
        "2. 3",
        "2,3",
        "2_3",
        "1e3",
        "2.3.0\x00",
        "\x002.3.0",
        "2.3\n.0",
        "\ud800",
        "2.3\ud800",
    ],
)
def test_rejected(text: str) -> None:
    assert encode_app_version(text) is None


def test_encoding_preserves_version_order() -> None:
    rng = random.Random(7)
    versions = [tuple(rng.randrange(1000) for _ in range(3)) for _ in range(2000)]
    versions += [(0, 0, 0), (999, 999, 999), (1, 0, 0), (0, 999, 999), (0, 0, 999)]
    for version in versions:
        encoded = encode_app_version(".".join(map(str, version)))
        assert encoded == version[0] * 1_000_000 + version[1] * 1_000 + version[2]
    ordered = sorted(versions)
    codes = [encode_app_version(".".join(map(str, version))) for version in ordered]
    assert codes == sorted(codes)  # type: ignore[type-var]


def test_missing_parts_count_as_zero() -> None:
    assert encode_app_version("5") == encode_app_version("5.0") == encode_app_version("5.0.0")
    assert encode_app_version("5.1") == encode_app_version("5.1.0")


def test_result_is_a_plain_int() -> None:
    encoded = encode_app_version("2.3.0")
    assert type(encoded) is int

