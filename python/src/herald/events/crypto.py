"""End-to-end payload encryption as the EnSync SDKs do it (NaCl / libsodium through PyNaCl).

The server stores and forwards an opaque string; only the publisher and the recipient see the
payload. The formats below are those of ``ensync-core`` 0.1.2, so payloads interoperate with the real
``ensync-sdk`` / ``ensync-sdk-ws`` clients in both directions.

Keys
    An identity is an Ed25519 key pair. Its public key, b64 (44 characters), is the address other
    applications publish to. For encryption it is mapped to an X25519 key
    (``crypto_sign_ed25519_pk_to_curve25519``). The secret key is accepted in the forms
    ``ensync-core`` accepts: 64 bytes = Ed25519 secret key (seed ‖ public key), converted with
    ``crypto_sign_ed25519_sk_to_curve25519``; 32 bytes = the X25519 secret scalar itself (*not* an
    Ed25519 seed); a ``str`` is b64-decoded first.

Single-recipient format (one recipient, or ``hybrid=False``)
    ``b64(json({"nonce", "ciphertext", "ephemeralPublicKey"}))``: the UTF-8 of
    ``json.dumps(payload)`` sealed with ``crypto_box`` from a fresh ephemeral key pair to the
    recipient's X25519 key (ciphertext = 16-byte tag followed by the encrypted bytes).

Hybrid format (several recipients)
    ``b64(json({"type": "hybrid", "payload": {"nonce", "ciphertext"}, "keys": {hex pk: envelope}}))``:
    the payload sealed once with ``crypto_secretbox`` under a random 32-byte key K, and K sealed for
    every recipient as above. The real SDK seals the raw 32 bytes of K but its decryption expects
    the b64 *text* of K, so its own hybrid payloads cannot be decrypted by anyone. This module writes
    the interoperable variant: it seals the b64 text of K (which the real clients can open) and,
    when decrypting, accepts both (an opened key of exactly 32 bytes is K itself, anything else is
    b64-decoded).

Example::

    public, secret = generate_identity()
    wire = encrypt_payload({"x": 1}, public)
    assert decrypt_payload(wire, secret) == {"x": 1}
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from .errors import EventDecryptionError, InvalidKeyError

__all__ = [
    "KeyLike",
    "generate_identity",
    "public_key_bytes",
    "recipient_key",
    "secret_scalar",
    "seal",
    "open_sealed",
    "encrypt_payload",
    "encrypt_payload_hybrid",
    "decrypt_payload",
]

KeyLike = Union[str, bytes]
"""A key as b64 text or as raw bytes."""

_KEY_SIZE = 32
_ED25519_SECRET_SIZE = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    """Strict b64 decoding that tolerates missing ``=`` padding; errors name ``what``."""
    cleaned = text.strip()
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKeyError(f"{what} is not valid base64: {text!r}") from exc


def generate_identity() -> Tuple[str, str]:
    """Return a new identity as ``(public_key_b64, secret_key_b64)``.

    The public key is the 32-byte Ed25519 key (44 b64 characters) that other applications publish
    to and that the server must have registered for an access key. The secret key is the 64-byte
    Ed25519 secret key (seed followed by public key), the form the EnSync SDKs expect as
    ``appSecretKey`` and :class:`~herald.events.EventClient` as ``secret_key``. The secret key
    never goes to the server.
    """
    public, secret = sodium.crypto_sign_keypair()
    return _b64(public), _b64(secret)


def public_key_bytes(public_key: KeyLike) -> bytes:
    """Decode an Ed25519 public key (b64 text or 32 raw bytes) and check its length."""
    raw = _unb64(public_key, "public key") if isinstance(public_key, str) else bytes(public_key)
    if len(raw) != _KEY_SIZE:
        raise InvalidKeyError(f"an Ed25519 public key has 32 bytes, got {len(raw)}")
    return raw


@lru_cache(maxsize=1024)
def _x25519_public(raw: bytes) -> bytes:
    try:
        return sodium.crypto_sign_ed25519_pk_to_curve25519(raw)
    except nacl.exceptions.RuntimeError as exc:
        raise InvalidKeyError(f"not a valid Ed25519 public key: {_b64(raw)}") from exc


def recipient_key(public_key: KeyLike) -> bytes:
    """The X25519 public key to encrypt for, from a recipient's Ed25519 public key.

    Raises :class:`~herald.events.errors.InvalidKeyError` for anything that is not a valid
    32-byte Ed25519 public key, so bad recipients are caught before anything is sent.
    """
    return _x25519_public(public_key_bytes(public_key))


def secret_scalar(secret_key: KeyLike) -> bytes:
    """The X25519 secret scalar to decrypt with, from any accepted secret key form (module doc)."""
    raw = _unb64(secret_key, "secret key") if isinstance(secret_key, str) else bytes(secret_key)
    if len(raw) == _ED25519_SECRET_SIZE:
        return sodium.crypto_sign_ed25519_sk_to_curve25519(raw)
    if len(raw) == _KEY_SIZE:
        return raw
    raise InvalidKeyError(
        "a secret key has 64 bytes (Ed25519 seed + public key) or 32 bytes (X25519 scalar), "
        f"got {len(raw)}"
    )


def seal(plaintext: bytes, public_key: KeyLike) -> Dict[str, str]:
    """Seal ``plaintext`` for one recipient: the ``{"nonce", "ciphertext", "ephemeralPublicKey"}``
    envelope (values b64), from a fresh ephemeral key pair and a random nonce."""
    recipient = recipient_key(public_key)
    ephemeral_public, ephemeral_secret = sodium.crypto_box_keypair()
    nonce = nacl.utils.random(sodium.crypto_box_NONCEBYTES)
    ciphertext = sodium.crypto_box(plaintext, nonce, recipient, ephemeral_secret)
    return {
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
        "ephemeralPublicKey": _b64(ephemeral_public),
    }


def open_sealed(envelope: Mapping[str, Any], secret_key: KeyLike) -> bytes:
    """Open an envelope made by :func:`seal` (or ``ensync_core.encrypt_ed25519``).

    Raises :class:`~herald.events.errors.EventDecryptionError` when it is malformed or was not
    sealed for this key.
    """
    scalar = secret_scalar(secret_key)
    try:
        nonce = base64.b64decode(envelope["nonce"])
        ciphertext = base64.b64decode(envelope["ciphertext"])
        ephemeral = base64.b64decode(envelope["ephemeralPublicKey"])
        return sodium.crypto_box_open(ciphertext, nonce, ephemeral, scalar)
    except (KeyError, TypeError, ValueError, binascii.Error, nacl.exceptions.CryptoError) as exc:
        raise EventDecryptionError(f"cannot open the envelope: {exc}") from exc


def _plaintext(payload: Any) -> bytes:
    # json.dumps with its defaults, as the EnSync SDKs do, so byte_size and ciphertexts match.
    return json.dumps(payload).encode("utf-8")


def _wrap(document: Mapping[str, Any]) -> str:
    return _b64(json.dumps(document).encode("utf-8"))


def encrypt_payload(payload: Any, public_key: KeyLike) -> str:
    """Encrypt a JSON-serializable ``payload`` for one recipient (single-recipient format)."""
    return _wrap(seal(_plaintext(payload), public_key))


def encrypt_payload_hybrid(payload: Any, public_keys: Iterable[KeyLike]) -> str:
    """Encrypt ``payload`` once for all ``public_keys`` (hybrid format, interoperable variant).

    Every recipient key is validated before anything is encrypted. The result is the same string
    for every recipient.
    """
    keys: List[bytes] = [public_key_bytes(k) for k in public_keys]
    if not keys:
        raise InvalidKeyError("hybrid encryption needs at least one recipient")
    for raw in keys:
        recipient_key(raw)
    message_key = nacl.utils.random(sodium.crypto_secretbox_KEYBYTES)
    nonce = nacl.utils.random(sodium.crypto_secretbox_NONCEBYTES)
    ciphertext = sodium.crypto_secretbox(_plaintext(payload), nonce, message_key)
    # The b64 text of K, not K: that is what the real clients' decryption b64-decodes.
    sealed_key = _b64(message_key).encode("ascii")
    entries = {raw.hex(): seal(sealed_key, raw) for raw in keys}
    return _wrap(
        {
            "type": "hybrid",
            "payload": {"nonce": _b64(nonce), "ciphertext": _b64(ciphertext)},
            "keys": entries,
        }
    )


def _open_hybrid(document: Mapping[str, Any], scalar: bytes) -> bytes:
    try:
        part = document["payload"]
        entries = document["keys"]
        nonce = base64.b64decode(part["nonce"])
        ciphertext = base64.b64decode(part["ciphertext"])
        candidates = list(entries.values())
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as exc:
        raise EventDecryptionError(f"malformed hybrid payload: {exc}") from exc
    # The map is keyed by hex public key, but the real clients ignore the keys and try every
    # entry; do the same, so a payload keyed some other way still opens.
    for entry in candidates:
        try:
            opened = open_sealed(entry, scalar)
        except EventDecryptionError:
            continue
        try:
            message_key = opened if len(opened) == _KEY_SIZE else base64.b64decode(opened, validate=True)
            return sodium.crypto_secretbox_open(ciphertext, nonce, message_key)
        except (ValueError, binascii.Error, TypeError, nacl.exceptions.CryptoError):
            continue
    raise EventDecryptionError(
        f"none of the {len(candidates)} recipient entries of the hybrid payload opens with this key"
    )


def decrypt_payload(wire_payload: str, secret_key: KeyLike) -> Any:
    """Decrypt a payload string in either format and return the JSON value.

    Raises :class:`~herald.events.errors.EventDecryptionError` when the string is not an EnSync
    payload, is not addressed to this key, or does not decrypt to JSON; and
    :class:`~herald.events.errors.InvalidKeyError` for a malformed ``secret_key``.
    """
    scalar = secret_scalar(secret_key)
    try:
        document = json.loads(base64.b64decode(wire_payload).decode("utf-8"))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise EventDecryptionError(f"not an encrypted payload: {exc}") from exc
    if not isinstance(document, dict):
        raise EventDecryptionError("not an encrypted payload: the envelope is not a JSON object")
    if document.get("type") == "hybrid":
        plaintext = _open_hybrid(document, scalar)
    else:
        plaintext = open_sealed(document, scalar)
    try:
        return json.loads(plaintext.decode("utf-8"))
    except ValueError as exc:
        raise EventDecryptionError(f"the decrypted payload is not JSON: {exc}") from exc
