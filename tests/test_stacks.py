"""The Open Inference Protocol as real stacks speak it: NVIDIA's tritonclient against uapfp serve,
uapfp verify against KServe's and MLServer's own Python servers (a custom runtime each, in their
own environments: tests/stacks/make-venvs.sh), and a server that bounds what it reads (no mocks:
real clients, real servers on loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http

from uapfp.cards import load_model_from_card
from uapfp.cli import main
from uapfp.serve import ServerProcess
from uapfp.suspects.spec import card_suspect

from .test_onnx import export

STACKS = Path(__file__).parent / "stacks"
VENVS = Path(__file__).resolve().parents[1] / ".test-venvs"


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


def _stack_python(stack: str) -> Path:
    python = VENVS / stack / "bin" / "python"
    if not python.exists():
        message = f"{stack}'s server is not installed: run bash tests/stacks/make-venvs.sh (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _running(cmd: list[str], ready: list[str], *, cwd: Path, log: Path):  # type: ignore[no-untyped-def]
    """Start a server, wait until every ``ready`` URL answers 200, stop it afterwards."""
    env = {**os.environ, "PYTHONPATH": str(STACKS), "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[1]} exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if all(httpx.get(url, timeout=2).status_code == 200 for url in ready):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{cmd[1]} was not ready in 180 s: {log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_kserve(models: dict[str, tuple[str, str]], folder: Path):  # type: ignore[no-untyped-def]
    """KServe's ModelServer serving every model: name -> (onnx, answer)."""
    port = _free_port()
    cmd = [str(_stack_python("kserve")), str(STACKS / "kserve_runtime.py"), "--http_port", str(port),
           "--grpc_port", str(_free_port())]  # fmt: skip
    for name, (onnx, answer) in models.items():
        cmd += ["--serve", name, onnx, answer]
    urls = {name: f"http://127.0.0.1:{port}/v2/models/{name}" for name in models}
    stack = contextlib.ExitStack()
    stack.enter_context(_running(cmd, [f"{u}/ready" for u in urls.values()], cwd=folder, log=folder / "kserve.log"))
    return stack, urls


def _start_mlserver(models: dict[str, tuple[str, str]], folder: Path):  # type: ignore[no-untyped-def]
    """One MLServer serving every model from a folder of model-settings.json files."""
    port = _free_port()
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(), "parallel_workers": 0,
        "host": "127.0.0.1",
    }))  # fmt: skip
    for name, (onnx, answer) in models.items():
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_runtime.OnnxRuntime",
            "parameters": {"extra": {"onnx": onnx, "answer": answer}},
        }))  # fmt: skip
    urls = {name: f"http://127.0.0.1:{port}/v2/models/{name}" for name in models}
    mlserver = _stack_python("mlserver").parent / "mlserver"
    cmd = [str(mlserver), "start", str(folder)]
    stack = contextlib.ExitStack()
    stack.enter_context(_running(cmd, [f"{u}/ready" for u in urls.values()], cwd=folder, log=folder / "mlserver.log"))
    return stack, urls


def _verify(kit, suspect: str, out: Path, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    code = main(["-q", "verify", "--kit", str(kit.path), "--suspect", suspect, "--json", str(out), *extra])
    assert code == 0, out
    return json.loads(out.read_text())


@pytest.mark.parametrize("stack", ["kserve", "mlserver"])
def test_verify_against_the_stacks_equals_local(stack, tiny_zoo, tiny_kit, tmp_path, capsys):
    """A copy and an honest model, each behind a runtime answering probabilities and one answering logits."""
    _stack_python(stack)
    held = set(tiny_kit.info["models"]["heldout"])
    cards = {role: next(c for c in tiny_zoo.cards if c["role"] == role and c["id"] in held)
             for role in ("piracy", "homologous")}  # fmt: skip
    models, local = {}, {}
    for role, card in cards.items():
        onnx = export(load_model_from_card(card), tmp_path / f"{role}.onnx")
        local[role] = _verify(tiny_kit, f"onnx:{onnx}", tmp_path / f"{role}-local.json", "--outputs", "logits")
        for answer in ("probabilities", "logits"):
            models[f"{role}-{answer}"] = (onnx, answer)
    start = _start_kserve if stack == "kserve" else _start_mlserver
    servers, urls = start(models, tmp_path)
    with servers:
        for name, url in urls.items():
            role, answer = name.split("-")
            extra = ["--outputs", "logits", "--output-name", "logits"] if answer == "logits" else []
            got = _verify(tiny_kit, url, tmp_path / f"{name}-{stack}.json", *extra)
            want = local[role]
            assert got["verdict"] == want["verdict"] and got["queries"] == want["queries"], name
            assert abs(got["similarity"] - want["similarity"]) < 1e-5, (name, got["similarity"], want["similarity"])
            assert np.allclose(got["per_fingerprint"], want["per_fingerprint"], atol=1e-5), name
        if stack == "kserve":  # KServe answers a version route with 501: refused at once, no retry can help
            capsys.readouterr()
            start = time.perf_counter()
            code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", urls["piracy-probabilities"]
                         + "/versions/1", "--retries", "5"])  # fmt: skip
            assert code == 2 and "501" in capsys.readouterr().err and time.perf_counter() - start < 5
    capsys.readouterr()
    assert local["piracy"]["verdict"] == "piracy" and local["homologous"]["verdict"] == "not shown"
