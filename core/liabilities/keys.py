"""The two secrets of proof of liabilities, and what is derived from them.

- The **statement key** (Ed25519): the exchange signs each user's statement (snapshot,
  asset, committed balance, leaf commitment, root) with it, so a user whose proof fails
  holds a statement the exchange cannot deny. Its public half is committed in every
  published root (core.liabilities.tree.published_root) and published with the roots.
- The **user-secret key**: a server-side master secret. A user's verification secret is
  HMAC-SHA256(master, "PoL-user-secret/2" 0x00 user_id 0x00 generation(4)); it opens that
  user's sealed records in every bundle (core.liabilities.bundle). The master also seeds
  the bundle's padding records, so nobody without it can tell them from real ones.

Where they come from: `LEDGER_POL_SIGNING_KEY` (the 32-byte Ed25519 seed, 64 hex digits)
and `LEDGER_POL_SECRET_KEY` (at least 32 bytes, 64+ hex digits), set from the deployment's
secret store — never the repository. On the embedded (demo) store, when neither is set, a
throw-away pair is made for that store and lives only as long as it does. On a real
database without them, every command that needs them is refused (ConfigurationError).
Nothing here logs or prints a secret; `LiabilitiesKeys` does not show them in its repr.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import weakref

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.base.errors import ConfigurationError
from core.ledger import Store
from core.platform.settings import (  # noqa: F401 (re-exported: the keys' variables and their forms)
    MASTER_PATTERN,
    SECRET_KEY_ENV,
    SEED_PATTERN,
    SIGNING_KEY_ENV,
    liabilities_key_settings,
)

USER_SECRET_TAG = b"PoL-user-secret/2\x00"
USER_SECRET_BYTES = 32
GENERATION_MAX = 1 << 31
SECRET_TEXT_GROUP = 8  # hex digits per dash-separated group of the text a user types

_THROWAWAY: weakref.WeakKeyDictionary[Store, LiabilitiesKeys] = weakref.WeakKeyDictionary()


class LiabilitiesKeys:
    """The statement key pair and the user-secret master key (never shown by repr)."""

    __slots__ = ("_signing", "_master", "public_key", "throwaway")

    def __init__(self, signing: Ed25519PrivateKey, master: bytes, *, throwaway: bool) -> None:
        self._signing = signing
        self._master = master
        self.public_key: bytes = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.throwaway = throwaway

    def __repr__(self) -> str:
        return f"LiabilitiesKeys(public_key={self.public_key.hex()}, throwaway={self.throwaway})"

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature (deterministic: the same message always gives the same bytes)."""
        return self._signing.sign(message)

    def user_secret(self, user_id: str, generation: int = 1) -> bytes:
        """The user's verification secret of that generation (1 until support re-issues it)."""
        assert 1 <= generation < GENERATION_MAX, "generations are counted by core"
        return hmac.digest(self._master, USER_SECRET_TAG + user_id.encode() + b"\x00" + generation.to_bytes(4, "big"), "sha256")

    def padding_bytes(self, label: bytes, length: int) -> bytes:
        """Pseudo-random bytes only the master key can produce (bundle padding records)."""
        return keystream(hmac.digest(self._master, b"PoL-padding/2\x00" + label, "sha256"), length)


def keystream(key: bytes, length: int) -> bytes:
    """SHA-256 in counter mode under a secret 32-byte key: block i = SHA-256(key ‖ i as 8 bytes).
    Every input is one fixed-length block, so length extension cannot apply (the construction
    of NIST SP 800-90A's Hash_DRBG output); nine times faster than HMAC per block here."""
    head, blocks = hashlib.sha256(key), []
    for counter in range((length + 31) // 32):
        block = head.copy()
        block.update(counter.to_bytes(8, "big"))
        blocks.append(block.digest())
    return b"".join(blocks)[:length]


def keystream_xor(key: bytes, data: bytes) -> bytes:
    """`data` XOR the keystream of `key` (encrypts and decrypts)."""
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream(key, len(data)), "big")).to_bytes(len(data), "big")


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification with `cryptography` (the stand-alone tool has its own, in pure Python)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def secret_text(secret: bytes) -> str:
    """The secret as a user types it: hex in dash-separated groups."""
    digits = secret.hex()
    return "-".join(digits[i:i + SECRET_TEXT_GROUP] for i in range(0, len(digits), SECRET_TEXT_GROUP))


def _configured() -> LiabilitiesKeys | None:
    """The keys from the environment, or None when neither is set.
    Raises: ConfigurationError (core.platform.settings: one without the other, malformed, equal)."""
    settings = liabilities_key_settings()
    if not settings.configured:
        return None
    seed, master = (bytes.fromhex(key.get_secret_value()) for key in (settings.signing_key, settings.secret_key))
    return LiabilitiesKeys(Ed25519PrivateKey.from_private_bytes(seed), master, throwaway=False)


def keys_for(store: Store) -> LiabilitiesKeys:
    """The configured keys; on the embedded store without configuration, a throw-away pair
    for that store. Raises: ConfigurationError (a real database without both keys, or a
    malformed one)."""
    configured = _configured()
    if configured is not None:
        return configured
    if not store.embedded:
        raise ConfigurationError(f"proof of liabilities needs {SIGNING_KEY_ENV} and {SECRET_KEY_ENV} from the deployment's "
                                 "secrets (see docs/proof-of-liabilities.md); nothing was written")
    keys = _THROWAWAY.get(store)
    if keys is None:
        keys = _THROWAWAY[store] = LiabilitiesKeys(Ed25519PrivateKey.generate(), os.urandom(32), throwaway=True)
    return keys
