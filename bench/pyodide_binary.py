"""Run inside Pyodide by bench/pyodide_binary.mjs: pyrt's receive path on each binding, and a 1M
float32 array decoded from each form. Prints one JSON object per row."""

import array
import base64
import importlib
import json
import random
import sys
import time

sys.path.insert(0, "/src")
importlib.invalidate_caches()

from pyrt.wire import binary, codec  # noqa: E402
from pyrt.wire.frames import RawJSON  # noqa: E402
from pyrt.wire.ndarray import NDArray  # noqa: E402
from pyrt.wire.protocols import PyrtBinaryProtocol, PyrtProtocol  # noqa: E402

PAYLOADS = {
    "dashboard dict": {
        "n": 1234,
        "cpu": 0.731,
        "mem": 512.5,
        "ok": True,
        "host": "web-3",
        "tags": ["a", "b"],
    },
    "100 floats": [i * 0.37 for i in range(100)],
}


def rate(decode, frame, n=20_000, runs=3):
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            decode(frame)
        best = max(best, n / (time.perf_counter() - start))
    return best


for name, data in PAYLOADS.items():
    stored = codec.json_text(data)
    as_json = codec.encode_publication("metrics", "1-42", "message", RawJSON(stored))
    as_msgpack = binary.encode_publication("metrics", "1-42", "message", stored)
    j = rate(PyrtProtocol().decode, as_json)
    b = rate(PyrtBinaryProtocol().decode_batch, as_msgpack)
    print(
        json.dumps(
            {
                "payload": name,
                "decode_per_s": {"json": round(j), "msgpack": round(b)},
                "ratio": round(b / j, 2),
            }
        )
    )

numbers = array.array("f", (random.random() for _ in range(1_000_000)))
raw = numbers.tobytes()
stored = codec.json_text(binary.tag(NDArray("<f4", (len(numbers),), raw)))
frames = {
    "binary": binary.encode_publication("big", "1-1", "message", stored),
    "json list": codec.encode_publication(
        "big", "1-1", "message", RawJSON(codec.json_text(numbers.tolist()))
    ),
    "base64 in JSON": codec.encode_publication(
        "big", "1-1", "message", RawJSON(codec.json_text({"b64": base64.b64encode(raw).decode()}))
    ),
}
readers = {
    "binary": lambda f: PyrtBinaryProtocol().decode_batch(f)[0].data.data.cast("f"),
    "json list": lambda f: array.array("f", PyrtProtocol().decode(f).data),
    "base64 in JSON": lambda f: memoryview(base64.b64decode(PyrtProtocol().decode(f).data["b64"])).cast("f"),
}
for name, frame in frames.items():
    best = min(
        (lambda start: (readers[name](frame), time.perf_counter() - start)[1])(time.perf_counter())
        for _ in range(3)
    )
    print(
        json.dumps(
            {"1M float32 received as": name, "frame_bytes": len(frame), "decode_ms": round(best * 1000, 1)}
        )
    )
