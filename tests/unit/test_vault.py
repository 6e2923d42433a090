"""Envelope encryption with the local key: sealed originals open only for their own token,
under the key that wrapped their data key."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_ingest.masking import Masker
from login_ingest.vault import LocalDataKeys, Vault, VaultKeyError, new_local_key

TOKEN_A, TOKEN_B = "k1:" + "A" * 43, "k1:" + "B" * 43


def open_sealed(vault: Vault, token: str, ciphertext: bytes, for_token: str | None = None) -> str:
    key = vault.data_keys.current()
    return vault.open(for_token or token, ciphertext, key.data_key_id, key.wrapping_key,
                      key.wrapped)


def test_seal_then_open_round_trips() -> None:
    vault = Vault(LocalDataKeys(new_local_key()))
    sealed = vault.seal({TOKEN_A: "192.0.2.1", TOKEN_B: "device-é-1"})

    assert open_sealed(vault, TOKEN_A, sealed.ciphertexts[TOKEN_A]) == "192.0.2.1"
    assert open_sealed(vault, TOKEN_B, sealed.ciphertexts[TOKEN_B]) == "device-é-1"
    assert b"192.0.2.1" not in sealed.ciphertexts[TOKEN_A]
    # A fresh nonce each time: the same original never gives the same ciphertext.
    assert vault.seal({TOKEN_A: "192.0.2.1"}).ciphertexts[TOKEN_A] != sealed.ciphertexts[TOKEN_A]


def test_a_row_moved_to_another_token_does_not_open() -> None:
    vault = Vault(LocalDataKeys(new_local_key()))
    sealed = vault.seal({TOKEN_A: "192.0.2.1"})
    with pytest.raises(VaultKeyError, match="does not open for this token"):
        open_sealed(vault, TOKEN_A, sealed.ciphertexts[TOKEN_A], for_token=TOKEN_B)


def test_tampered_ciphertext_does_not_open() -> None:
    vault = Vault(LocalDataKeys(new_local_key()))
    ciphertext = bytearray(vault.seal({TOKEN_A: "192.0.2.1"}).ciphertexts[TOKEN_A])
    ciphertext[-1] ^= 1
    with pytest.raises(VaultKeyError):
        open_sealed(vault, TOKEN_A, bytes(ciphertext))


def test_another_local_key_cannot_unwrap_the_data_key() -> None:
    writer = Vault(LocalDataKeys(new_local_key()))
    sealed = writer.seal({TOKEN_A: "192.0.2.1"})
    key = sealed.data_key
    # Another key of the same name (a forged row) and a key of another name both fail.
    stranger = LocalDataKeys(new_local_key())
    with pytest.raises(VaultKeyError, match="does not open under"):
        stranger.unwrap(stranger.name, key.wrapped)
    with pytest.raises(VaultKeyError, match="wrapped by"):
        Vault(stranger).open(TOKEN_A, sealed.ciphertexts[TOKEN_A], key.data_key_id,
                             key.wrapping_key, key.wrapped)


def test_the_stored_data_key_is_wrapped_not_plain() -> None:
    key = LocalDataKeys(new_local_key()).current()
    assert len(key.plaintext) == 32
    assert key.plaintext not in key.wrapped
    assert "plaintext" not in repr(key)
    assert key.wrapping_key.startswith("local:")


@pytest.mark.parametrize("encoded", ["ab" * 32, base64.b64encode(b"k" * 32).decode(),
                                     base64.urlsafe_b64encode(b"\xff" * 32).decode().rstrip("=")])
def test_local_key_accepts_hex_and_base64(encoded: str) -> None:
    assert LocalDataKeys(encoded).name.startswith("local:")


@pytest.mark.parametrize("encoded", ["", "too-short", "ab" * 31, "zz" * 32,
                                     base64.b64encode(b"k" * 31).decode()])
def test_local_key_must_be_32_bytes(encoded: str) -> None:
    with pytest.raises(VaultKeyError, match="32 bytes") as caught:
        LocalDataKeys(encoded)
    assert encoded not in str(caught.value) or not encoded


def test_recording_masker_masks_alike_and_remembers_originals() -> None:
    masker = Masker(b"m" * 32, "k1")
    recorder = Vault(LocalDataKeys(new_local_key())).recorder(masker)

    assert recorder.mask_ip("192.0.2.1") == masker.mask_ip("192.0.2.1")
    assert recorder.mask_device_id("d-1") == masker.mask_device_id("d-1")
    assert recorder.key_id == "k1"
    assert recorder.originals == {masker.mask_ip("192.0.2.1"): "192.0.2.1",
                                  masker.mask_device_id("d-1"): "d-1"}


VAULT = Vault(LocalDataKeys(new_local_key()))


@given(original=st.text(min_size=1, max_size=300), token=st.text(min_size=1, max_size=256))
def test_every_original_round_trips_under_its_token(original: str, token: str) -> None:
    original = original.encode("utf-8", "replace").decode()  # what the parser lets through
    token = token.encode("utf-8", "replace").decode()
    sealed = VAULT.seal({token: original})
    key = sealed.data_key
    assert VAULT.open(token, sealed.ciphertexts[token], key.data_key_id, key.wrapping_key,
                      key.wrapped) == original
