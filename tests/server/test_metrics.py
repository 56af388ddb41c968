"""/metrics speaks Prometheus text and counts what users and operators care about."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.wsclient import Client, run


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_connections_messages_acks_dedup_and_errors_are_counted(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0")
    message_id = uuid.uuid4().hex

    async def scenario() -> None:
        client = await Client.connect(srv.ws_url)
        for _ in range(2):
            await client.send({"type": "message", "id": message_id, "data": 1})
            await client.expect("ack")
        await client.send("not json")
        await client.expect("error")
        m = samples(srv.url)
        assert m[("pyrt_connections", (("transport", "ws"),))] == 1
        assert m[("pyrt_messages_in_total", (("type", "message"),))] == 2
        assert m[("pyrt_acks_total", (("result", "ok"),))] == 2
        assert m[("pyrt_dedup_hits_total", (("kind", "message"),))] == 1
        assert m[("pyrt_errors_total", (("code", "bad_json"),))] == 1
        assert m[("pyrt_broker", (("kind", "memory"),))] == 1
        assert m[("process_resident_memory_bytes", ())] > 0
        await client.close()

    run(scenario())


def test_histograms_time_delivery_and_recovery_and_measure_frames_and_queues(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0")

    async def scenario() -> None:
        reader = await Client.connect(srv.ws_url)
        await reader.send({"type": "subscribe", "channel": "h"})
        await reader.expect("subscribed")
        writer = await Client.connect(srv.ws_url)
        for i in range(3):
            await writer.send({"type": "publish", "channel": "h", "id": f"p{i}", "data": "x" * 300})
            await writer.expect("ack")
        await reader.publications("h", 3)
        resumer = await Client.connect(srv.ws_url)
        await resumer.send({"type": "subscribe", "channel": "h", "since": "0"})
        await resumer.publications("h", 3)
        m = samples(srv.url)
        assert m[("pyrt_delivery_seconds_count", ())] == 3
        assert 0 <= m[("pyrt_delivery_seconds_sum", ())] < 3
        assert m[("pyrt_delivery_seconds_bucket", (("le", "+Inf"),))] == 3
        assert m[("pyrt_recover_seconds_count", ())] == 1
        # three publish frames of over 256 bytes; the subscribes and the others are smaller
        assert m[("pyrt_frame_bytes_bucket", (("direction", "in"), ("le", "256.0")))] >= 2
        over = m[("pyrt_frame_bytes_count", (("direction", "in"),))]
        assert over - m[("pyrt_frame_bytes_bucket", (("direction", "in"), ("le", "256.0")))] == 3
        assert m[("pyrt_connection_queue_bytes_gcount", ())] == 3
        for client in (reader, writer, resumer):
            await client.close()

    run(scenario())
