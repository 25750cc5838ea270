"""The audit log's speed targets, measured on this machine.

1. **Durable appends**: a real ``audit-writer`` process (``python -m dockyard.serve audit-writer``) on a
   temporary data directory; client processes, each with threads that append one event at a time
   through the socket and wait for the receipt (as API request threads do). Every receipt means the
   entry was ``fdatasync``ed; the writer batches what arrives while it syncs. Target ≥ 5,000/s.
2. **Proofs at 10 million entries**: a log of 10,000,000 small entries is built on disk (the same
   files the writer keeps), then 2,000 inclusion proofs (random entry, random tree size) and 2,000
   consistency proofs (random sizes) are read from its stored hashes and verified. Target < 5 ms each.
3. **Verify of 1 million entries**: a log of 1,000,000 realistic events (written by the writer's own
   ``commit``, checkpointed every 10,000) is verified from its directory (``dockyard audit verify
   --log-dir``: JSON, order, timestamps, stored hashes, every checkpoint). Target < 1 min.

Prints one line:
``audit: 4,851 durable appends/s (4x32 clients); proofs at 10,000,000 entries: inclusion p99 0.57 ms
(max 13.04), consistency p99 0.54 ms (max 2.37); verify of 1,000,000 entries 19.2 s`` (a loaded 2-core
machine; docs/performance.md has the range).

    .venv/bin/python bench/audit.py [--appends N] [--proof-entries N] [--verify-entries N] [--dir D]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from dockyard._util.clock import FakeClock
from dockyard.audit.client import SocketAuditTrail
from dockyard.audit.event import Actor, AuditEvent
from dockyard.audit.log import AuditLog
from dockyard.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from dockyard.audit.verify import verify_log_dir
from dockyard.audit.writer import AuditWriter, WriterConfig
from dockyard.domain.requests import RequestContext

ORIGIN = "bench.dockyard.test/audit"


def sample_event(number: int) -> AuditEvent:
    return AuditEvent(
        action="config.update",
        actor=Actor.account(f"5f0c1c9e-4a8e-4c7e-9d55-{number % 1000:012d}"),
        target_type="config",
        target_id=f"0b8f5a4e-2d1c-4f6a-8e3b-{number % 5000:012d}",
        target_name=f"app-{number % 5000}",
        account_id=f"5f0c1c9e-4a8e-4c7e-9d55-{number % 1000:012d}",
        app_id=f"0b8f5a4e-2d1c-4f6a-8e3b-{number % 5000:012d}",
        context=RequestContext(
            "203.0.113.17", "heroku-cli/8.11.0 node-v20", f"req-{number:020d}", "api_key"
        ),
        details={"changes": {"DATABASE_URL": "sha256:" + "ab" * 32}, "release": number % 900},
    )


# --- 1. durable appends ------------------------------------------------------------------------------


def _client(socket_path: str, threads: int, per_thread: int, start: float) -> None:
    def work() -> None:
        with SocketAuditTrail(Path(socket_path), timeout=30) as trail:
            for number in range(per_thread):
                trail.append(sample_event(number))

    while time.time() < start:
        time.sleep(0.001)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def bench_appends(base: Path, total: int, processes: int, threads: int) -> tuple[float, int]:
    data = base / "appends"
    env = {
        **os.environ,
        "DOCKYARD_CONFIG": os.devnull,
        "DOCKYARD_DATA_DIR": str(data),
        "DOCKYARD_AUDIT_ORIGIN": ORIGIN,
    }
    socket_path = data / "run" / "audit.sock"
    writer = subprocess.Popen(
        [sys.executable, "-m", "dockyard.serve", "audit-writer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if time.monotonic() > deadline or writer.poll() is not None:
                raise RuntimeError("the audit writer did not start")
            time.sleep(0.05)
        per_thread = total // (processes * threads)
        start = time.time() + 0.5
        context = multiprocessing.get_context("fork")
        clients = [
            context.Process(target=_client, args=(str(socket_path), threads, per_thread, start))
            for _ in range(processes)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.time() - start
        appended = per_thread * processes * threads
    finally:
        writer.terminate()
        writer.wait(30)
    log = AuditLog(data / "audit", read_only=True)
    assert log.size >= appended + 1, (log.size, appended)  # every receipt is in the log
    log.close()
    return appended / elapsed, appended


# --- 2. proofs at 10 million entries -----------------------------------------------------------------


def build_big_log(directory: Path, entries: int) -> AuditLog:
    log = AuditLog(directory)
    batch = 200_000
    while log.size < entries:
        first = log.size
        count = min(batch, entries - first)
        log.append([b'{"seq":%d}' % n for n in range(first, first + count)])
    return log


def bench_proofs(directory: Path, entries: int, samples: int) -> tuple[list[float], list[float]]:
    log = build_big_log(directory, entries)
    rng = random.Random(9162)  # noqa: S311 - reproducible sample positions, not secrets
    roots: dict[int, bytes] = {}

    def root(size: int) -> bytes:
        if size not in roots:
            roots[size] = log.root(size)
        return roots[size]

    inclusion: list[float] = []
    for _ in range(samples):
        size = rng.randint(entries // 2, entries)
        index = rng.randrange(size)
        began = time.perf_counter()
        proof = log.inclusion_proof(index, size)
        inclusion.append((time.perf_counter() - began) * 1000)
        leaf = leaf_hash(b'{"seq":%d}' % index)
        assert verify_inclusion(index, size, leaf, proof, root(size))
    consistency: list[float] = []
    for _ in range(samples):
        second = rng.randint(2, entries)
        first = rng.randint(1, second - 1)
        began = time.perf_counter()
        proof = log.consistency_proof(first, second)
        consistency.append((time.perf_counter() - began) * 1000)
        assert verify_consistency(first, second, log.root(first), log.root(second), proof)
    log.close()
    return inclusion, consistency


# --- 3. verify of a million entries ------------------------------------------------------------------


def bench_verify(directory: Path, entries: int) -> float:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    writer = AuditWriter(
        WriterConfig(directory, directory.parent / "verify.sock", ORIGIN, clock=clock)
    )
    events = [sample_event(n).to_json() for n in range(10_000)]
    try:
        while writer.log.size < entries:
            count = min(10_000, entries - writer.log.size)
            writer.commit(events[:count])
            clock.advance(1)
            writer.publish_checkpoint()
        key = writer.verifier
    finally:
        writer.close()
    began = time.perf_counter()
    report = verify_log_dir(directory, key)
    elapsed = time.perf_counter() - began
    assert report.ok and report.checked == entries, report.summary()
    return elapsed


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=131_072)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--proof-entries", type=int, default=10_000_000)
    parser.add_argument("--proof-samples", type=int, default=2_000)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    parser.add_argument(
        "--dir", type=Path, help="work here and keep the logs (default: a temp dir)"
    )
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="dockyard-bench-audit-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        rate, appended = bench_appends(base, args.appends, args.processes, args.threads)
        sys.stderr.write(f"appends: {appended} in {appended / rate:.1f} s\n")
        inclusion, consistency = bench_proofs(base / "big", args.proof_entries, args.proof_samples)
        sys.stderr.write(
            f"inclusion ms: median {statistics.median(inclusion):.3f} p99 {p99(inclusion):.3f} "
            f"max {max(inclusion):.3f}; consistency ms: median "
            f"{statistics.median(consistency):.3f} p99 {p99(consistency):.3f} "
            f"max {max(consistency):.3f}\n"
        )
        verify_seconds = bench_verify(base / "verify", args.verify_entries)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(
        f"audit: {rate:,.0f} durable appends/s ({args.processes}x{args.threads} clients); proofs at "
        f"{args.proof_entries:,} entries: inclusion p99 {p99(inclusion):.2f} ms (max "
        f"{max(inclusion):.2f}), consistency p99 {p99(consistency):.2f} ms (max "
        f"{max(consistency):.2f}); verify of {args.verify_entries:,} entries {verify_seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
