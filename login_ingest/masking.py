"""Keyed, deterministic masking of personal values (HMAC-SHA256), tagged with the key's id."""

from __future__ import annotations

import binascii
import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash as _Sha256

MIN_KEY_LENGTH = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256_BLOCK = 64
_BASE64URL = bytes.maketrans(b"+/", b"-_")


class MaskingKeyError(ValueError):
    """The masking key or its id is unusable."""


def derive_key_id(key: bytes) -> str:
    """A short public fingerprint of `key`, used when the key's owner gives it no id."""
    return "k" + hashlib.sha256(b"login-ingest key id\x00" + key).hexdigest()[:8]


class Masker:
    """Turns a normalised value into `<key id>:<43 base64url characters>`.

    Equal inputs give equal tokens under one key, so duplicates stay findable; without the
    key nobody can test guesses, so the 2**32 IPv4 addresses cannot be enumerated. Each field
    kind is hashed under its own label, so an ip token never matches a device_id token.
    """

    def __init__(self, key: bytes, key_id: str | None = None) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise MaskingKeyError(f"masking key must be at least {MIN_KEY_LENGTH} bytes")
        if key_id is None:
            key_id = derive_key_id(key)
        if not _KEY_ID.fullmatch(key_id):
            raise MaskingKeyError("masking key id must be 1-64 characters of [A-Za-z0-9_-]")
        self.key_id = key_id
        self._prefix = f"{key_id}:"
        self._ip = _keyed_states(key, b"ip\x00")
        self._device_id = _keyed_states(key, b"device_id\x00")

    def mask_ip(self, canonical_ip: str) -> str:
        return self._token(self._ip, canonical_ip)

    def mask_device_id(self, device_id: str) -> str:
        return self._token(self._device_id, device_id)

    def _token(self, states: tuple[_Sha256, _Sha256], value: str) -> str:
        # HMAC-SHA256(key, label || value) from the two kept states: see _keyed_states.
        inner, outer = states[0].copy(), states[1].copy()
        inner.update(value.encode())
        outer.update(inner.digest())
        # 32 bytes are 43 base64 characters and one "=" of padding, dropped.
        encoded = binascii.b2a_base64(outer.digest(), newline=False)
        return self._prefix + encoded.translate(_BASE64URL)[:43].decode()


def _keyed_states(key: bytes, label: bytes) -> tuple[_Sha256, _Sha256]:
    """SHA-256 states after HMAC's inner pad plus `label`, and after its outer pad.

    RFC 2104 (section 4) lets an implementation keep these: each value then costs two state
    copies, where hmac.new re-derives the pads and hmac.HMAC.copy builds Python objects; that
    measured about twice as slow per value (see README, Performance). The result is
    byte for byte the standard HMAC, which tests/unit/test_masking.py checks for keys of
    every length.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\x00")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key) + label)
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
    return inner, outer
