"""A hostile Open Inference Protocol server for the client's tests: slow, huge, compressed,
nested, numeric and random garbage, flaky. Run as ``python -m tests.hostile_server``.

Models (``/v2/models/NAME``): ``slow`` drips its answer a byte every 0.3 s; ``gzipbomb``
sends 256 KiB of gzip that inflates to 256 MiB; ``huge`` streams 200 MB without a length;
``deep`` nests 200,000 lists; ``bignum`` answers a 400-digit number; ``retryafter`` answers
503 with ``Retry-After: 3600``; ``flakyN`` answers N requests, then 503 forever; ``fuzzS``
answers a garbled answer drawn with seed S (:func:`garbled`); ``deepmeta`` and ``bignummeta``
garble the metadata. Every other request is answered validly: 10 classes, probabilities 0.1.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from typing import Any

K = 10
METADATA = {
    "name": "m", "versions": ["1"], "platform": "hostile",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, K]}],
}  # fmt: skip


def valid_answer(n: int) -> dict[str, Any]:
    return {"outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [n, K], "data": [0.1] * (n * K)}]}


MUTATIONS = (
    "shape", "dtype", "nan", "negative", "string", "ragged", "short", "bigint", "inf", "no-outputs",
    "outputs-not-list", "outputs-empty", "truncated", "not-utf8", "empty", "html", "deep", "sum-off", "status",
    "labels-out-of-range", "null",
)  # fmt: skip


def garbled(seed: int, n: int) -> tuple[int, bytes]:
    """(status, body) of answer ``seed``: a valid answer for n rows broken one way, always beyond use."""
    rng = random.Random(seed)
    kind = MUTATIONS[seed % len(MUTATIONS)]
    answer = valid_answer(n)
    out = answer["outputs"][0]
    text = None
    if kind == "shape":
        out["shape"] = rng.choice([[n], [n, K - 1], [n + 1, K], [-1, K], ["a", K], None, [2**40, 2**40], [n, K, 1]])
    elif kind == "dtype":
        out["datatype"] = rng.choice(["BYTES", "FP8", 5, None, "BOOL", ""])
    elif kind == "nan":
        out["data"][rng.randrange(n * K)] = float("nan")
    elif kind == "negative":
        out["data"][rng.randrange(n * K)] = -0.5
    elif kind == "string":
        out["data"][rng.randrange(n * K)] = rng.choice(["x", "", "0.1e", "∞"])
    elif kind == "ragged":
        out["data"] = [[0.1] * rng.randint(1, K) for _ in range(n)]
    elif kind == "short":
        out["data"] = out["data"][: rng.randrange(n * K)]
    elif kind == "bigint":
        text = json.dumps(answer).replace("0.1", "1" + "0" * rng.randint(21, 5000), 1)
    elif kind == "inf":
        text = json.dumps(answer).replace("0.1", "1e" + str(rng.randint(309, 99999)), 1)
    elif kind == "no-outputs":
        answer = {"model_name": "m"}
    elif kind == "outputs-not-list":
        answer = {"outputs": rng.choice([{"data": 1}, "x", 3, None])}
    elif kind == "outputs-empty":
        answer = {"outputs": []}
    elif kind == "truncated":
        full = json.dumps(answer)
        text = full[: rng.randrange(1, len(full) - 1)]
    elif kind == "not-utf8":
        raw = json.dumps(answer).encode()
        i = rng.randrange(len(raw))
        return 200, raw[:i] + b"\xff\xfe" + raw[i:]
    elif kind == "empty":
        return 200, b""
    elif kind == "html":
        return 200, b"<html><body>502 Bad Gateway</body></html>"
    elif kind == "deep":
        return 200, b'{"outputs": ' + b"[" * rng.randint(5000, 200000)
    elif kind == "sum-off":
        out["data"] = [0.2] * (n * K)
    elif kind == "status":
        return rng.choice([400, 404, 409, 413, 418, 422, 501, 505]), b"\x00garbage \xff" * rng.randint(0, 50)
    elif kind == "labels-out-of-range":
        answer = {"outputs": [{"name": "label", "datatype": "INT64", "shape": [n], "data": [K + 3] * n}]}
    elif kind == "null":
        answer = None  # type: ignore[assignment]
    return 200, (text if text is not None else json.dumps(answer)).encode()


async def _body(receive) -> bytes:  # type: ignore[no-untyped-def]
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


def _rows(body: bytes) -> int:
    try:
        return int(json.loads(body)["inputs"][0]["shape"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return 1


def hostile_app():  # type: ignore[no-untyped-def]
    bomb = gzip.compress(b" " * (256 << 20), compresslevel=9)
    served: dict[str, int] = {}

    async def send_all(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:  # type: ignore[no-untyped-def]
        base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        parts = scope["path"].strip("/").split("/")
        if parts[:2] == ["v2", "health"]:
            return await send_all(send, 200, b'{"ready": true}')
        name = parts[2] if len(parts) > 2 else ""
        if scope["method"] == "GET":
            if name == "deepmeta":
                return await send_all(send, 200, b"[" * 200000)
            if name == "bignummeta":
                return await send_all(send, 200, b'{"inputs": [{"shape": [1' + b"0" * 400 + b"]}]}")
            return await send_all(send, 200, json.dumps({**METADATA, "name": name}).encode())
        n = _rows(await _body(receive))
        served[name] = served.get(name, 0) + 1
        if name == "slow":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            for byte in json.dumps(valid_answer(n)).encode():
                await asyncio.sleep(0.3)
                await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
            return await send({"type": "http.response.body", "body": b""})
        if name == "gzipbomb":
            return await send_all(send, 200, bomb, [(b"content-encoding", b"gzip")])
        if name == "huge":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            chunk = b" " * (1 << 20)
            for _ in range(200):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            return await send({"type": "http.response.body", "body": b""})
        if name == "deep":
            return await send_all(send, 200, b'{"outputs": ' + b"[" * 50000)
        if name == "bignum":
            return await send_all(send, 200, json.dumps(valid_answer(n)).replace("0.1", "1" + "0" * 400, 1).encode())
        if name == "retryafter":
            return await send_all(send, 503, b'{"error": "come back later"}', [(b"retry-after", b"3600")])
        if name.startswith("flaky") and served[name] > int(name[5:]):
            return await send_all(send, 503, b'{"error": "down"}')
        if name.startswith("fuzz"):
            status, body = garbled(int(name[4:]), n)
            return await send_all(send, status, body)
        return await send_all(send, 200, json.dumps(valid_answer(n)).encode())

    return app


if __name__ == "__main__":
    from uapfp.serve import run_app

    run_app(
        hostile_app(), port=0, on_ready=lambda base: print(f"serving hostile models at {base}/v2/models/m", flush=True)
    )
