"""Run every example script against a real server so the examples cannot rot."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from herald.testing import HeraldServer

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "example-token"
RESOURCES = [
    "default/test/stream/orders",
    "default/test/queue/jobs",
    "default/test/queue/orders",
    "default/test/kv/cache",
]


@pytest.fixture(scope="module")
def example_server(herald_binary: str) -> Iterator[HeraldServer]:
    with HeraldServer(herald_binary, tokens=[TOKEN], resources=RESOURCES) as server:
        yield server


def run_example(server: HeraldServer, name: str, *extra: str) -> str:
    cmd: List[str] = [
        sys.executable, str(EXAMPLES / name), "--endpoint", server.grpc_endpoint, "--token", TOKEN, *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result.stdout


def test_streams_example(example_server):
    out = run_example(example_server, "streams.py")
    assert "wrote 3 events at offsets [0, 1, 2]" in out
    assert "read offset 2:" in out
    assert "processed offset 2: order-2" in out
    assert "committed offset 2, latest offset 2, lag 0" in out
    # Running it again appends after the first run and still finishes.
    assert "wrote 3 events at offsets [3, 4, 5]" in run_example(example_server, "streams.py")


def test_queues_worker_example(example_server):
    out = run_example(example_server, "queues_worker.py")
    assert out.count("enqueued job") == 5
    assert "failed on attempt 1" in out
    assert "(attempt 2): resize-image-2 done" in out
    assert "send-report done" in out
    assert "completed 5, failed 0" in out
    assert "all jobs processed" in out
    assert "all jobs processed" in run_example(example_server, "queues_worker.py", "--queue", "orders")


def test_kv_example(example_server):
    out = run_example(example_server, "kv.py")
    assert "get user:1 -> {'name': 'Ada'}" in out
    assert "keys with prefix 'user:' -> ['user:1', 'user:2']" in out
    assert "session:abc expired" in out
    assert "deleted config:theme, exists -> False" in out


def test_example_reports_auth_failure(example_server):
    cmd = [sys.executable, str(EXAMPLES / "kv.py"), "--endpoint", example_server.grpc_endpoint, "--token", "wrong"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "error: set failed" in result.stderr


def _read_line(process: "subprocess.Popen[str]", timeout: float) -> str:
    """The next line the process prints, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no output within {timeout} s")
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if ready:
            return process.stdout.readline()


def test_echo_service_and_client_examples(nats_url):
    # The service takes the URL as an argument, the client from $HERALD_NATS_URL.
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "echo_service.py"), nats_url, "--node", "echo1", "--node", "echo2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _read_line(service, 30)
        assert first.startswith(f"echo service ready on {nats_url}: nodes echo1, echo2"), (
            first + (service.stderr.read() if service.poll() is not None else "")
        )
        env = dict(os.environ, HERALD_NATS_URL=nats_url)
        client = subprocess.run(
            [sys.executable, str(EXAMPLES / "echo_client.py"), "--node", "echo2", "--count", "4"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
        )
        assert client.returncode == 0, f"--- stdout ---\n{client.stdout}\n--- stderr ---\n{client.stderr}"
        lines = client.stdout.splitlines()
        replies = [line for line in lines if line.startswith("reply ")]
        assert len(replies) == 4
        assert replies[0].startswith('reply 1: {"text": "Hello, Echo! Message #1", "id": 1} (count 1,')
        assert replies[3].startswith('reply 4: {"text": "Hello, Echo! Message #4", "id": 4} (count 4,')
        assert 'output 4: {"text": "Hello, Echo! Message #4", "id": 4}' in lines
        assert lines[-1] == "received 4 replies from echo2"

        # A node nobody serves: the client reports the error and exits with 1.
        missing = subprocess.run(
            [sys.executable, str(EXAMPLES / "echo_client.py"), nats_url, "--node", "ghost", "--count", "1"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert missing.returncode == 1 and "no responders" in missing.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            out, err = service.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            out, err = service.communicate()
    assert service.returncode == 0, err
    assert "node echo1 answered 0 requests" in out and "node echo2 answered 4 requests" in out
    assert out.rstrip().endswith("echo service stopped")
