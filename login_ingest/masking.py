"""Keyed, deterministic masking of personal values (HMAC-SHA256), tagged with the key's id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

MIN_KEY_LENGTH = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
        self._ip = hmac.new(key, b"ip\x00", hashlib.sha256)
        self._device_id = hmac.new(key, b"device_id\x00", hashlib.sha256)

    def mask_ip(self, canonical_ip: str) -> str:
        return self._token(self._ip, canonical_ip)

    def mask_device_id(self, device_id: str) -> str:
        return self._token(self._device_id, device_id)

    def _token(self, keyed: hmac.HMAC, value: str) -> str:
        # Copying the pre-keyed state skips re-hashing the key and label for every value.
        digest = keyed.copy()
        digest.update(value.encode())
        encoded = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
        return f"{self.key_id}:{encoded}"
