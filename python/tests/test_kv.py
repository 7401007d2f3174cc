"""Key-value stores against a real server (compat/flowmesh.md §3.5, §6.6; checklist C20–C22, C30)."""

import asyncio
from datetime import timedelta

import grpc
import pytest

from herald import HeraldInvalidArgumentError, HeraldNotFoundError

from .conftest import NAMESPACE, TENANT

pytestmark = pytest.mark.integration

T, NS = TENANT, NAMESPACE


async def test_set_get_exists_delete(client):
    s = "basic"
    await client.kv.set(T, NS, s, "k1", b"v1")
    assert await client.kv.get(T, NS, s, "k1") == b"v1"
    assert await client.kv.exists(T, NS, s, "k1") is True
    await client.kv.set(T, NS, s, "k1", b"v2")
    assert await client.kv.get(T, NS, s, "k1") == b"v2"
    await client.kv.delete(T, NS, s, "k1")
    assert await client.kv.exists(T, NS, s, "k1") is False
    with pytest.raises(HeraldNotFoundError) as info:
        await client.kv.get(T, NS, s, "k1")
    assert str(info.value).startswith("get failed: ")
    assert f"key k1 not found in KV store {T}/{NS}/kv/{s}" in str(info.value)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    await client.kv.delete(T, NS, s, "k1")  # deleting a missing key is fine

    binary = bytes(range(256))
    await client.kv.set(T, NS, s, "bin", binary)
    assert await client.kv.get(T, NS, s, "bin") == binary


async def test_ttl_expires_everywhere(client):
    s = "ttl"
    await client.kv.set(T, NS, s, "t", b"x", ttl=timedelta(seconds=1))
    await client.kv.set(T, NS, s, "keep", b"y")
    assert await client.kv.get(T, NS, s, "t") == b"x"
    await asyncio.sleep(1.6)
    with pytest.raises(HeraldNotFoundError, match="^get failed: "):
        await client.kv.get(T, NS, s, "t")
    assert await client.kv.exists(T, NS, s, "t") is False
    assert await client.kv.list_keys(T, NS, s) == ["keep"]


async def test_set_replaces_the_ttl(client):
    s = "ttl_replace"
    await client.kv.set(T, NS, s, "t2", b"x", ttl=timedelta(seconds=1))
    await client.kv.set(T, NS, s, "t2", b"y")  # no TTL any more
    await client.kv.set(T, NS, s, "sub", b"z", ttl=timedelta(milliseconds=500))  # under 1 s: no TTL
    await asyncio.sleep(1.6)
    assert await client.kv.get(T, NS, s, "t2") == b"y"
    assert await client.kv.get(T, NS, s, "sub") == b"z"


async def test_list_keys_sorted_bytewise_with_prefix(client):
    s = "listing"
    for key in ["user:2", "user:10", "order:1", "user:1", "a.b"]:
        await client.kv.set(T, NS, s, key, b"1")
    assert await client.kv.list_keys(T, NS, s) == ["a.b", "order:1", "user:1", "user:10", "user:2"]
    assert await client.kv.list_keys(T, NS, s, prefix="user:") == ["user:1", "user:10", "user:2"]
    assert await client.kv.list_keys(T, NS, s, "zzz") == []
    assert await client.kv.list_keys(T, NS, "listing_empty") == []


async def test_invalid_requests(client):
    s = "kv_errors"
    with pytest.raises(HeraldInvalidArgumentError, match="^set failed: key cannot be empty"):
        await client.kv.set(T, NS, s, "", b"v")
    with pytest.raises(HeraldInvalidArgumentError, match="value cannot be empty"):
        await client.kv.set(T, NS, s, "k", b"")
    with pytest.raises(HeraldInvalidArgumentError, match="ttl_seconds cannot exceed 31536000"):
        await client.kv.set(T, NS, s, "k", b"v", ttl=timedelta(seconds=31536001))


async def test_unprovisioned_store_is_not_found(client):
    m = "missing"
    calls = {
        "set": lambda: client.kv.set(T, NS, m, "k", b"v"),
        "get": lambda: client.kv.get(T, NS, m, "k"),
        "exists": lambda: client.kv.exists(T, NS, m, "k"),
        "delete": lambda: client.kv.delete(T, NS, m, "k"),
        "list_keys": lambda: client.kv.list_keys(T, NS, m),
    }
    for operation, call in calls.items():
        with pytest.raises(HeraldNotFoundError) as info:
            await call()
        assert str(info.value) == f"{operation} failed: KV store not found: {T}/{NS}/kv/{m}", operation
