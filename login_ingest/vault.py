"""Envelope encryption of the originals behind masked tokens: AES-GCM under data keys that
KMS (or, in development, a local key) wraps."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from login_ingest.config import ConfigError

if TYPE_CHECKING:
    from login_ingest.masking import Masker

# The first byte of every ciphertext: lets a later format be told apart from this one.
_FORMAT = b"\x01"
_NONCE_BYTES = 12
# Associated data: a ciphertext opens only under the token it was stored with, so vault
# rows cannot be swapped (token A's row moved to token B fails to decrypt).
_TOKEN_CONTEXT = b"login-ingest vault v1\x00"
_WRAP_CONTEXT = b"login-ingest data key v1"
# KMS binds the same context to every data key; Decrypt must present it again.
KMS_ENCRYPTION_CONTEXT = {"purpose": "login-ingest-pii-vault"}
_CIPHERS_KEPT = 64


class VaultKeyError(ConfigError):
    """A vault key is missing, malformed or refused; the message never quotes key material.

    A ConfigError: the function cannot store a batch until its keys are usable again.
    """


@dataclass(frozen=True)
class DataKey:
    """A data key: its plaintext (kept in memory only) and the form the vault stores."""

    data_key_id: str  # a fingerprint of the wrapped key: the vault's reference to it
    wrapping_key: str  # the KMS key ARN that wrapped it, or "local:<fingerprint>"
    wrapped: bytes
    plaintext: bytes = field(repr=False)


class DataKeys(Protocol):
    """Where data keys come from, and how a stored (wrapped) one is opened again."""

    def current(self) -> DataKey: ...

    def unwrap(self, wrapping_key: str, wrapped: bytes) -> bytes: ...


def _data_key(wrapping_key: str, wrapped: bytes, plaintext: bytes) -> DataKey:
    return DataKey(hashlib.sha256(wrapped).hexdigest()[:32], wrapping_key, wrapped, plaintext)


class LocalDataKeys:
    """Development stand-in for KMS: a 32-byte key from VAULT_LOCAL_KEY wraps the data keys.

    One data key per process; anyone holding the local key can open every vault row.
    """

    def __init__(self, encoded_key: str) -> None:
        key = _decode_local_key(encoded_key)
        self.name = "local:" + hashlib.sha256(b"login-ingest vault key\x00" + key).hexdigest()[:8]
        self._wrapper = AESGCM(key)
        self._current: DataKey | None = None

    def current(self) -> DataKey:
        if self._current is None:
            plaintext = AESGCM.generate_key(bit_length=256)
            nonce = os.urandom(_NONCE_BYTES)
            wrapped = nonce + self._wrapper.encrypt(nonce, plaintext, _WRAP_CONTEXT)
            self._current = _data_key(self.name, wrapped, plaintext)
        return self._current

    def unwrap(self, wrapping_key: str, wrapped: bytes) -> bytes:
        if wrapping_key != self.name:
            raise VaultKeyError(f"data key was wrapped by {wrapping_key}, not by {self.name}")
        try:
            return self._wrapper.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:],
                                         _WRAP_CONTEXT)
        except InvalidTag:
            raise VaultKeyError("data key does not open under the local vault key") from None


def _decode_local_key(encoded_key: str) -> bytes:
    text = encoded_key.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(
            text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise VaultKeyError("VAULT_LOCAL_KEY must be 32 bytes, as 64 hex digits or base64")
    return key


def new_local_key() -> str:
    """A fresh VAULT_LOCAL_KEY value (base64url of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class KmsDataKeys:
    """Data keys from KMS GenerateDataKey, one per `max_age` seconds per Lambda instance, so
    KMS is called once in a while and not per record. Opening needs KMS Decrypt."""

    def __init__(self, kms_key_id: str, max_age: int = 300, client: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kms_key_id = kms_key_id
        self._max_age = max_age
        self._client = client
        self._clock = clock
        self._current: DataKey | None = None
        self._fetched_at = 0.0

    def current(self) -> DataKey:
        now = self._clock()
        if self._current is None or now - self._fetched_at >= self._max_age:
            answer = self._call("generate_data_key", KeyId=self._kms_key_id,
                                KeySpec="AES_256", EncryptionContext=KMS_ENCRYPTION_CONTEXT)
            self._current = _data_key(answer["KeyId"], answer["CiphertextBlob"],
                                      answer["Plaintext"])
            self._fetched_at = now
        return self._current

    def unwrap(self, wrapping_key: str, wrapped: bytes) -> bytes:
        answer = self._call("decrypt", CiphertextBlob=wrapped, KeyId=wrapping_key,
                            EncryptionContext=KMS_ENCRYPTION_CONTEXT)
        plaintext: bytes = answer["Plaintext"]
        return plaintext

    def _call(self, operation: str, **arguments: Any) -> Any:
        # Imported here: only the vault's AWS path needs boto3.
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = boto3.client("kms")
        try:
            return getattr(self._client, operation)(**arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "unknown")
            raise VaultKeyError(f"KMS refused {operation}: {code}") from None
        except BotoCoreError as error:
            reason = type(error).__name__
            raise VaultKeyError(f"KMS unreachable for {operation}: {reason}") from None


@dataclass(frozen=True)
class SealedOriginals:
    """One batch's originals, encrypted under one data key, by token."""

    data_key: DataKey
    ciphertexts: dict[str, bytes]

    def for_tokens(self, tokens: list[str | None]) -> tuple[list[str], list[bytes]]:
        """The (token, ciphertext) columns for those of `tokens` that are sealed here."""
        chosen = {token: self.ciphertexts[token] for token in tokens
                  if token is not None and token in self.ciphertexts}
        return list(chosen), list(chosen.values())


class Vault:
    """Seals originals for the store and opens them again for recovery."""

    def __init__(self, data_keys: DataKeys) -> None:
        self.data_keys = data_keys
        self._ciphers: dict[str, AESGCM] = {}

    def seal(self, originals: Mapping[str, str]) -> SealedOriginals:
        """Encrypt each original, bound to its token, under the current data key."""
        data_key = self.data_keys.current()
        cipher = self._cipher(data_key.data_key_id, data_key.plaintext)
        ciphertexts = {}
        for token, original in originals.items():
            nonce = os.urandom(_NONCE_BYTES)
            ciphertexts[token] = _FORMAT + nonce + cipher.encrypt(
                nonce, original.encode(), _TOKEN_CONTEXT + token.encode())
        return SealedOriginals(data_key, ciphertexts)

    def open(self, token: str, ciphertext: bytes, data_key_id: str, wrapping_key: str,
             wrapped: bytes) -> str:
        """The original behind `token`. Needs the key that wrapped the data key (KMS Decrypt,
        or the local key); raises VaultKeyError if anything does not match."""
        if data_key_id not in self._ciphers:
            plaintext = self.data_keys.unwrap(wrapping_key, wrapped)
            self._cipher(data_key_id, plaintext)
        if ciphertext[:1] != _FORMAT:
            raise VaultKeyError("vault row has an unknown format")
        nonce = ciphertext[1:1 + _NONCE_BYTES]
        try:
            original = self._ciphers[data_key_id].decrypt(
                nonce, ciphertext[1 + _NONCE_BYTES:], _TOKEN_CONTEXT + token.encode())
        except InvalidTag:
            raise VaultKeyError("vault row does not open for this token") from None
        return original.decode()

    def recorder(self, masker: Masker) -> RecordingMasker:
        return RecordingMasker(masker)

    def _cipher(self, data_key_id: str, plaintext: bytes) -> AESGCM:
        cipher = self._ciphers.get(data_key_id)
        if cipher is None:
            if len(self._ciphers) >= _CIPHERS_KEPT:
                self._ciphers.clear()  # a long-lived instance sees a new data key every max_age
            cipher = self._ciphers[data_key_id] = AESGCM(plaintext)
        return cipher


class RecordingMasker:
    """A Masker that also remembers, for one batch, which original each token stands for."""

    __slots__ = ("_masker", "key_id", "originals")

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self.key_id = masker.key_id
        self.originals: dict[str, str] = {}

    def mask_ip(self, canonical_ip: str) -> str:
        token = self._masker.mask_ip(canonical_ip)
        self.originals[token] = canonical_ip
        return token

    def mask_device_id(self, device_id: str) -> str:
        token = self._masker.mask_device_id(device_id)
        self.originals[token] = device_id
        return token
