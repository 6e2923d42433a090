"""The masking keys a secret holds: which one masks new values, and which one made a token."""

from __future__ import annotations

import json
from dataclasses import dataclass

from login_ingest.masking import Masker, MaskingKeyError


@dataclass(frozen=True)
class Keyring:
    """Every known masking key by id; `current` masks new values, the others only explain
    (and let `retokenize` replace) tokens made before a rotation."""

    current: Masker
    maskers: dict[str, Masker]

    def masker_for(self, token: str) -> Masker | None:
        """The masker whose key made `token` (`<key id>:<hmac>`), if that key is known."""
        key_id, colon, _ = token.partition(":")
        return self.maskers.get(key_id) if colon else None

    def is_current(self, token: str) -> bool:
        return token.startswith(self.current.key_id + ":")


def parse_keyring(raw: str, default_key_id: str | None = None) -> Keyring:
    """Read the masking secret (or MASKING_KEY) in any of its three forms.

    - the key itself, as plain text: its id is `default_key_id` or its fingerprint;
    - JSON `{"key": ..., "key_id": ...}`: one key, `key_id` optional;
    - JSON `{"current": "k2", "keys": {"k1": ..., "k2": ...}}`: several keys by id.

    Text starting with "{" must be a JSON object: a typo in a rotated secret must fail
    loudly, not become a key of its own. Raises MaskingKeyError, which never quotes a key.
    """
    document = _json_object(raw)
    if document is None:
        return _single(raw, default_key_id)
    if "keys" in document:
        return _rotating(document)
    key = document.get("key")
    key_id = document.get("key_id", default_key_id)
    if not isinstance(key, str) or not (key_id is None or isinstance(key_id, str)):
        raise MaskingKeyError("masking secret JSON needs a 'key' string (or 'keys' and "
                              "'current'), and 'key_id' must be a string")
    return _single(key, key_id)


def _single(key: str, key_id: str | None) -> Keyring:
    masker = Masker(key.encode(), key_id)
    return Keyring(masker, {masker.key_id: masker})


def _rotating(document: dict[str, object]) -> Keyring:
    keys, current = document["keys"], document.get("current")
    if not isinstance(keys, dict) or not keys:
        raise MaskingKeyError("masking secret 'keys' must map key ids to keys")
    if not isinstance(current, str) or current not in keys:
        raise MaskingKeyError("masking secret 'current' must name one of its 'keys'")
    maskers: dict[str, Masker] = {}
    for key_id, key in keys.items():
        if not isinstance(key, str):
            raise MaskingKeyError("every masking key must be a string")
        maskers[key_id] = Masker(key.encode(), key_id)
    return Keyring(maskers[current], maskers)


def _json_object(raw: str) -> dict[str, object] | None:
    if not raw.lstrip().startswith("{"):
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        raise MaskingKeyError("masking secret starts with '{' but is not valid JSON") from None
    if not isinstance(document, dict):
        raise MaskingKeyError("masking secret JSON must be an object")
    return document
