"""Encode an app version as one order-preserving integer: major*1e6 + minor*1e3 + patch."""

from __future__ import annotations

import re

_VERSION = re.compile(r"[vV]?([0-9]{1,3})(?:\.([0-9]{1,3}))?(?:\.([0-9]{1,3}))?")


def encode_app_version(text: str) -> int | None:
    """Return the encoded version, or None when `text` is not 1 to 3 dot-separated parts 0-999.

    "2.3.0" -> 2003000, "0.96" -> 96000, "v7" -> 7000000. Parts are read as numbers, so
    "2.03" and "2.3" encode alike; anything else (a fourth part, letters, signs) is refused.
    """
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major) * 1_000_000 + int(minor or 0) * 1_000 + int(patch or 0)
