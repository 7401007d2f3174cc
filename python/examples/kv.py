"""Key-value store: set, get, list by prefix, expire with a TTL, delete.

    python examples/kv.py --endpoint 127.0.0.1:50051 [--token TOKEN]

Needs the KV store default/test/kv/cache provisioned on the server.
"""

import argparse
import asyncio
import json
import sys
from datetime import timedelta

from herald import Herald, HeraldError, HeraldNotFoundError

TENANT, NAMESPACE, STORE = "default", "test", "cache"


async def run(endpoint: str, token: "str | None") -> None:
    async with Herald(endpoint, auth_token=token) as client:
        kv = client.kv
        await kv.set(TENANT, NAMESPACE, STORE, "user:1", json.dumps({"name": "Ada"}).encode())
        await kv.set(TENANT, NAMESPACE, STORE, "user:2", json.dumps({"name": "Grace"}).encode())
        await kv.set(TENANT, NAMESPACE, STORE, "config:theme", b"dark")
        user = json.loads(await kv.get(TENANT, NAMESPACE, STORE, "user:1"))
        print(f"get user:1 -> {user}")
        print(f"exists config:theme -> {await kv.exists(TENANT, NAMESPACE, STORE, 'config:theme')}")
        print(f"keys with prefix 'user:' -> {await kv.list_keys(TENANT, NAMESPACE, STORE, prefix='user:')}")

        # A TTL travels in whole seconds; the key disappears once it has passed.
        await kv.set(TENANT, NAMESPACE, STORE, "session:abc", b"token-123", ttl=timedelta(seconds=1))
        print(f"session:abc set with a 1 s TTL, exists -> {await kv.exists(TENANT, NAMESPACE, STORE, 'session:abc')}")
        await asyncio.sleep(1.5)
        try:
            await kv.get(TENANT, NAMESPACE, STORE, "session:abc")
            raise SystemExit("session:abc should have expired")
        except HeraldNotFoundError:
            print("session:abc expired")

        await kv.delete(TENANT, NAMESPACE, STORE, "config:theme")
        print(f"deleted config:theme, exists -> {await kv.exists(TENANT, NAMESPACE, STORE, 'config:theme')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:50051", help="gRPC address of the Herald server")
    parser.add_argument("--token", default=None, help="bearer token, if the server requires one")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.endpoint, args.token))
    except HeraldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
