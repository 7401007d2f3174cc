#!/usr/bin/env python3
"""The Pulsar Relay benchmark suite (`benchmarks/run_benchmarks.py`), re-implemented from compat/pulsar-relay.md §6.

The eleven scenarios of §6.2, in the same order, with the same operations, pacing, topics and payloads, measured the
same way (per-scenario duration, operations, throughput = operations / duration, latency avg/p50/p95/p99, errors;
exceptions are counted as errors and the suite continues), followed by the same summary table. The one difference
from the original is how it is pointed at a server: the original has module constants (`BASE_URL =
"http://localhost:8080"`, `ws://localhost:8080/ws`); this one takes `--url`.

WebSocket authentication: the original connects to `ws://<host>/ws?token=<jwt>` with no subprotocol and no Origin
header, which only a server with the benchmark profile of §6.4 accepts (Herald with PULSAR_WS_ALLOW_QUERY_TOKEN=true).
`--ws-auth subprotocol` offers the contract's `bearer`, `bearer.<jwt>` subprotocols instead (§3.1), which the real
pulsar-relay 0.2.1 also accepts, so the same scenarios can be run against it.

    python scripts/relay_suite.py --url http://127.0.0.1:8080 [--ws-auth query|subprotocol] [--json FILE|-]

Needs httpx and websockets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field

import httpx
import websockets

USERNAME = "admin"
PASSWORD = "12345678"


@dataclass
class BenchmarkResult:
    name: str
    operations: int
    duration: float  # seconds
    latencies: list[float] = field(default_factory=list)  # milliseconds
    errors: int = 0

    @property
    def throughput(self) -> float:
        return self.operations / self.duration if self.duration > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        values = sorted(self.latencies)
        k = (len(values) - 1) * q
        lo, hi = math.floor(k), math.ceil(k)
        return values[lo] + (values[hi] - values[lo]) * (k - lo)

    @property
    def avg(self) -> float:
        return sum(self.latencies) / len(self.latencies) if self.latencies else 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "operations": self.operations,
            "duration_s": round(self.duration, 4),
            "throughput": round(self.throughput, 2),
            "avg_ms": round(self.avg, 3),
            "p50_ms": round(self.percentile(0.50), 3),
            "p95_ms": round(self.percentile(0.95), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "errors": self.errors,
        }


class BenchmarkRunner:
    def __init__(self, base_url: str, ws_url: str, ws_auth: str = "query"):
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url
        self.ws_auth = ws_auth
        self.token: str | None = None
        self.client: httpx.AsyncClient | None = None
        self.results: list[BenchmarkResult] = []
        self.broadcast_received = 0
        self.broadcast_expected = 0

    # -- plumbing -----------------------------------------------------------------------------------------------

    async def login(self) -> None:
        async with httpx.AsyncClient(timeout=30.0) as c:
            r = await c.post(f"{self.base_url}/auth/login", data={"username": USERNAME, "password": PASSWORD})
            r.raise_for_status()
            self.token = r.json()["access_token"]

    async def check_health(self) -> None:
        r = await self.client.get("/health")
        r.raise_for_status()

    def ws_connect(self):
        if self.ws_auth == "subprotocol":
            return websockets.connect(self.ws_url, subprotocols=["bearer", f"bearer.{self.token}"])
        return websockets.connect(f"{self.ws_url}?token={self.token}")

    async def publish(self, topic: str, payload: dict) -> httpx.Response:
        return await self.client.post("/api/v1/messages", json={"topic": topic, "payload": payload})

    def record(self, result: BenchmarkResult) -> BenchmarkResult:
        self.results.append(result)
        print(f"\n{result.name}")
        print(f"  Operations: {result.operations}")
        print(f"  Duration: {result.duration:.2f}s")
        print(f"  Throughput: {result.throughput:.2f} ops/s")
        print(
            f"  Latency (avg/p50/p95/p99): {result.avg:.2f} / {result.percentile(0.5):.2f} / "
            f"{result.percentile(0.95):.2f} / {result.percentile(0.99):.2f} ms"
        )
        if result.errors:
            print(f"  Errors: {result.errors}")
        return result

    # -- 1. Message Ingestion (Single) ----------------------------------------------------------------------------

    async def bench_single_ingestion(self, count: int = 1000) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            try:
                r = await self.publish(f"benchmark-topic-{i % 10}", {"index": i, "data": f"message-{i}"})
                if r.status_code == 201:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    ok += 1
                else:
                    errors += 1
            except Exception:
                errors += 1
        duration = time.perf_counter() - start
        return self.record(BenchmarkResult("Message Ingestion (Single)", ok, duration, latencies, errors))

    # -- 2. Bulk Message Ingestion (50/batch) ---------------------------------------------------------------------

    async def bench_bulk_ingestion(self, batches: int = 100, batch_size: int = 50) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0
        start = time.perf_counter()
        for b in range(batches):
            messages = [
                {"topic": f"benchmark-bulk-{i % 5}", "payload": {"batch": b, "index": i, "data": f"bulk-message-{i}"}}
                for i in range(batch_size)
            ]
            t0 = time.perf_counter()
            try:
                r = await self.client.post("/api/v1/messages/bulk", json={"messages": messages})
                if r.status_code == 207:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    ok += batch_size
                else:
                    errors += 1
            except Exception:
                errors += 1
        duration = time.perf_counter() - start
        return self.record(
            BenchmarkResult(f"Bulk Message Ingestion ({batch_size}/batch)", ok, duration, latencies, errors)
        )

    # -- 3. Concurrent Ingestion (concurrency=20) -----------------------------------------------------------------

    async def bench_concurrent_ingestion(self, count: int = 1000, concurrency: int = 20) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0

        async def one(i: int) -> None:
            nonlocal errors, ok
            t0 = time.perf_counter()
            try:
                r = await self.publish(f"concurrent-topic-{i % 20}", {"index": i, "data": f"concurrent-message-{i}"})
                if r.status_code == 201:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    ok += 1
                else:
                    errors += 1
            except Exception:
                errors += 1

        start = time.perf_counter()
        for wave in range(0, count, concurrency):
            await asyncio.gather(*(one(i) for i in range(wave, min(wave + concurrency, count))))
        duration = time.perf_counter() - start
        return self.record(
            BenchmarkResult(f"Concurrent Ingestion (concurrency={concurrency})", ok, duration, latencies, errors)
        )

    # -- 4. WebSocket Subscribe (50 clients) ----------------------------------------------------------------------

    async def bench_websocket_subscribe(self, clients: int = 50) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0

        async def one(i: int) -> None:
            nonlocal errors, ok
            t0 = time.perf_counter()
            try:
                async with self.ws_connect() as ws:
                    await ws.send(
                        json.dumps({"type": "subscribe", "topics": [f"ws-topic-{i % 5}"], "client_id": f"bench-client-{i}"})
                    )
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    if msg.get("type") == "subscribed":
                        latencies.append((time.perf_counter() - t0) * 1000)
                        ok += 1
                    else:
                        errors += 1
            except Exception:
                errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(clients)))
        duration = time.perf_counter() - start
        return self.record(BenchmarkResult(f"WebSocket Subscribe ({clients} clients)", ok, duration, latencies, errors))

    # -- shared by the delivery scenarios ---------------------------------------------------------------------------

    async def ws_consumer(self, topic: str, client_id: str, expected: int, latencies: list[float], timeout: float = 5.0) -> int:
        """Subscribes, takes the first frame as the confirmation (type not checked), then reads up to `expected`
        frames, each within `timeout` seconds; returns how many messages arrived."""
        received = 0
        async with self.ws_connect() as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": [topic], "client_id": client_id}))
            await asyncio.wait_for(ws.recv(), timeout=timeout)
            for _ in range(expected):
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=timeout)
                except asyncio.TimeoutError:
                    break
                now = time.time()
                data = json.loads(raw)
                if data.get("type") == "message":
                    sent_at = data.get("payload", {}).get("sent_at")
                    if sent_at is not None:
                        latencies.append((now - sent_at) * 1000)
                    received += 1
        return received

    async def producer(self, topic: str, count: int, interval: float, producer_id: int) -> int:
        errors = 0
        for seq in range(count):
            try:
                r = await self.publish(topic, {"producer": producer_id, "sequence": seq, "sent_at": time.time()})
                if r.status_code != 201:
                    errors += 1
            except Exception:
                errors += 1
            await asyncio.sleep(interval)
        return errors

    async def poll_consumer(self, topic: str, expected: int, latencies: list[float], done: asyncio.Event) -> tuple[int, int]:
        """Loops `POST /messages/poll` with `since` = the last id received (null on the first poll), timeout 5,
        until `expected` messages arrived or a poll comes back empty after the producers finished."""
        received, errors, last_id = 0, 0, None
        while received < expected:
            body = {"topics": [topic], "since": {topic: last_id} if last_id else None, "timeout": 5}
            try:
                r = await self.client.post("/messages/poll", json=body)
            except Exception:
                errors += 1
                if done.is_set():
                    break
                continue
            if r.status_code != 200:
                errors += 1
                if done.is_set():
                    break
                await asyncio.sleep(0.1)
                continue
            now = time.time()
            messages = r.json().get("messages") or []
            for m in messages:
                sent_at = (m.get("payload") or {}).get("sent_at")
                if sent_at is not None:
                    latencies.append((now - sent_at) * 1000)
                received += 1
                last_id = m.get("message_id", last_id)
            if not messages and done.is_set():
                break
        return received, errors

    # -- 5. Message Delivery (E2E, 20 clients) ----------------------------------------------------------------------

    async def bench_e2e_delivery(self, consumers: int = 20, producers: int = 5, per_producer: int = 50) -> BenchmarkResult:
        latencies: list[float] = []
        errors = 0
        start = time.time()
        tasks = [
            asyncio.create_task(self.ws_consumer(f"delivery-topic-{i % 5}", f"e2e-consumer-{i}", per_producer, latencies))
            for i in range(consumers)
        ]
        await asyncio.sleep(0.5)
        producer_errors = await asyncio.gather(
            *(self.producer(f"delivery-topic-{p}", per_producer, 0.01, p) for p in range(producers)), return_exceptions=True
        )
        errors += sum(e if isinstance(e, int) else 1 for e in producer_errors)
        received = 0
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(r, BaseException):
                errors += 1
            else:
                received += r
        duration = time.time() - start
        return self.record(
            BenchmarkResult(f"Message Delivery (E2E, {consumers} clients)", received, duration, latencies, errors)
        )

    # -- 6. Broadcast (30 clients, 50 msgs) -------------------------------------------------------------------------

    async def bench_broadcast(self, subscribers: int = 30, messages: int = 50) -> BenchmarkResult:
        latencies: list[float] = []
        errors = 0
        topic = "broadcast-benchmark"
        tasks = [
            asyncio.create_task(self.ws_consumer(topic, f"broadcast-client-{i}", messages, latencies))
            for i in range(subscribers)
        ]
        await asyncio.sleep(1.5)

        async def publish_one(seq: int) -> int:
            try:
                r = await self.publish(topic, {"sequence": seq, "sent_at": time.time(), "data": f"broadcast-{seq}"})
                return 0 if r.status_code == 201 else 1
            except Exception:
                return 1

        start = time.time()
        errors += sum(await asyncio.gather(*(publish_one(j) for j in range(messages))))
        received = 0
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(r, BaseException):
                errors += 1
            else:
                received += r
        duration = time.time() - start
        self.broadcast_received, self.broadcast_expected = received, subscribers * messages
        print(f"\nTotal messages received: {received}/{subscribers * messages}")
        return self.record(
            BenchmarkResult(f"Broadcast ({subscribers} clients, {messages} msgs)", received, duration, latencies, errors)
        )

    # -- 7. Long Polling Basic (1s timeout) ------------------------------------------------------------------------

    async def bench_long_polling_basic(self, polls: int = 10) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0
        start = time.perf_counter()
        for i in range(polls):
            t0 = time.perf_counter()
            try:
                r = await self.client.post("/messages/poll", json={"topics": [f"poll-topic-{i % 5}"], "timeout": 1})
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    ok += 1
                else:
                    errors += 1
            except Exception:
                errors += 1
        duration = time.perf_counter() - start
        return self.record(BenchmarkResult("Long Polling Basic (1s timeout)", ok, duration, latencies, errors))

    # -- 8. Long Polling Concurrent (20 clients) --------------------------------------------------------------------

    async def bench_long_polling_concurrent(self, clients: int = 20) -> BenchmarkResult:
        latencies, errors, ok = [], 0, 0

        async def one(i: int) -> None:
            nonlocal errors, ok
            t0 = time.perf_counter()
            try:
                r = await self.client.post(
                    "/messages/poll", json={"topics": [f"concurrent-poll-{i % 10}"], "timeout": 2}
                )
                if r.status_code == 200:
                    latencies.append((time.perf_counter() - t0) * 1000)
                    ok += 1
                else:
                    errors += 1
            except Exception:
                errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(clients)))
        duration = time.perf_counter() - start
        return self.record(BenchmarkResult(f"Long Polling Concurrent ({clients} clients)", ok, duration, latencies, errors))

    # -- 9. Long Polling Delivery (E2E, 10 clients) -----------------------------------------------------------------

    async def bench_long_polling_delivery(self, pollers: int = 10, producers: int = 5, per_producer: int = 20) -> BenchmarkResult:
        latencies: list[float] = []
        errors = 0
        done = asyncio.Event()
        start = time.time()
        tasks = [
            asyncio.create_task(self.poll_consumer(f"poll-delivery-{i % 5}", per_producer, latencies, done))
            for i in range(pollers)
        ]
        await asyncio.sleep(0.5)
        producer_errors = await asyncio.gather(
            *(self.producer(f"poll-delivery-{p}", per_producer, 0.05, p) for p in range(producers)), return_exceptions=True
        )
        errors += sum(e if isinstance(e, int) else 1 for e in producer_errors)
        done.set()
        received = 0
        for r in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(r, BaseException):
                errors += 1
            else:
                received += r[0]
                errors += r[1]
        duration = time.time() - start
        return self.record(
            BenchmarkResult(f"Long Polling Delivery (E2E, {pollers} clients)", received, duration, latencies, errors)
        )

    # -- 10. WebSocket vs long polling, one consumer each -----------------------------------------------------------

    async def bench_websocket_comparison(self, messages: int = 50) -> BenchmarkResult:
        latencies: list[float] = []
        errors = 0
        topic = "comparison-websocket"
        start = time.time()
        task = asyncio.create_task(self.ws_consumer(topic, "comparison-ws-client", messages, latencies))
        await asyncio.sleep(0.5)
        try:
            errors += await self.producer(topic, messages, 0.02, 0)
        except Exception:
            errors += 1
        received = 0
        try:
            received = await task
        except Exception:
            errors += 1
        duration = time.time() - start
        return self.record(BenchmarkResult("WebSocket Delivery (comparison)", received, duration, latencies, errors))

    async def bench_polling_comparison(self, messages: int = 50) -> BenchmarkResult:
        latencies: list[float] = []
        errors = 0
        topic = "comparison-polling"
        done = asyncio.Event()
        start = time.time()
        task = asyncio.create_task(self.poll_consumer(topic, messages, latencies, done))
        await asyncio.sleep(0.5)
        try:
            errors += await self.producer(topic, messages, 0.02, 0)
        except Exception:
            errors += 1
        done.set()
        received = 0
        try:
            received, poll_errors = await task
            errors += poll_errors
        except Exception:
            errors += 1
        duration = time.time() - start
        return self.record(BenchmarkResult("Long Polling Delivery (comparison)", received, duration, latencies, errors))

    # -- the run ------------------------------------------------------------------------------------------------------

    async def run_all(self) -> None:
        await self.login()
        async with httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        ) as client:
            self.client = client
            await self.check_health()
            print("=" * 80)
            print(f"Pulsar Relay benchmark suite against {self.base_url} (WebSocket auth: {self.ws_auth})")
            print("=" * 80)
            scenarios = [
                ("Message Ingestion (Single)", self.bench_single_ingestion),
                ("Bulk Message Ingestion (50/batch)", self.bench_bulk_ingestion),
                ("Concurrent Ingestion (concurrency=20)", self.bench_concurrent_ingestion),
                ("WebSocket Subscribe (50 clients)", self.bench_websocket_subscribe),
                ("Message Delivery (E2E, 20 clients)", self.bench_e2e_delivery),
                ("Broadcast (30 clients, 50 msgs)", self.bench_broadcast),
                ("Long Polling Basic (1s timeout)", self.bench_long_polling_basic),
                ("Long Polling Concurrent (20 clients)", self.bench_long_polling_concurrent),
                ("Long Polling Delivery (E2E, 10 clients)", self.bench_long_polling_delivery),
                ("WebSocket Delivery (comparison)", self.bench_websocket_comparison),
                ("Long Polling Delivery (comparison)", self.bench_polling_comparison),
            ]
            for name, bench in scenarios:
                try:
                    await bench()
                except Exception as e:  # the suite continues
                    print(f"\n{name} failed: {e!r}")
                    self.record(BenchmarkResult(name, 0, 0.0, [], 1))
        self.print_summary()

    def print_summary(self) -> None:
        print("\n" + "=" * 118)
        print("SUMMARY")
        print("=" * 118)
        header = f"{'Benchmark':<42} {'Ops':>7} {'Duration':>9} {'Throughput':>13} {'Avg':>9} {'P50':>9} {'P95':>9} {'P99':>9} {'Errors':>6}"
        print(header)
        print("-" * len(header))
        for r in self.results:
            print(
                f"{r.name:<42} {r.operations:>7} {r.duration:>8.2f}s {r.throughput:>9.0f} ops/s "
                f"{r.avg:>7.2f}ms {r.percentile(0.5):>7.2f}ms {r.percentile(0.95):>7.2f}ms {r.percentile(0.99):>7.2f}ms "
                f"{r.errors:>6}"
            )
        print("=" * 118)

    def as_json(self) -> dict:
        return {
            "url": self.base_url,
            "ws_auth": self.ws_auth,
            "results": [r.as_dict() for r in self.results],
            "broadcast_received": self.broadcast_received,
            "broadcast_expected": self.broadcast_expected,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8080", help="base URL (default http://localhost:8080)")
    parser.add_argument(
        "--ws-auth",
        choices=("query", "subprotocol"),
        default="query",
        help="WebSocket authentication: the original suite's ?token= (default) or the bearer subprotocols",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-' for stdout, last)")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    ws_url = ("wss://" + base[len("https://"):] if base.startswith("https://") else "ws://" + base.split("://", 1)[-1]) + "/ws"
    runner = BenchmarkRunner(base, ws_url, args.ws_auth)
    asyncio.run(runner.run_all())
    if args.json:
        text = json.dumps(runner.as_json())
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
