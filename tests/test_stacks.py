"""The Open Inference Protocol as real stacks speak it: NVIDIA's tritonclient against uapfp serve,
and a server that bounds what it reads (no mocks: real clients, real servers on loopback)."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http

from uapfp.serve import ServerProcess
from uapfp.suspects.spec import card_suspect


@pytest.fixture(scope="module")
def served(tiny_zoo, tiny_kit):
    """A held-out piracy model of the tiny zoo behind uapfp serve: (server, card)."""
    held = set(tiny_kit.info["models"]["heldout"])
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy" and c["id"] in held)
    with ServerProcess.serve(card["_path"]) as proc:
        yield proc, card


def test_tritonclient_with_its_defaults_gets_the_local_probabilities(served):
    proc, card = served
    base = proc.url.split("/v2/")[0].removeprefix("http://")
    client = tritonclient.http.InferenceServerClient(url=base)
    assert client.is_server_live() and client.is_server_ready()
    for version in ("", "1"):
        assert client.is_model_ready(card["id"], model_version=version)
        meta = client.get_model_metadata(card["id"], model_version=version)
        assert meta["inputs"][0]["name"] == "input" and meta["versions"] == ["1"]
    x = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    local = card_suspect(card)(x).numpy()
    for binary in (True, False):  # the client's default is binary data, both ways
        inp = tritonclient.http.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x.numpy(), binary_data=binary)
        for version in ("", "1"):
            result = client.infer(card["id"], [inp], model_version=version)
            assert np.array_equal(result.as_numpy("probabilities"), local), (binary, version)
            # outputs asked by name, in binary or as JSON
            asked = [tritonclient.http.InferRequestedOutput("label", binary_data=binary)]
            result = client.infer(card["id"], [inp], outputs=asked, model_version=version)
            assert np.array_equal(result.as_numpy("label"), local.argmax(1)) and result.as_numpy("probabilities") is None
    with pytest.raises(Exception, match="no version '2'"):
        client.infer(card["id"], [inp], model_version="2")
    client.close()


def _vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM"))


def test_the_server_bounds_every_request(served):
    proc, card = served
    url = proc.url
    good = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.5] * 784}
    cases = [
        (json.dumps({"inputs": [{**good, "shape": [0, 1, 28, 28], "data": []}]}).encode(), 400, "size 0"),
        (b'{"inputs": ' + b"[" * 100000, 400, "nested too deeply"),
        (json.dumps({"inputs": [{**good, "datatype": "BYTES"}]}).encode(), 400, "datatype"),
        (json.dumps({"inputs": [{**good, "datatype": "INT64", "data": [1] * 784}]}).encode(), 400, "FP32"),
        (json.dumps({"inputs": [{**good, "data": ["x"] * 784}]}).encode(), 400, "not FP32 numbers"),
        (json.dumps({"inputs": [{**good, "shape": [2**40, 1, 28, 28]}]}).encode(), 400, "more than"),
        (json.dumps({"inputs": [good], "outputs": [{"name": "logits"}]}).encode(), 400, "unknown output"),
        (b"x" * (64 << 20), 413, "larger than"),
    ]
    for body, status, message in cases:
        r = httpx.post(f"{url}/infer", content=body, timeout=30)
        assert r.status_code == status and message in r.json()["error"], (body[:60], r.status_code, r.text[:200])
    assert httpx.get(f"{url}/versions/1").status_code == 200 and httpx.get(f"{url}/versions/7").status_code == 404
    # 500 MB sent in chunks, without a length: refused once past the limit, never held whole
    before = _vm_hwm_kib(proc.proc.pid)

    def chunks():  # type: ignore[no-untyped-def]
        block = b"0" * (1 << 20)
        for _ in range(500):
            yield block

    start = time.perf_counter()
    try:
        r = httpx.post(f"{url}/infer", content=chunks(), timeout=60)
        assert r.status_code == 413
    except httpx.HTTPError:
        pass  # the server answered 413 and closed the connection while the client was still sending
    assert time.perf_counter() - start < 60
    grown = _vm_hwm_kib(proc.proc.pid) - before
    assert grown < 100 * 1024, f"the server's peak memory grew by {grown} KiB"
    assert httpx.get(f"{url.split('/v2/')[0]}/v2/health/live").json() == {"live": True}
    log = proc.stderr()
    assert "Traceback" not in log, log[-2000:]
