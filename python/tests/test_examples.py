"""Run every example script against a real server so the examples cannot rot."""

import subprocess
import sys
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
