"""One client at the per-address connection cap cannot make the server slow for everyone.

A victim (another address) measures its round trip (a pyrt ``ping`` answered by a ``pong``)
while an attacker process (:mod:`tests.server.attacker`) holds as many connections as one
address may and attacks through them, in rounds: the victim's latency at rest, then under the
attack once it runs (its first moments are not counted: connections that all start at once are
a burst any server takes a moment to absorb), then at rest again. The attack must not raise the
victim's 99th percentile more than twice, on the same machine, in the same run.

A timing measurement, so opt-in (``pytest -m soak``), not part of ``make test``: on an idle
2-core machine p99 ratios of the passing attacks still land above 2x in some runs (one run of
seven attacks: trailers and pings over the bound, the next run under it).
"""

from __future__ import annotations

import asyncio
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.settings import Settings
from tests import REPO
from tests.faults.scenario import emit
from tests.server.attacker import CHANNEL
from tests.server.wsclient import Client, run

pytestmark = pytest.mark.soak

VICTIM = "127.0.0.2"
DEFAULTS = Settings()
ROUNDS = 6  # short phases, alternated: both see the same moments of a busy machine
PHASE = 1.5  # seconds of each phase measured
ONSET = 0.4  # seconds not counted at the start of each attack phase
VICTIMS = 4  # connections of the victim, each sending a ping every 1/PROBES_PER_SECOND s
PROBES_PER_SECOND = 100  # so 400 round trips a second: 3,600 per condition in all


class Attacker:
    """The attacker process: ``ready`` once its connections are open, then ``go`` and ``stop``."""

    def __init__(self, mode: str, url: str, connections: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.server.attacker", mode, url, str(connections)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.expect("ready", 180)

    def expect(self, word: str, timeout: float) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else None
        assert line == word, f"the attacker said {line!r}, not {word!r}, within {timeout} s"

    async def tell(self, command: str, answer: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        await asyncio.get_running_loop().run_in_executor(None, self.expect, answer, 120)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def probe(clients: list[Client], seconds: float) -> list[float]:
    """Round trips of the victim's connections for ``seconds``, each a steady client sending a
    ``ping`` every 1/PROBES_PER_SECOND s and waiting for its ``pong``, in ms."""
    loop = asyncio.get_running_loop()
    rtts: list[float] = []
    samples = int(seconds * PROBES_PER_SECOND)

    async def one(client: Client) -> None:
        start = loop.time()
        for n in range(samples):
            sent = loop.time()
            await client.send({"type": "ping", "t": n})
            await client.expect("pong", t=n, timeout=60)
            rtts.append((loop.time() - sent) * 1000)
            await asyncio.sleep(max(0.0, start + (n + 1) / PROBES_PER_SECOND - loop.time()))  # a pace

    await asyncio.gather(*(one(client) for client in clients))
    return rtts


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess()  # the defaults: the connection cap, the CPU budget per address
    yield proc
    proc.stop()


#: Attacks that still raise a victim's p99 over 2x: a known gap, reported (XFAIL / XPASS) rather
#: than hidden. Measured: deflate 2.0-2.9x and presence churn 4.3x at a load average of 6-10, both
#: over 2x on an idle 2-core machine. Not strict: the ratio varies around the bound run to run.
OPEN = pytest.mark.xfail(reason="victim p99 over 2x under this attack: an open gap (issue 22)", strict=False)
MODES = [
    "redaction",
    "trailers",
    "origin",
    pytest.param("deflate", marks=OPEN),
    pytest.param("presence", marks=OPEN),
    "channels",
    "pings",
]


@pytest.mark.parametrize("mode", MODES)
def test_one_client_at_the_connection_cap_does_not_double_anyone_elses_p99(
    server: ServerProcess, mode: str
) -> None:
    attacker = Attacker(mode, server.url, DEFAULTS.max_connections_per_ip)

    async def scenario() -> tuple[list[float], list[float]]:
        victims = [await Client.connect(server.ws_url, local_addr=(VICTIM, 0)) for _ in range(VICTIMS)]
        if mode == "presence":  # it follows the presence the attacker churns
            for victim in victims:
                await victim.send({"type": "subscribe", "channel": CHANNEL, "presence": True})
                await victim.expect("subscribed")
        rest: list[float] = []
        attacked: list[float] = []
        for _ in range(ROUNDS):
            rest += await probe(victims, PHASE)
            await attacker.tell("go", "going")
            await probe(victims, ONSET)
            attacked += await probe(victims, PHASE)
            await attacker.tell("stop", "stopped")
        for victim in victims:
            await victim.close()
        return rest, attacked

    try:
        rest, attacked = run(scenario())
    finally:
        attacker.close()
    ratio = p99(attacked) / p99(rest)
    emit(
        "abuse.latency.victim",
        mode=mode,
        rest_p99_ms=p99(rest),
        attacked_p99_ms=p99(attacked),
        ratio=ratio,
        samples=len(attacked),
    )
    assert ratio <= 2, f"{mode}: p99 {p99(rest):.2f} ms at rest, {p99(attacked):.2f} ms under attack"
