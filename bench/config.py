"""Benchmark sizes: the full run (``make bench``) and a tiny one for the smoke test."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Sizes:
    # client (Chromium)
    recv_n: int = 200_000  # messages per contender, split over recv_runs fresh connections
    recv_runs: int = 4
    rtt_n: int = 2_000
    binary: tuple[tuple[int, int], ...] = ((MIB, 5), (16 * MIB, 2))  # (bytes, repeats)
    sse_n: int = 100_000
    sse_runs: int = 2
    startup_reps: int = 3
    cycles: int = 1_000
    # server
    # subscribers of the fan-out curve; the first count is the headline (docs/benchmarks.md, 7)
    fanout_subscribers: tuple[int, ...] = (1_000, 5_000, 10_000)
    # publications per second: doubled each step from the first rate until delivery saturates,
    # then the sqrt(2) step below the first miss (headline: the highest rate whose step met the
    # objective: >= 99% delivered, p99 <= fanout_slo_p99_ms). Larger counts start at 1/8 of the
    # deliveries per second the first count sustained.
    fanout_first_rate: float = 20.0
    fanout_max_rate: float = 5120.0
    fanout_max_steps: int = 12
    fanout_slo_p99_ms: float = 250.0
    fanout_step_seconds: float = 3.0
    fanout_processes: int = 2  # load-client processes per transport
    idle_connections: int = 5_000
    # persist= with a long queue
    persist_queue: int = 10_000
    persist_writes: int = 200
    # flow control: acked messages drained against serve.py's default limits
    drain_messages: int = 5_000
    seq_acks_seconds: float = 5.0  # sequential send_with_ack against the same defaults


FULL = Sizes()

QUICK = Sizes(
    recv_n=400,
    recv_runs=2,
    rtt_n=50,
    binary=((64 * 1024, 1),),
    sse_n=300,
    sse_runs=1,
    startup_reps=1,
    cycles=5,
    fanout_subscribers=(10, 20),  # two counts: the curve's second count starts from the first's
    fanout_max_steps=1,
    fanout_step_seconds=0.5,
    fanout_processes=1,
    idle_connections=20,
    persist_queue=200,
    persist_writes=5,
    drain_messages=300,
    seq_acks_seconds=0.5,
)
