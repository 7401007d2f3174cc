"""Key-value operations: ``client.kv``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, List, Optional

from ._generated import flowmesh_pb2 as pb
from .utils import build_resource_path, duration_to_seconds

if TYPE_CHECKING:  # pragma: no cover
    from .client import Herald

__all__ = ["KVClient"]


def _kv_path(tenant: str, namespace: str, store: str) -> pb.ResourcePath:
    return pb.ResourcePath(**build_resource_path(tenant, namespace, "kv", store))


class KVClient:
    """Key-value stores addressed as ``tenant/namespace/kv/<name>``.

    Keys are non-empty strings, values non-empty bytes. A key may carry a TTL in whole seconds;
    once it has passed the key is gone for ``get``, ``exists`` and ``list_keys`` alike. The store
    itself must be provisioned on the server; an unknown store raises
    :class:`~herald.exceptions.HeraldNotFoundError` from every method.
    """

    def __init__(self, client: "Herald") -> None:
        self._client = client

    async def set(
        self,
        tenant: str,
        namespace: str,
        store: str,
        key: str,
        value: bytes,
        ttl: Optional[timedelta] = None,
    ) -> None:
        """Store ``value`` under ``key``, replacing both the value and any earlier TTL.

        ``ttl`` travels as whole seconds (truncated): ``None`` or anything under one second means
        the key never expires. At most one year.
        """
        request = pb.SetRequest(
            resource_path=_kv_path(tenant, namespace, store),
            key=key,
            value=value,
            ttl_seconds=duration_to_seconds(ttl),
        )
        await self._client._call("kv", "Set", request, "set")

    async def get(self, tenant: str, namespace: str, store: str, key: str) -> bytes:
        """Return the value of ``key``; a missing or expired key raises ``HeraldNotFoundError``."""
        request = pb.GetRequest(resource_path=_kv_path(tenant, namespace, store), key=key)
        response = await self._client._call("kv", "Get", request, "get")
        return bytes(response.value)

    async def delete(self, tenant: str, namespace: str, store: str, key: str) -> None:
        """Delete ``key``; deleting a key that does not exist is not an error."""
        request = pb.DeleteRequest(resource_path=_kv_path(tenant, namespace, store), key=key)
        await self._client._call("kv", "Delete", request, "delete")

    async def exists(self, tenant: str, namespace: str, store: str, key: str) -> bool:
        """Return whether ``key`` is present and not expired."""
        request = pb.ExistsRequest(resource_path=_kv_path(tenant, namespace, store), key=key)
        response = await self._client._call("kv", "Exists", request, "exists")
        return bool(response.exists)

    async def list_keys(self, tenant: str, namespace: str, store: str, prefix: str = "") -> List[str]:
        """Return every live key starting with ``prefix`` (all keys for ``""``), sorted byte-wise
        (so ``"user:10"`` comes before ``"user:2"``)."""
        request = pb.ListKeysRequest(resource_path=_kv_path(tenant, namespace, store), prefix=prefix)
        response = await self._client._call("kv", "ListKeys", request, "list_keys")
        return list(response.keys)
