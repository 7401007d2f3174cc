"""Exceptions raised by the Herald SDK.

Every SDK method turns a failed gRPC call into one of these classes with
:func:`handle_grpc_error`, so callers branch on exception types (or on ``err.code``) rather than on
message text::

    HeraldError
    ├── HeraldConnectionError          UNAVAILABLE, or a call made before connect()
    ├── HeraldAuthError                UNAUTHENTICATED (missing, malformed or unknown token)
    ├── HeraldNotFoundError            NOT_FOUND (unprovisioned resource, missing key, unknown job)
    ├── HeraldPermissionDeniedError    PERMISSION_DENIED (token not scoped for the resource)
    ├── HeraldInvalidArgumentError     INVALID_ARGUMENT
    ├── HeraldFailedPreconditionError  FAILED_PRECONDITION (e.g. a NACK that dead-lettered the job)
    ├── HeraldAlreadyExistsError       ALREADY_EXISTS
    ├── HeraldTimeoutError             a NATS request got no reply in time (also a ``TimeoutError``)
    └── HeraldNoRespondersError        a NATS request reached no subscriber (status 503)

Any other code (INTERNAL, DEADLINE_EXCEEDED, CANCELLED, ...) gives a plain :class:`HeraldError`.
The ``flowmesh.exceptions`` module exports the same classes under their FlowMesh names (the two
NATS request errors, raised only by :mod:`herald.service`, have no FlowMesh name).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type, Union

import grpc

__all__ = [
    "HeraldError",
    "HeraldConnectionError",
    "HeraldAuthError",
    "HeraldNotFoundError",
    "HeraldPermissionDeniedError",
    "HeraldInvalidArgumentError",
    "HeraldFailedPreconditionError",
    "HeraldAlreadyExistsError",
    "HeraldTimeoutError",
    "HeraldNoRespondersError",
    "handle_grpc_error",
    "status_code_from_int",
]


class HeraldError(Exception):
    """Base class of every error the SDK raises.

    Attributes:
        message: the full message (also ``str(err)``), e.g. ``"read failed: stream not found: ..."``.
        code: for errors that come from the server, the ``grpc.StatusCode``; an ``int`` for an
            in-band status code that gRPC does not know; ``None`` for errors raised by the SDK itself.
        details: the server's message text, if any.
    """

    def __init__(self, message: str, code: Any = None, details: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, details={self.details!r})"


class HeraldConnectionError(HeraldError):
    """The server could not be reached (gRPC UNAVAILABLE), or the client is not connected."""


class HeraldAuthError(HeraldError):
    """The server rejected the credentials (gRPC UNAUTHENTICATED)."""


class HeraldNotFoundError(HeraldError):
    """A stream, queue, KV store, key, job, schema or replay session does not exist (NOT_FOUND)."""


class HeraldPermissionDeniedError(HeraldError):
    """The token is valid but not allowed to perform the operation (PERMISSION_DENIED)."""


class HeraldInvalidArgumentError(HeraldError):
    """The server rejected the request as malformed (INVALID_ARGUMENT)."""


class HeraldFailedPreconditionError(HeraldError):
    """The operation is not allowed in the current state (FAILED_PRECONDITION).

    The common case: ``queue.nack`` of a job that has used up its attempts. The job *has* been moved
    to the dead-letter queue; the error tells the caller so.
    """


class HeraldAlreadyExistsError(HeraldError):
    """The thing being created already exists (ALREADY_EXISTS), e.g. a schema version."""


class HeraldTimeoutError(HeraldError, TimeoutError):
    """A request (:meth:`herald.service.Service.request`) got no reply within its timeout.

    Also a built-in ``TimeoutError``, so generic timeout handling catches it.
    """


class HeraldNoRespondersError(HeraldError):
    """A request was published to a subject nobody subscribes to: the server answered at once with
    the NATS no-responders status (503) instead of letting the request time out."""


_EXCEPTION_BY_CODE: Dict[grpc.StatusCode, Type[HeraldError]] = {
    grpc.StatusCode.NOT_FOUND: HeraldNotFoundError,
    grpc.StatusCode.UNAUTHENTICATED: HeraldAuthError,
    grpc.StatusCode.PERMISSION_DENIED: HeraldPermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: HeraldConnectionError,
    grpc.StatusCode.INVALID_ARGUMENT: HeraldInvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: HeraldFailedPreconditionError,
    grpc.StatusCode.ALREADY_EXISTS: HeraldAlreadyExistsError,
}

_STATUS_CODE_BY_INT: Dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_code_from_int(value: int) -> Union[grpc.StatusCode, int]:
    """Convert a numeric gRPC status code (as carried in an in-band ``Status``) to ``grpc.StatusCode``.

    Numbers gRPC does not define are returned unchanged.
    """
    return _STATUS_CODE_BY_INT.get(value, value)


def error_for_code(code: Any, operation: str, details: Optional[str]) -> HeraldError:
    """Build the exception for ``code`` with the message ``"<operation> failed[: <details>]"``."""
    if isinstance(code, int) and not isinstance(code, bool):
        code = status_code_from_int(code)
    message = f"{operation} failed: {details}" if details else f"{operation} failed"
    cls = _EXCEPTION_BY_CODE.get(code, HeraldError) if isinstance(code, grpc.StatusCode) else HeraldError
    return cls(message, code=code, details=details)


def handle_grpc_error(error: Any, operation: str) -> HeraldError:
    """Return (not raise) the SDK exception for a failed gRPC call.

    Only ``error.code()`` and ``error.details()`` are used, so any object with those two methods
    works, not just ``grpc.RpcError``. The message is ``"<operation> failed: <details>"``, or
    ``"<operation> failed"`` when the server sent no details. SDK methods use it as
    ``raise handle_grpc_error(e, "read") from e``.
    """
    code = error.code()
    details = error.details()
    return error_for_code(code, operation, details or None)
