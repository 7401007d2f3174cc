"""herald.events.crypto against the real ensync-core 0.1.2 (and the real clients' decryption code).

The real SDKs' decryption is called as they call it: ``ensync_core.decrypt_ed25519`` for the
single-recipient envelope, and the gRPC and WebSocket clients' own ``_decrypt_payload`` methods for
both formats (they try every hybrid entry, UTF-8-decode what opens, b64-decode it to the message key).
"""

from __future__ import annotations

import base64
import hashlib
import json

import nacl.bindings
import nacl.signing
import pytest

from herald.events import crypto
from herald.events.errors import EventDecryptionError, InvalidKeyError

ensync_core = pytest.importorskip("ensync_core", reason="ensync-core is not installed (dev extra)")

PAYLOADS = [
    {"x": 1, "s": "é", "nested": {"a": [1, 2, None]}, "f": 1.5, "b": True},
    [1, "two", 3.0],
    "just a string",
    0,
    {},
]


def unwrap(wire: str) -> dict:
    return json.loads(base64.b64decode(wire))


def grpc_client_decrypt(wire: str, secret_key: str):
    """The real ensync-sdk gRPC client's decryption of a streamed payload."""
    grpc_client = pytest.importorskip("ensync_sdk.grpc_client", reason="ensync-sdk is not installed (dev extra)")
    engine = grpc_client.EnSyncGrpcClient("grpc://127.0.0.1:1")  # no I/O in the constructor
    return engine._decrypt_payload(wire, secret_key)


def ws_client_decrypt(wire: str, secret_key: str):
    """The real ensync-sdk-ws client's decryption of a record's payload."""
    ws = pytest.importorskip("ensync_sdk_ws.websocket", reason="ensync-sdk-ws is not installed (dev extra)")
    engine = ws.EnSyncEngine("ws://127.0.0.1:1")
    return engine._decrypt_payload({"encryptedPayload": unwrap(wire)}, secret_key)


@pytest.fixture
def alice():
    return crypto.generate_identity()


@pytest.fixture
def bob():
    return crypto.generate_identity()


# -- identities and keys ------------------------------------------------------------------------


def test_generate_identity_shapes():
    public, secret = crypto.generate_identity()
    assert len(public) == 44 and len(base64.b64decode(public)) == 32
    raw_secret = base64.b64decode(secret)
    assert len(raw_secret) == 64
    # seed ‖ public key, as NaCl lays out crypto_sign keys
    assert raw_secret[32:] == base64.b64decode(public)
    signing = nacl.signing.SigningKey(raw_secret[:32])
    assert bytes(signing.verify_key) == base64.b64decode(public)


def test_secret_key_forms(alice):
    public, secret = alice
    raw = base64.b64decode(secret)
    scalar = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(raw)
    assert crypto.secret_scalar(secret) == scalar
    assert crypto.secret_scalar(raw) == scalar
    # 32 bytes are the X25519 scalar itself (clamped or not), not an Ed25519 seed
    assert crypto.secret_scalar(scalar) == scalar
    unclamped = hashlib.sha512(raw[:32]).digest()[:32]
    wire = crypto.encrypt_payload({"k": 1}, public)
    assert crypto.decrypt_payload(wire, base64.b64encode(unclamped).decode()) == {"k": 1}
    assert crypto.decrypt_payload(wire, scalar) == {"k": 1}
    with pytest.raises(EventDecryptionError):
        crypto.decrypt_payload(wire, raw[:32])  # the seed is not accepted as a 32-byte key


@pytest.mark.parametrize("length", [0, 16, 31, 33, 48, 63, 65])
def test_secret_key_wrong_length(length):
    with pytest.raises(InvalidKeyError, match=f"got {length}"):
        crypto.secret_scalar(bytes(length))
    with pytest.raises(InvalidKeyError):
        crypto.secret_scalar(base64.b64encode(bytes(length)).decode())


def test_invalid_keys(alice):
    public, _ = alice
    with pytest.raises(InvalidKeyError, match="base64"):
        crypto.recipient_key("not base64!!")
    with pytest.raises(InvalidKeyError, match="32 bytes"):
        crypto.recipient_key(base64.b64encode(b"short").decode())
    with pytest.raises(InvalidKeyError, match="base64"):
        crypto.secret_scalar("%%%")
    # missing padding is tolerated
    assert crypto.recipient_key(public.rstrip("=")) == crypto.recipient_key(public)
    # InvalidKeyError is a ValueError too
    assert issubclass(InvalidKeyError, ValueError)


def test_recipient_key_matches_libsodium(alice):
    public, _ = alice
    expected = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(base64.b64decode(public))
    assert crypto.recipient_key(public) == expected


# -- single-recipient format -------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_single_ours_decrypts_with_ensync_core(alice, payload):
    public, secret = alice
    wire = crypto.encrypt_payload(payload, public)
    envelope = unwrap(wire)
    assert set(envelope) == {"nonce", "ciphertext", "ephemeralPublicKey"}
    assert json.loads(ensync_core.decrypt_ed25519(envelope, secret)) == payload
    assert grpc_client_decrypt(wire, secret) == {"success": True, "payload": payload}
    assert ws_client_decrypt(wire, secret) == {"success": True, "payload": payload}


