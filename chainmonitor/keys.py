"""Signing keys for endpoint publication, loaded only from a private file or the environment.

A key on a command line is visible to every user of the host (`ps`, shell
history), and a key in a log outlives the process, so keys come from a file
that only its owner can read (mode 0600 or stricter) or from an environment
variable, and no message, repr or exception here ever contains key material.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.mnemonic.words import ENGLISH_MNEMONIC_WORDS_LIST

from chainmonitor.addresses import AccountAddress, bech32_decode, bech32_encode
from chainmonitor.errors import SigningKeyError

# BIP-39 mnemonics have 12 to 24 words in steps of 3.
_MNEMONIC_WORDS: Final = frozenset({12, 15, 18, 21, 24})
# More than a key file can reasonably hold; protects against pointing at a big file.
_MAX_KEY_FILE_BYTES: Final = 4096


@dataclass(frozen=True)
class SigningKey:
    """A secp256k1 account key. `source` says where it came from (a path or variable name)."""

    source: str
    _private: PrivateKey = field(repr=False, compare=False)

    def wallet(self, prefix: str = "cosmos") -> LocalWallet:
        return LocalWallet(self._private, prefix=prefix)

    def account(self, prefix: str = "cosmos") -> AccountAddress:
        """The key's account address (`cosmos1...`)."""
        return AccountAddress(str(self.wallet(prefix).address()))

    def controls(self, operator: str) -> bool:
        """Whether this key is the operator key of `operator` (same address bytes)."""
        hrp, payload = bech32_decode(operator)
        base = hrp.removesuffix("valoper")
        return bech32_decode(self.account(base))[1] == payload

    def __repr__(self) -> str:
        return f"SigningKey(source={self.source!r})"


def _mnemonic_checksum_ok(words: list[str]) -> bool:
    """BIP-39: the last len/3 bits are the start of SHA-256 of the entropy before them.

    cosmpy derives a key from any list of dictionary words; checking the checksum
    catches a typo before it silently selects a different account.
    """
    index = {w: i for i, w in enumerate(ENGLISH_MNEMONIC_WORDS_LIST)}
    if any(w not in index for w in words):
        return False
    bits = "".join(format(index[w], "011b") for w in words)
    checksum_bits = len(bits) // 33
    entropy_bits = bits[:-checksum_bits]
    entropy = int(entropy_bits, 2).to_bytes(len(entropy_bits) // 8, "big")
    expected = format(hashlib.sha256(entropy).digest()[0], "08b")[:checksum_bits]
    return bits[-checksum_bits:] == expected


def _parse(text: str, source: str) -> SigningKey:
    """A key from hex (as `keys export --unarmored-hex --unsafe` prints it) or a mnemonic."""
    stripped = text.strip()
    words = stripped.split()
    try:
        if len(words) in _MNEMONIC_WORDS:
            if not _mnemonic_checksum_ok(words):
                raise SigningKeyError(f"{source}: not a valid BIP-39 mnemonic (bad checksum)")
            return SigningKey(source, LocalWallet.from_mnemonic(" ".join(words)).signer())
        hex_text = stripped.removeprefix("0x")
        if len(hex_text) == 64:
            raw = bytes.fromhex(hex_text)
            return SigningKey(source, PrivateKey(raw))
    except (ValueError, RuntimeError, AssertionError, KeyError, IndexError):
        # Deliberately not chained: a library's message may quote part of the key.
        raise SigningKeyError(f"{source}: not a valid secp256k1 private key") from None
    raise SigningKeyError(
        f"{source}: expected a 64-digit hex private key or a BIP-39 mnemonic "
        f"({len(stripped)} characters found)"
    )


def load_key_file(path: Path) -> SigningKey:
    """Read a key file that only its owner can read; refuse group- or world-accessible ones."""
    source = f"key file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as e:
        raise SigningKeyError(f"{source} does not exist") from e
    except OSError as e:
        raise SigningKeyError(f"{source} cannot be opened: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SigningKeyError(f"{source} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise SigningKeyError(
                f"{source} has mode {mode:04o}: it must not be readable by group or others "
                f"(chmod 600 {path})"
            )
        data = f.read(_MAX_KEY_FILE_BYTES + 1)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise SigningKeyError(f"{source} is larger than {_MAX_KEY_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SigningKeyError(f"{source} is not text") from None
    return _parse(text, source)


def load_key_env(name: str, environ: Mapping[str, str] | None = None) -> SigningKey:
    """Read a key from environment variable `name`."""
    env = os.environ if environ is None else environ
    source = f"environment variable {name}"
    value = env.get(name)
    if not value:
        raise SigningKeyError(f"{source} is not set")
    return _parse(value, source)


def load_signing_key(
    *, file: Path | None = None, env: str | None = None, environ: Mapping[str, str] | None = None
) -> SigningKey:
    """The key from exactly one of a file and an environment variable."""
    if (file is None) == (env is None):
        raise SigningKeyError("give exactly one key source: a key file or an environment variable")
    if file is not None:
        return load_key_file(file)
    assert env is not None
    return load_key_env(env, environ)


def operator_of(key: SigningKey, prefix: str = "cosmos") -> str:
    """The operator address (`cosmosvaloper1...`) this key would control as an operator key."""
    _, payload = bech32_decode(key.account(prefix))
    return bech32_encode(prefix + "valoper", payload)
