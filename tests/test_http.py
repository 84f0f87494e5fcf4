"""HTTP suspects against a real ``uapfp serve`` (uvicorn subprocess on 127.0.0.1), no mocks.

Remote verification must give the verdicts and per-fingerprint similarities of local
verification bit for bit, through faults, and never spend more than its query budget.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import tiny_mlp
from uapfp.cli import EXIT_INCONCLUSIVE, main
from uapfp.errors import ConfigError, SuspectError
from uapfp.fingerprint import probe_batch
from uapfp.querylog import recheck_query_log
from uapfp.serve import ServerProcess
from uapfp.suspects.http import HttpSuspect
from uapfp.suspects.options import HttpOptions
from uapfp.suspects.spec import card_suspect, open_suspect
from uapfp.verify import INCONCLUSIVE, verify

TOKEN = "s3cret-token"
FAULTS = ("--fail-rate", "0.2", "--slow-rate", "0.15", "--slow-seconds", "3", "--fault-seed", "1")


@pytest.fixture(scope="module")
def cards(tiny_zoo, tiny_kit):
    """A held-out piracy model and a held-out homologous model of the tiny zoo."""
    held = set(tiny_kit.info["models"]["heldout"])
    pick = {}
    for role in ("piracy", "homologous"):
        pick[role] = next(c for c in tiny_zoo.cards if c["role"] == role and c["id"] in held)
    return pick


@pytest.fixture(scope="module")
def server():
    """start(spec, *options) -> model URL; each distinct server starts once per module."""
    started: dict[tuple, ServerProcess] = {}

    def start(spec: str, *options: str, env: dict[str, str] | None = None) -> str:
        key = (spec, options)
        if key not in started:
            started[key] = ServerProcess.serve(spec, *options, env=env)
        return started[key].url

    yield start
    for proc in started.values():
        proc.close()


@pytest.fixture(scope="module")
def broken():
    """The faulty server of tests.helpers: base URL of its models."""
    with ServerProcess([sys.executable, "-m", "tests.helpers"]) as proc:
        yield proc.url.rsplit("/", 1)[0]


def _http(url: str, kit, *, output="probs", max_queries=None, **options) -> HttpSuspect:
    return HttpSuspect(url, input_shape=kit.input_shape, num_classes=kit.num_classes, output=output,
                       max_queries=max_queries, options=HttpOptions(**options))  # fmt: skip


def _same(remote, local) -> None:
    assert remote.per_fingerprint == local.per_fingerprint
    assert remote.similarity == local.similarity and remote.p_value == local.p_value
    assert remote.verdict == local.verdict and remote.output_mode == local.output_mode
    assert remote.queries == local.queries


@pytest.mark.parametrize("role", ["piracy", "homologous"])
@pytest.mark.parametrize("served, local_mode", [("probs", "probs"), ("topk:1", "label")])
def test_http_verification_equals_local(tiny_kit, cards, server, role, served, local_mode):
    card = cards[role]
    url = server(card["_path"], "--outputs", served)
    local = verify(tiny_kit, card_suspect(card, output=local_mode))
    with _http(url, tiny_kit, output=served) as suspect:  # one request per probe set, as locally
        assert suspect.backend_output == suspect.output
        remote = verify(tiny_kit, suspect)
    _same(remote, local)
    if served == "probs" and role == "piracy":
        assert local.verdict == "piracy"  # the tiny kit does tell this pirate
    # smaller requests, several in flight: each answer is bit-identical to the same batch computed locally
    x = probe_batch(tiny_kit.probe_images[1], tiny_kit.v)
    with _http(url, tiny_kit, output=served, batch_size=25, concurrency=3) as suspect:
        assert torch.equal(suspect(x), card_suspect(card, output=local_mode, batch_size=25)(x))
        assert suspect.queries == len(x)


def test_int_labels_with_token_and_mode_from_metadata(tiny_kit, cards, server, monkeypatch):
    card = cards["piracy"]
    monkeypatch.setenv("UAPFP_TEST_TOKEN", TOKEN)
    env = {**os.environ, "SERVE_TOKEN": TOKEN}
    url = server(card["_path"], "--outputs", "label", "--int-labels", "--token-env", "SERVE_TOKEN", env=env)
    local = verify(tiny_kit, card_suspect(card, output="label"))
    with _http(url, tiny_kit, output=None, token_env="UAPFP_TEST_TOKEN") as suspect:
        assert str(suspect.output) == "label"  # learnt from the server's metadata
        remote = verify(tiny_kit, suspect)
    _same(remote, local)
    # without the token: 401, one attempt, a message that names the fix
    with _http(url, tiny_kit, output="label", metadata=False, retries=3) as suspect:
        with pytest.raises(SuspectError, match=r"HTTP 401.*--token-env"):
            suspect(torch.rand(4, *tiny_kit.input_shape))
        assert suspect.queries == 4
    monkeypatch.delenv("UAPFP_TEST_TOKEN")
    with pytest.raises(ConfigError, match="UAPFP_TEST_TOKEN is not set"):
        _http(url, tiny_kit, token_env="UAPFP_TEST_TOKEN")


def test_declared_mode_against_served_mode(tiny_kit, cards, server):
    card = cards["piracy"]
    # a probabilities server verified as a label-only API: the client truncates
    url = server(card["_path"], "--outputs", "probs")
    local = verify(tiny_kit, card_suspect(card, output="label"))
    with _http(url, tiny_kit, output="label") as suspect:
        assert str(suspect.backend_output) == "probs"
        _same(verify(tiny_kit, suspect), local)
    # a label server cannot be verified as probabilities
    url = server(card["_path"], "--outputs", "topk:1")
    with pytest.raises(ConfigError, match="--outputs label"):
        _http(url, tiny_kit, output="probs")


def test_faults_are_retried_within_budget(tiny_kit, cards, server):
    card = cards["homologous"]
    url = server(card["_path"], *FAULTS)
    local = verify(tiny_kit, card_suspect(card))
    budget = 3 * local.queries
    with _http(url, tiny_kit, timeout=0.5, backoff=0.05, retries=8, max_queries=budget) as suspect:
        remote = verify(tiny_kit, suspect)
        assert suspect.queries == local.queries  # retries happened, and were not charged twice
    assert remote.per_fingerprint == local.per_fingerprint and remote.verdict == local.verdict
    assert remote.queries == suspect.queries


def test_budget_exhausted_mid_run(tiny_kit, cards, server, capsys, tmp_path):
    url = server(cards["piracy"]["_path"], "--outputs", "probs")
    per_set = 2 * tiny_kit.probe_images.shape[1]
    budget = int(3.5 * per_set)  # too few for every set: the class-order check is not asked
    with _http(url, tiny_kit, max_queries=budget, batch_size=25) as suspect:
        v = verify(tiny_kit, suspect)
        assert v.verdict == INCONCLUSIVE and v.fingerprints == 3 and "budget" in v.message
        assert suspect.queries == 3 * per_set <= budget  # the 4th set was refused before sending
    # with failures and timeouts, retries eat the budget mid-set: still never past it
    url = server(cards["homologous"]["_path"], *FAULTS)
    with _http(url, tiny_kit, max_queries=budget, batch_size=25, backoff=0.01, retries=20, timeout=0.5) as suspect:
        v = verify(tiny_kit, suspect)
        assert v.verdict == INCONCLUSIVE and suspect.queries <= budget
    # the CLI prints what it measured and exits with the inconclusive code
    out = tmp_path / "verdict.json"
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", url, "--max-queries", str(budget),
                 "--retries", "20", "--timeout", "0.5", "--batch-size", "25", "--json", str(out)])  # fmt: skip
    stdout, stderr = capsys.readouterr()
    assert code == EXIT_INCONCLUSIVE == 3
    assert "INCONCLUSIVE" in stdout and "budget" in stderr and "Traceback" not in stderr
    saved = json.loads(out.read_text())
    assert saved["verdict"] == INCONCLUSIVE and saved["queries"] <= budget


def test_cli_verify_writes_verdict_and_query_log(tiny_kit, cards, server, capsys, tmp_path):
    card = cards["piracy"]
    url = server(card["_path"], "--outputs", "probs")
    out = tmp_path / "verdict.json"
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", url, "--json", str(out),
                 "--concurrency", "2", "--batch-size", "30", "--rate-limit", "200"])  # fmt: skip
    stdout, _ = capsys.readouterr()
    assert code == 0 and "verdict written" in stdout
    saved = json.loads(out.read_text())
    qlog = tmp_path / "verdict.queries.jsonl"
    assert saved["query_log"] == str(qlog)
    lines = [json.loads(line) for line in qlog.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["kit_sha256"] == tiny_kit.sha256
    assert len(lines) - 1 == saved["queries"]
    assert all(len(row["output"]) == tiny_kit.num_classes for row in lines[1:])
    local = verify(tiny_kit, card_suspect(card))
    assert saved["per_fingerprint"] == local.per_fingerprint
    # the log alone, with the kit, gives the verdict again; an edited log is refused
    again = recheck_query_log(tiny_kit, qlog)
    assert again.per_fingerprint == local.per_fingerprint and again.verdict == local.verdict
    k = 1 + tiny_kit.references["classes"].queries.shape[1] + 4  # the fifth line of the first uap set
    assert (lines[k]["queries"], lines[k]["set"], lines[k]["point"], lines[k]["uap"]) == ("uap", 0, 2, False)
    lines[k]["output"][0] += 0.25
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert recheck_query_log(tiny_kit, edited).per_fingerprint != local.per_fingerprint
    lines[k]["input_sha256"] = "0" * 64
    edited.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ConfigError, match="not point 4 of uap set 0"):
        recheck_query_log(tiny_kit, edited)
    code = main(["-q", "recheck", "--kit", str(tiny_kit.path), "--log", str(qlog)])
    assert code == 0 and "PIRACY" in capsys.readouterr().out


def test_rate_limit(tiny_kit, cards, server):
    url = server(cards["piracy"]["_path"], "--outputs", "probs")
    with _http(url, tiny_kit, rate_limit=20.0, batch_size=5, concurrency=4) as suspect:
        start = time.perf_counter()
        suspect(torch.rand(40, *tiny_kit.input_shape))
        elapsed = time.perf_counter() - start
    assert elapsed >= (8 - 1) / 20.0 - 0.01  # 8 requests at 20 per second


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", "NaN or infinite"),
        ("negative", "negative outputs"),
        ("unnormalised", "do not sum to 1"),
        ("nine", "returned 9 classes, the kit expects 10"),
    ],
)
def test_bad_outputs_over_http(tiny_kit, broken, kind, message, capsys):
    with _http(f"{broken}/{kind}", tiny_kit) as suspect, pytest.raises(SuspectError, match=message):
        verify(tiny_kit, suspect)
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"{broken}/{kind}"])
    _, stderr = capsys.readouterr()
    lines = [line for line in stderr.splitlines() if line.startswith("uapfp: error:")]
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in stderr


def test_wrong_input_shape_and_bad_requests(tiny_kit, server, tmp_path):
    weights = tmp_path / "mlp14.safetensors"
    save_file(tiny_mlp(1, (14, 14), 10).state_dict(), str(weights))
    url = server("tests.helpers:tiny_mlp", "--weights", str(weights), "--input-shape", "1,14,14", "--classes", "10")
    assert url.endswith("/v2/models/tiny_mlp")
    with pytest.raises(SuspectError, match=r"takes inputs \(N, 1, 14, 14\), the kit expects \(N, 1, 28, 28\)"):
        open_suspect(url, input_shape=tiny_kit.input_shape, num_classes=10)
    # without metadata the server's 400 is reported, with no retry
    with _http(url, tiny_kit, metadata=False, retries=5) as suspect:
        with pytest.raises(SuspectError, match=r"HTTP 400: input shape must be \[n, 1, 14, 14\]"):
            suspect(torch.rand(3, *tiny_kit.input_shape))
        assert suspect.queries == 3
    base = url.rsplit("/v2/", 1)[0]
    assert httpx.get(f"{base}/v2/health/live").json() == {"live": True}
    meta = httpx.get(url).json()
    assert meta["inputs"][0]["shape"] == [-1, 1, 14, 14] and meta["parameters"]["output_mode"] == "probs"
    good = {"name": "input", "shape": [1, 1, 14, 14], "datatype": "FP32", "data": [0.5] * 196}
    answer = httpx.post(f"{url}/infer", json={"id": "a", "inputs": [good]}).json()
    assert answer["id"] == "a" and answer["outputs"][0]["shape"] == [1, 10]
    bad = [
        (b"{not json", 400, "not valid JSON"),
        (json.dumps({"inputs": [{**good, "datatype": "FP64"}]}).encode(), 400, "FP32"),
        (json.dumps({"inputs": [{**good, "shape": [1, 1, 28, 28]}]}).encode(), 400, "shape"),
        (json.dumps({"inputs": [{**good, "data": [0.5] * 10}]}).encode(), 400, "196"),
        (json.dumps({"inputs": [{**good, "data": [2.0] * 196}]}).encode(), 400, "[0, 1]"),
        (json.dumps({"inputs": [{**good, "name": "x"}]}).encode(), 400, "unknown input"),
        (json.dumps({"nothing": 1}).encode(), 400, "inputs"),
    ]
    for body, status, message in bad:
        r = httpx.post(f"{url}/infer", content=body)
        assert r.status_code == status and message in r.json()["error"], (body[:60], r.text)
    r = httpx.post(f"{base}/v2/models/other/infer", json={"inputs": [good]})
    assert r.status_code == 404 and "unknown model 'other'" in r.json()["error"]
    assert httpx.get(f"{base}/nowhere").status_code == 404


def test_client_configuration_errors(tiny_kit):
    with pytest.raises(ConfigError, match="/v2/models/NAME"):
        _http("http://127.0.0.1:1", tiny_kit)
    # nobody listens: connection errors are retried, then reported with the fix
    with _http("http://127.0.0.1:9/v2/models/m", tiny_kit, retries=1, backoff=0.01, timeout=1.0) as suspect:
        with pytest.raises(SuspectError, match=r"failed 2 times.*--retries"):
            suspect(torch.rand(2, *tiny_kit.input_shape))
        assert suspect.queries == 2  # the images asked about, once: a resend is not charged again
