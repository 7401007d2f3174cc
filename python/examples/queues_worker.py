"""Queues: enqueue jobs, then work them off with the reserve / process / ack-or-nack loop.

    python examples/queues_worker.py --endpoint 127.0.0.1:50051 [--token TOKEN] [--queue jobs]

Needs the queue default/test/queue/jobs (or the one given with --queue) provisioned on the server.
One job is made to fail on its first delivery, to show a NACK and the retry that follows.
"""

import argparse
import asyncio
import json
import sys
import time
from datetime import timedelta

from herald import Herald, HeraldError, HeraldFailedPreconditionError, Job

TENANT, NAMESPACE = "default", "test"


class ProcessingError(Exception):
    pass


def process(job: Job) -> str:
    """Pretend to do the work. Jobs marked ``simulate-failure: once`` fail on their first delivery."""
    task = json.loads(job.payload)
    if job.headers.get("simulate-failure") == "once" and job.attempts == 1:
        raise ProcessingError(f"transient failure while handling {task['task']}")
    return f"{task['task']} done"


async def run(endpoint: str, token: "str | None", queue: str) -> None:
    async with Herald(endpoint, auth_token=token) as client:
        mine = set()
        for i in range(4):
            headers = {"simulate-failure": "once"} if i == 2 else {}
            payload = json.dumps({"task": f"resize-image-{i}"}).encode()
            job_id, seq = await client.queue.enqueue(TENANT, NAMESPACE, queue, payload, headers=headers)
            mine.add(job_id)
            print(f"enqueued job {job_id} (seq {seq})")
        job_id, seq = await client.queue.enqueue(
            TENANT, NAMESPACE, queue, json.dumps({"task": "send-report"}).encode(), delay=timedelta(seconds=1)
        )
        mine.add(job_id)
        print(f"enqueued job {job_id} (seq {seq}) with a 1 s delay")

        deadline = time.monotonic() + 60
        while mine and time.monotonic() < deadline:
            # Long-poll: wait up to 5 s for a job instead of spinning on an empty queue.
            job = await client.queue.reserve(
                TENANT, NAMESPACE, queue,
                visibility_timeout=timedelta(seconds=30),
                long_poll_timeout=timedelta(seconds=5),
            )
            if job is None:
                print("no job available, polling again")
                continue
            try:
                result = process(job)
            except ProcessingError as err:
                print(f"job {job.id} failed on attempt {job.attempts}: {err}; nacking for a retry")
                try:
                    await client.queue.nack(TENANT, NAMESPACE, queue, job.id)
                except HeraldFailedPreconditionError:
                    # The job used up its attempts: the server moved it to the dead-letter queue.
                    print(f"job {job.id} moved to the dead-letter queue")
                    mine.discard(job.id)
                continue
            await client.queue.ack(TENANT, NAMESPACE, queue, job.id)
            mine.discard(job.id)
            print(f"acked job {job.id} (attempt {job.attempts}): {result}")

        if mine:
            raise SystemExit(f"gave up with {len(mine)} jobs unprocessed")
        stats = await client.queue.get_stats(TENANT, NAMESPACE, queue)
        print(
            f"queue stats: total {stats.total_jobs}, pending {stats.pending_jobs}, "
            f"in flight {stats.in_flight_jobs}, completed {stats.completed_jobs}, failed {stats.failed_jobs}"
        )
        print("all jobs processed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:50051", help="gRPC address of the Herald server")
    parser.add_argument("--token", default=None, help="bearer token, if the server requires one")
    parser.add_argument("--queue", default="jobs", help="queue name in default/test (default: jobs)")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.endpoint, args.token, args.queue))
    except HeraldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