def test_single_plaintext_is_json_dumps(alice):
    public, secret = alice
    payload = {"s": "é", "n": [1, 2]}
    envelope = unwrap(crypto.encrypt_payload(payload, public))
    # ensync-core returns the decrypted UTF-8 text: exactly json.dumps(payload)
    assert ensync_core.decrypt_ed25519(envelope, secret) == json.dumps(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_single_ensync_core_decrypts_with_ours(alice, payload):
    public, secret = alice
    envelope = ensync_core.encrypt_ed25519(json.dumps(payload).encode(), base64.b64decode(public))
    wire = base64.b64encode(json.dumps(envelope).encode()).decode()
    assert crypto.decrypt_payload(wire, secret) == payload
    # also the 32-byte scalar form, and raw bytes
    raw = base64.b64decode(secret)
    assert crypto.decrypt_payload(wire, raw) == payload


def test_single_wrong_key(alice, bob):
    public, _ = alice
    _, other_secret = bob
    wire = crypto.encrypt_payload({"x": 1}, public)
    with pytest.raises(EventDecryptionError):
        crypto.decrypt_payload(wire, other_secret)
    assert grpc_client_decrypt(wire, other_secret) == {"success": False}


def test_seal_and_open_roundtrip(alice):
    public, secret = alice
    envelope = crypto.seal(b"\x00\xffbytes", public)
    assert crypto.open_sealed(envelope, secret) == b"\x00\xffbytes"
    with pytest.raises(EventDecryptionError):
        crypto.open_sealed({"nonce": "x"}, secret)


# -- hybrid format -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_hybrid_ours_decrypts_with_the_real_clients(alice, bob, payload):
    (pa, sa), (pb_, sb) = alice, bob
    wire = crypto.encrypt_payload_hybrid(payload, [pa, pb_])
    document = unwrap(wire)
    assert document["type"] == "hybrid"
    assert set(document["payload"]) == {"nonce", "ciphertext"}
    # keyed by lowercase hex of the Ed25519 public key, as ensync-core does
    assert set(document["keys"]) == {base64.b64decode(pa).hex(), base64.b64decode(pb_).hex()}
    for secret in (sa, sb):
        assert grpc_client_decrypt(wire, secret) == {"success": True, "payload": payload}
        assert ws_client_decrypt(wire, secret) == {"success": True, "payload": payload}
        assert crypto.decrypt_payload(wire, secret) == payload


def test_hybrid_ours_decrypts_with_ensync_core_primitives(alice, bob):
    """The clients' hybrid steps spelled out with ensync-core's functions: open each entry with
    decrypt_ed25519 (UTF-8 text), b64-decode it to K, open the payload with K."""
    (pa, sa), (pb_, sb) = alice, bob
    document = unwrap(crypto.encrypt_payload_hybrid({"m": 2}, [pa, pb_]))
    for secret in (sa, sb):
        results = []
        for entry in document["keys"].values():
            try:
                key = ensync_core.decrypt_message_key(entry, secret)
            except ValueError:
                continue
            results.append(json.loads(ensync_core.decrypt_with_message_key(document["payload"], key)))
        assert results == [{"m": 2}]


def test_hybrid_from_ensync_core_raw_key_decrypts_with_ours(alice, bob):
    """ensync_core.hybrid_encrypt seals the raw 32-byte K (which the real clients cannot open);
    ours accepts that form too."""
    (pa, sa), (pb_, sb) = alice, bob
    payload = {"m": 2, "s": "é"}
    produced = ensync_core.hybrid_encrypt(
        json.dumps(payload).encode(), [base64.b64decode(pa), base64.b64decode(pb_)]
    )
    wire = base64.b64encode(
        json.dumps(
            {"type": "hybrid", "payload": produced["encryptedPayload"], "keys": produced["encryptedKeys"]}
        ).encode()
    ).decode()
    assert crypto.decrypt_payload(wire, sa) == payload
    assert crypto.decrypt_payload(wire, sb) == payload
    # ...and, as the contract says, the real client cannot read the real SDK's hybrid payload
    assert grpc_client_decrypt(wire, sa) == {"success": False}


def test_hybrid_not_a_recipient(alice, bob):
    (pa, _), (_, sb) = alice, bob
    wire = crypto.encrypt_payload_hybrid({"x": 1}, [pa])
    with pytest.raises(EventDecryptionError, match="none of the 1"):
        crypto.decrypt_payload(wire, sb)


def test_hybrid_validates_every_recipient_first(alice):
    public, _ = alice
    with pytest.raises(InvalidKeyError):
        crypto.encrypt_payload_hybrid({"x": 1}, [public, "AAAA"])
    with pytest.raises(InvalidKeyError):
        crypto.encrypt_payload_hybrid({"x": 1}, [])


def test_invalid_ed25519_point_is_rejected():
    # A 32-byte string that is not a point on the curve: libsodium refuses to convert it.
    bad = None
    for i in range(256):
        candidate = bytes([i]) * 32
        try:
            nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(candidate)
        except Exception:
            bad = candidate
            break
    if bad is None:
        pytest.skip("found no invalid point to test with")
    with pytest.raises(InvalidKeyError, match="not a valid Ed25519 public key"):
        crypto.recipient_key(base64.b64encode(bad).decode())


@pytest.mark.parametrize(
    "wire",
    [
        "not b64 at all ***",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(b'{"type": "hybrid"}').decode(),
        base64.b64encode(b'{"nonce": "AAAA"}').decode(),
    ],
)
def test_garbage_payloads(alice, wire):
    _, secret = alice
    with pytest.raises(EventDecryptionError):
        crypto.decrypt_payload(wire, secret)
