"""Addressed, end-to-end encrypted events over Herald's EnSync-compatible gRPC interface.

An application is an identity (an Ed25519 key pair) registered in Herald under an access key. It
publishes named events to other identities' public keys; the payload is encrypted on the
publisher's machine for each recipient, the server stores and forwards ciphertext, and each
recipient's subscription decrypts, handles and acknowledges (or defers, discards, replays) events
one by one. Payloads interoperate with the real ``ensync-sdk`` clients (:mod:`herald.events.crypto`).

Example::

    import asyncio
    from herald.events import EventClient, generate_identity

    async def main():
        # The public key is registered in Herald for the access key; the secret key stays here.
        public_key, secret_key = generate_identity()

        async with EventClient("grpc://127.0.0.1:50051", access_key="key-B", secret_key=secret_key) as client:
            sub = await client.subscribe("orders/created")

            @sub.on
            async def handle(event):
                print(event.idem, event.sender, event.payload, event.metadata)
                # returning normally acknowledges the event (auto_ack=True)

            ids = await client.publish("orders/created", [client.public_key], {"x": 1}, metadata={"k": "v"})
            await asyncio.sleep(1)

    asyncio.run(main())

``async for event in sub`` is the alternative to ``sub.on`` (handlers win when both are used); see
:class:`Subscription`. The client reconnects by itself when the server restarts or forgets its
session; see :mod:`herald.events.client`.
"""

from . import crypto
from .client import MAX_DEFER_MS, Endpoint, EventClient, Subscription, parse_url
from .crypto import decrypt_payload, encrypt_payload, encrypt_payload_hybrid, generate_identity
from .errors import (
    EventDecryptionError,
    EventHandlerError,
    EventNotFoundError,
    EventsAuthError,
    EventsDeliveryError,
    EventsError,
    EventsPublishError,
    EventsSessionError,
    EventsSubscriptionError,
    EventsValidationError,
    InvalidKeyError,
)
from .types import Event, SubscriptionStats

__all__ = [
    "EventClient",
    "Subscription",
    "Event",
    "SubscriptionStats",
    "Endpoint",
    "parse_url",
    "MAX_DEFER_MS",
    "crypto",
    "generate_identity",
    "encrypt_payload",
    "encrypt_payload_hybrid",
    "decrypt_payload",
    "EventsError",
    "EventsAuthError",
    "EventsSessionError",
    "EventsPublishError",
    "EventsSubscriptionError",
    "EventsDeliveryError",
    "EventNotFoundError",
    "EventsValidationError",
    "InvalidKeyError",
    "EventDecryptionError",
    "EventHandlerError",
]
