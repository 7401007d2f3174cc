"""SDK behaviour that a real server rarely shows, checked with stand-in stubs (no network)."""

import grpc
import pytest

from herald import Herald, HeraldError, HeraldNotFoundError
from herald._generated import flowmesh_pb2 as pb
from herald.exceptions import HeraldConnectionError
from herald.types import Job


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class FakeStreamCall:
    """Stands in for a grpc.aio UnaryStreamCall: async-iterable, cancellable."""

    def __init__(self, items):
        self._items = list(items)
        self.cancelled = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self._items:
            raise StopAsyncIteration
        item = self._items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self):
        self.cancelled = True
        return True


class FakeStub:
    def __init__(self, **methods):
        self.requests = []
        self.metadata = []
        for name, result in methods.items():
            setattr(self, name, self._method(result))

    def _method(self, result):
        def call(request, metadata=None):
            self.requests.append(request)
            self.metadata.append(metadata)
            if isinstance(result, FakeStreamCall):
                return result

            async def respond():
                if isinstance(result, BaseException):
                    raise result
                return result

            return respond()

        return call


def client_with(service, stub, token=None):
    client = Herald("fake:1", auth_token=token)
    client._stubs = {service: stub}
    return client


def message(offset):
    return pb.SubscribeResponse(message=pb.Message(id=f"m{offset}", offset=offset, payload=b"p"))


async def test_subscribe_in_band_error_frame_raises_the_mapped_error_and_cancels():
    error_frame = pb.SubscribeResponse(status=pb.Status(code=5, message="stream gone"))
    call = FakeStreamCall([message(0), error_frame, message(1)])
    client = client_with("stream", FakeStub(Subscribe=call), token="tok")
    seen = []
    with pytest.raises(HeraldNotFoundError) as info:
        async for msg in client.stream.subscribe("t", "n", "s", "g", start_offset=0):
            seen.append(msg.offset)
    assert seen == [0]
    assert str(info.value) == "subscribe failed: stream gone"
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.details == "stream gone"
    assert call.cancelled


async def test_subscribe_unknown_in_band_code_stays_an_int():
    call = FakeStreamCall([pb.SubscribeResponse(status=pb.Status(code=503, message="odd"))])
    client = client_with("stream", FakeStub(Subscribe=call))
    with pytest.raises(HeraldError) as info:
        async for _ in client.stream.subscribe("t", "n", "s", "g"):
            pass
    assert type(info.value) is HeraldError
    assert info.value.code == 503


async def test_subscribe_rpc_error_mid_stream_is_wrapped():
    error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "server went away")
    call = FakeStreamCall([message(0), error])
    client = client_with("stream", FakeStub(Subscribe=call))
    with pytest.raises(HeraldConnectionError) as info:
        async for _ in client.stream.subscribe("t", "n", "s", "g"):
            pass
    assert str(info.value) == "subscribe failed: server went away"
    assert info.value.__cause__ is error
    assert call.cancelled


async def test_subscribe_sends_the_request_and_metadata():
    stub = FakeStub(Subscribe=FakeStreamCall([]))
    client = client_with("stream", stub, token="tok")
    async for _ in client.stream.subscribe("t", "n", "s", "g", partition=0, start_offset=-2):
        pass
    (request,) = stub.requests
    assert (request.resource_path.tenant, request.resource_path.namespace) == ("t", "n")
    assert (request.resource_path.resource_type, request.resource_path.name) == ("stream", "s")
    assert (request.consumer_group, request.start_offset) == ("g", -2)
    assert stub.metadata == [[("authorization", "Bearer tok")]]


async def test_reserve_without_job_is_none():
    stub = FakeStub(Reserve=pb.ReserveResponse(status=pb.Status(code=0, message="no jobs available")))
    assert await client_with("queue", stub).queue.reserve("t", "n", "q") is None


async def test_list_dlq_jobs_accepts_created_at_in_seconds():
    jobs = [pb.Job(id="d1", seq=0, payload=b"x", created_at=1704067200), pb.Job(id="d2", seq=1, payload=b"y")]
    stub = FakeStub(ListDLQJobs=pb.ListDLQJobsResponse(jobs=jobs))
    result = await client_with("queue", stub).queue.list_dlq_jobs("t", "n", "q")
    assert [j.created_at.year for j in result] == [2024, 1970]
    assert all(isinstance(j, Job) for j in result)
    assert stub.requests[0].max_jobs == 100


async def test_durations_are_sent_as_truncated_whole_seconds():
    from datetime import timedelta

    stub = FakeStub(
        Enqueue=pb.EnqueueResponse(job_id="j", seq=3),
        Receive=pb.ReceiveResponse(),
        NACK=pb.NACKResponse(),
    )
    client = client_with("queue", stub)
    assert await client.queue.enqueue("t", "n", "q", b"x", delay=timedelta(milliseconds=2900)) == ("j", 3)
    received = await client.queue.receive(
        "t", "n", "q", max_jobs=7,
        visibility_timeout=timedelta(milliseconds=999), long_poll_timeout=timedelta(seconds=5),
    )
    assert received == []
    await client.queue.nack("t", "n", "q", "j")
    enqueue, receive, nack = stub.requests
    assert enqueue.delay_seconds == 2
    assert (receive.max_jobs, receive.visibility_timeout_seconds, receive.long_poll_timeout_seconds) == (7, 0, 5)
    assert nack.delay_seconds == 0


@pytest.mark.parametrize(
    "call, operation",
    [
        (lambda c: c.kv.exists("t", "n", "s", "k"), "exists"),
        (lambda c: c.kv.delete("t", "n", "s", "k"), "delete"),
        (lambda c: c.queue.get_retry_policy("t", "n", "q"), "get_retry_policy"),
        (lambda c: c.queue.replay_dlq_job("t", "n", "q", "j"), "replay_dlq_job"),
        (lambda c: c.stream.get_consumer_group_state("t", "n", "s", "g"), "get_consumer_group_state"),
        (lambda c: c.readiness_check(), "readiness_check"),
    ],
)
async def test_errors_name_the_python_method(call, operation):
    error = FakeRpcError(grpc.StatusCode.INTERNAL, "boom")

    class AnyStub:
        def __getattr__(self, name):
            def method(request, metadata=None):
                async def fail():
                    raise error

                return fail()

            return method

    client = Herald("fake:1")
    client._stubs = {name: AnyStub() for name in ("health", "stream", "queue", "kv")}
    with pytest.raises(HeraldError) as info:
        await call(client)
    assert str(info.value) == f"{operation} failed: boom"
    assert info.value.__cause__ is error
