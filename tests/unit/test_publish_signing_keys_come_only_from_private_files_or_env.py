"""Signing keys load from a 0600 file or an environment variable, and never show up in messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey

from chainmonitor.errors import SigningKeyError
from chainmonitor.keys import load_key_env, load_key_file, load_signing_key, operator_of

KEY = PrivateKey(bytes(range(1, 33)))
KEY_HEX = KEY.private_key_hex
MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
    "abandon art"
)


def write(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "key"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_private_hex_file_is_accepted(tmp_path: Path) -> None:
    key = load_key_file(write(tmp_path, KEY_HEX + "\n", 0o600))
    assert key.account() == str(LocalWallet(KEY, prefix="cosmos").address())
    assert key.source.startswith("key file ")
    assert KEY_HEX not in repr(key)
    assert operator_of(key).startswith("cosmosvaloper1")
    assert key.controls(operator_of(key))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path, KEY_HEX, mode)
    with pytest.raises(SigningKeyError) as e:
        load_key_file(path)
    assert f"{mode:04o}" in str(e.value)
    assert "chmod 600" in str(e.value)
    assert KEY_HEX not in str(e.value)


def test_stricter_modes_and_mnemonics_are_accepted(tmp_path: Path) -> None:
    assert load_key_file(write(tmp_path, KEY_HEX, 0o400)).account()
    key = load_key_file(write(tmp_path, MNEMONIC, 0o600))
    assert key.account() == str(LocalWallet.from_mnemonic(MNEMONIC, prefix="cosmos").address())


def test_symlinks_and_missing_files_are_refused(tmp_path: Path) -> None:
    target = write(tmp_path, KEY_HEX, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(SigningKeyError):
        load_key_file(link)
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_key_file(tmp_path / "nope")


@pytest.mark.parametrize(
    "text",
    [KEY_HEX[:-2], KEY_HEX + "00", "zz" * 32, "0" * 64, "abandon " * 12, "f" * 64],
)
def test_malformed_keys_are_refused_without_quoting_them(tmp_path: Path, text: str) -> None:
    with pytest.raises(SigningKeyError) as e:
        load_key_file(write(tmp_path, text, 0o600))
    assert text.strip() not in str(e.value)
    assert e.value.__cause__ is None or text not in str(e.value.__cause__)


def test_environment_variable() -> None:
    key = load_key_env("SIGNER", {"SIGNER": KEY_HEX})
    assert key.source == "environment variable SIGNER"
    with pytest.raises(SigningKeyError, match="is not set"):
        load_key_env("SIGNER", {})


def test_exactly_one_source(tmp_path: Path) -> None:
    path = write(tmp_path, KEY_HEX, 0o600)
    with pytest.raises(SigningKeyError):
        load_signing_key()
    with pytest.raises(SigningKeyError):
        load_signing_key(file=path, env="X")
    assert (
        load_signing_key(env="X", environ={"X": KEY_HEX}).account()
        == load_signing_key(file=path).account()
    )
