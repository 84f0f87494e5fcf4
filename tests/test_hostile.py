"""Hostile inputs, one test per failure a hostile user found (numbered as in the report), then a fuzz test.

Each failure now gets a one-line error (exit 2) or the right verdict, no traceback, no file
touched outside the given paths, no payload run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper
from safetensors.torch import save_file

import tests.helpers as helpers
from uapfp.cli import main
from uapfp.kit import Kit
from uapfp.serve import ServerProcess
from uapfp.storage import sha256_file

PY = sys.executable


def run(capsys, *argv):
    """``uapfp ARGV`` in this process: (exit code, stdout, the one error line or '')."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("uapfp: error:")]
    assert len(lines) <= 1, err
    return code, out, lines[0] if lines else ""


@pytest.fixture(scope="module")
def mlp_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "mlp.safetensors"
    save_file(helpers.counting_mlp().state_dict(), str(path))
    return str(path)


@pytest.fixture(scope="module")
def hostile():
    with ServerProcess([PY, "-m", "tests.hostile_server"]) as proc:
        yield proc.url.rsplit("/", 1)[0]


# --------------------------------------------------------------------------- 1. a card runs no code


def _card_with_arch(tiny_zoo, tmp_path, arch):
    card = {k: v for k, v in tiny_zoo.victim.items() if not k.startswith("_")}
    card["arch"] = arch
    weights = tmp_path / "w.safetensors"
    save_file(helpers.tiny_mlp().state_dict(), str(weights))
    card.update(weights=weights.name, weights_sha256=sha256_file(weights), weights_format="safetensors")
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("arch", ["tests.helpers:payload", "os:abort", "tempfile:mkdtemp"])
def test_1_a_card_imports_no_code_unless_allowed(tiny_zoo, tiny_kit, tmp_path, capsys, monkeypatch, arch):
    import tempfile

    marker = tmp_path / "PAYLOAD-RAN"
    monkeypatch.setenv("UAPFP_TEST_MARKER", str(marker))
    monkeypatch.delenv("UAPFP_TRUST_CODE", raising=False)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where tempfile:mkdtemp would have made its folder
    card = _card_with_arch(tiny_zoo, tmp_path, arch)
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(card))
    module = arch.partition(":")[0]
    assert code == 2 and f"--trust-code {module}" in line and not marker.exists() and not list(temp.iterdir())
    if arch == "tests.helpers:payload":  # allowed on this run, the code is the user's to run
        code, out, _ = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(card),
                           "--trust-code", "tests.helpers")  # fmt: skip
        assert code == 0 and marker.exists() and "verdict" in out


def test_1_a_zoo_of_user_factories_needs_them_allowed(tmp_path, capsys):
    """--victim allows its factory while the zoo is built; a later protect must allow it again."""
    zoo = tmp_path / "zoo"
    weights = tmp_path / "v.safetensors"
    save_file(helpers.tiny_mlp().state_dict(), str(weights))
    code, _, _ = run(capsys, "-q", "zoo", "build", "--preset", "tiny", "--victim", "tests.helpers:tiny_mlp",
                     "--victim-weights", str(weights), "--victim-data", "fashion-mnist-slice[0:3000]", "--archs", "C",
                     "--attacks", "copycat", "--piracy", "1", "--homologous", "3", "--epochs", "1", "--out", str(zoo))  # fmt: skip
    assert code == 0
    protect = ["-q", "protect", "--zoo", str(zoo), "--out", str(tmp_path / "kit"), "--calibration-fraction", "0.6"]
    code, _, line = run(capsys, *protect)
    assert code == 2 and "--trust-code tests.helpers" in line and not (tmp_path / "kit" / "manifest.json").exists()


# --------------------------------------------------------------------------- 2. arguments checked before a query


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--alpha", "2"], "--alpha"), (["--alpha", "1.0"], "--alpha"), (["--alpha", "inf"], "--alpha"),
        (["--alpha", "0"], "--alpha"), (["--alpha", "-1"], "--alpha"), (["--alpha", "nan"], "--alpha"),
        (["--fingerprints", "0"], "--fingerprints"), (["--fingerprints", "99"], "--fingerprints"),
        (["--max-queries", "0"], "--max-queries"), (["--json", "/dev/full"], "not a regular file"),
        (["--timeout", "0"], "--timeout"),
    ],
)  # fmt: skip
def test_2_bad_arguments_are_refused_before_any_query(tiny_kit, mlp_weights, capsys, flags, message):
    helpers.FORWARD_CALLS[0] = 0
    suspect = ["--suspect", "tests.helpers:counting_mlp", "--weights", mlp_weights]
    if "--timeout" in flags:
        suspect = ["--suspect", "http://127.0.0.1:9/v2/models/m"]
    before = os.stat("/dev/full") if os.path.exists("/dev/full") else None
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), *suspect, *flags)
    assert code == 2 and message in line and helpers.FORWARD_CALLS[0] == 0, line
    if before is not None:
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and os.stat("/dev/full").st_ino == before.st_ino


def test_2_output_paths_never_replace_what_is_not_a_file(tiny_kit, mlp_weights, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for path, message in ((fifo, "not a regular file"), (link, "symbolic link"), (tmp_path, "a folder"),
                          (blocker / "v.json", "Not a directory")):  # fmt: skip
        helpers.FORWARD_CALLS[0] = 0
        code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect",
                            "tests.helpers:counting_mlp", "--weights", mlp_weights, "--json", str(path))  # fmt: skip
        assert code == 2 and message in line and helpers.FORWARD_CALLS[0] == 0, (path, line)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.path.islink(link) and target.read_text() == "keep me"
    # a query log path is checked as the verdict's is
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", "tests.helpers:counting_mlp",
                        "--weights", mlp_weights, "--query-log", str(link))  # fmt: skip
    assert code == 2 and "symbolic link" in line and target.read_text() == "keep me"
    # recheck and evaluate check their arguments too
    code, _, line = run(capsys, "-q", "recheck", "--kit", str(tiny_kit.path), "--log", str(target), "--alpha", "2")
    assert code == 2 and "--alpha" in line
    code, _, line = run(capsys, "-q", "evaluate", "--kit", str(tiny_kit.path), "--zoo", "z", "--json", str(fifo))
    assert code == 2 and "not a regular file" in line


# --------------------------------------------------------------------------- 3. ONNX external data


def _sparse_constant_model(folder, location: str) -> str:
    """logits = flat @ W + c, where c (10,) is a Constant whose sparse_value reads external data."""
    values = helpers.external(np.zeros(10, dtype=np.float32), "c_values", location)
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.arange(10, dtype=np.int64), "c_i"), [10])
    nodes = [
        helper.make_node("Constant", [], ["c"], sparse_value=sparse),
        helper.make_node("Add", ["mm", "c"], ["logits"]),
    ]
    w = numpy_helper.from_array(np.full((784, 10), 0.01, dtype=np.float32), name="W")
    return str(helpers.linear_onnx(folder, w, extra_nodes=nodes, logits="logits"))


def test_3_onnx_external_data_of_sparse_attributes_stays_in_the_model_folder(tiny_kit, tmp_path, capsys, monkeypatch):
    from uapfp.suspects.onnx_runtime import OnnxSuspect

    secret = np.arange(10, dtype=np.float32) * 7.0
    work, folder = tmp_path / "work", tmp_path / "model"
    work.mkdir()
    folder.mkdir()
    (work / "secret.txt").write_bytes(secret.tobytes())  # in the verifier's working folder only
    path = _sparse_constant_model(folder, "secret.txt")
    monkeypatch.chdir(work)
    code, out, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"onnx:{path}")
    assert code == 2 and "external data" in line and "secret" in line and not out
    # the same file beside the model is the model's own data: read from there, not from the working folder
    (folder / "secret.txt").write_bytes(np.zeros(10, dtype=np.float32).tobytes())
    suspect = OnnxSuspect(path, input_shape=(1, 28, 28), num_classes=10, output="logits")
    assert torch.allclose(suspect(torch.zeros(2, 1, 28, 28)), torch.full((2, 10), 0.1))


# --------------------------------------------------------------------------- 4. the HTTP client is bounded


def test_4_slow_huge_compressed_and_deep_answers(tiny_kit, hostile, capsys):
    for name, flags, message in (
        ("slow", ["--timeout", "1", "--retries", "1"], "no whole answer within 1"),
        ("huge", [], "more than"),
        ("deep", [], "nested too deeply"),
        ("bignum", [], "not valid JSON"),
    ):
        start = time.perf_counter()
        retries = [] if "--retries" in flags else ["--retries", "0"]
        code, out, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"{hostile}/{name}",
                              *retries, *flags)  # fmt: skip
        assert code in (2, 3) and message in (line + out), (name, line, out)
        assert time.perf_counter() - start < 10, name
    # metadata bombs are ignored, not crashed on
    for name in ("deepmeta", "bignummeta"):
        code, out, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"{hostile}/{name}")
        assert code in (0, 2) and "Traceback" not in line


def test_4_a_gzip_bomb_stays_in_bounded_memory(tiny_kit, hostile):
    """256 KiB of gzip inflating to 256 MiB: refused, the verifier's memory never near it."""
    script = (
        "import resource, sys; from uapfp.cli import main; "
        f"code = main(['-q', 'verify', '--kit', {str(tiny_kit.path)!r}, '--suspect', {hostile + '/gzipbomb'!r}, "
        "'--retries', '0']); print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    baseline = subprocess.run([PY, "-c", "import resource, uapfp.cli, uapfp.kit, uapfp.verify, uapfp.suspects.http; "
                               "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    proc = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "more than" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    peak = int(proc.stdout.split("PEAK")[1]) - int(baseline.stdout.split("PEAK")[1])
    assert peak < 200 * 1024, f"{peak} KiB more than the baseline"  # ru_maxrss is in KiB on Linux


def test_4_retry_after_is_capped_and_not_compounded(tiny_kit, hostile, monkeypatch):
    import uapfp.suspects.http as http_mod
    from uapfp.errors import SuspectUnavailableError
    from uapfp.suspects.http import HttpSuspect
    from uapfp.suspects.options import HttpOptions

    monkeypatch.setattr(http_mod, "MAX_RETRY_WAIT", 0.3)  # the cap, made short for a test (60 s in use)
    options = HttpOptions(retries=3, backoff=0.01)
    with HttpSuspect(f"{hostile}/retryafter", input_shape=(1, 28, 28), num_classes=10, options=options) as suspect:
        start = time.perf_counter()
        with pytest.raises(SuspectUnavailableError, match="failed 4 times"):
            suspect(torch.rand(2, 1, 28, 28))
        waited = time.perf_counter() - start
    # three waits of the cap: 0.9 s; doubling a capped Retry-After would wait 0.3 + 0.6 + 1.2 s
    assert 0.85 < waited < 1.6, waited


def test_4_exhausted_retries_report_what_was_measured(tiny_kit, hostile, capsys, tmp_path):
    out = tmp_path / "v.json"
    code, stdout, _ = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"{hostile}/flaky4",
                          "--retries", "1", "--json", str(out))  # fmt: skip
    saved = json.loads(out.read_text())
    assert code == 3 and "INCONCLUSIVE" in stdout and saved["verdict"] == "inconclusive"
    assert saved["fingerprints"] == 3 and "stopped answering" in saved["message"]
    log = [json.loads(line) for line in (tmp_path / "v.queries.jsonl").read_text().splitlines()]
    # four requests answered: the class-order check's images, then three sets
    assert len(log) - 1 == tiny_kit.references["classes"].queries.shape[1] + 3 * 2 * tiny_kit.probe_images.shape[1]


# --------------------------------------------------------------------------- 5. damaged files, orphans


def test_5_damaged_cards_manifests_and_torchscript(tiny_zoo, tiny_kit, tmp_path, capsys):
    # a non-UTF-8 card: zoo list warns and goes on
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo.path, zoo)
    bad = next((zoo / "models").glob("homologous-*.json"))
    bad.write_bytes(b'{"format": "uapfp-model-card/1", "id": "\xff\xfe"}')
    code, out, _ = run(capsys, "zoo", "list", str(zoo))
    assert code == 0 and bad.stem not in out and "victim" in out
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(bad))
    assert code == 2 and "not valid JSON" in line
    # manifests: a byte that is not UTF-8, a JSON list, a nesting bomb
    for content in (b'{"format": "uapfp-kit/1", "files": {"\xff": 1}}', b"[1, 2]", b"[" * 100000):
        kit = tmp_path / "kit"
        shutil.rmtree(kit, ignore_errors=True)
        shutil.copytree(tiny_kit.path, kit)
        (kit / "manifest.json").write_bytes(content)
        code, _, line = run(capsys, "-q", "verify", "--kit", str(kit), "--suspect", str(bad))
        assert code == 2 and "the kit is damaged" in line, line
    # TorchScript files torch.jit.load refuses: a reason, no empty parentheses
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(broken))
    assert code == 2 and "is not a TorchScript file (" in line and "()" not in line
    code, _, line = run(capsys, "-q", "zoo", "build", "--preset", "tiny", "--victim-weights", str(broken),
                        "--archs", "C", "--out", str(tmp_path / "z2"))  # fmt: skip
    assert code == 2 and line


def test_5_a_build_removes_the_orphans_of_a_killed_one(tiny_zoo, tmp_path):
    from tests.conftest import tiny_zoo_config
    from uapfp.zoo import build_zoo

    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_zoo.path, zoo)
    orphans = [
        zoo / "models" / ".piracy-A-adam-00.safetensors.x1y2.tmp",
        zoo / "cache" / ".fingerprints-a.safetensors.tmp",
    ]
    for p in orphans:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
    build_zoo(zoo, tiny_zoo_config(), progress=False)  # everything finished: nothing is trained
    assert not any(p.exists() for p in orphans)


# --------------------------------------------------------------------------- 6. a kit's identity, signed


def _rewrite_alpha(folder, alpha):
    info = json.loads((folder / "kit.json").read_text())
    info["config"]["alpha"] = alpha
    (folder / "kit.json").write_text(json.dumps(info))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["kit.json"] = sha256_file(folder / "kit.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_6_a_signed_kit_verifies_and_a_rewritten_one_is_refused(tiny_zoo, tiny_kit, tmp_path, capsys):
    from uapfp.signing import sign_kit

    code, out, _ = run(capsys, "keygen", "--out", str(tmp_path / "owner"))
    assert code == 0 and (tmp_path / "owner.pem").stat().st_mode & 0o077 == 0
    kit = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, kit)
    signer = sign_kit(kit, tmp_path / "owner.pem")
    honest = next(
        c for c in tiny_zoo.cards if c["id"] in tiny_kit.info["models"]["heldout"] and c["role"] == "homologous"
    )
    verdict = tmp_path / "v.json"
    code, out, _ = run(capsys, "-q", "verify", "--kit", str(kit), "--suspect", honest["_path"],
                       "--trusted-key", str(tmp_path / "owner.pub"), "--json", str(verdict))  # fmt: skip
    saved = json.loads(verdict.read_text())
    header = json.loads((tmp_path / "v.queries.jsonl").read_text().splitlines()[0])
    assert code == 0 and saved["verdict"] == "not shown" and saved["kit_signed_by"] == signer
    assert saved["kit_sha256"] == header["kit_sha256"] == Kit.load(kit).sha256 and f"signed by key {signer}" in out
    # rewritten after signing (alpha 0.99, manifest rehashed): the hash check passes, the signature does not
    _rewrite_alpha(kit, 0.99)
    code, _, line = run(capsys, "-q", "verify", "--kit", str(kit), "--suspect", honest["_path"],
                        "--trusted-key", str(tmp_path / "owner.pub"))  # fmt: skip
    assert code == 2 and "changed after signing" in line
    # without a trusted key it loads, but the verdict names another kit, and says it was not checked
    code, out, _ = run(capsys, "-q", "verify", "--kit", str(kit), "--suspect", honest["_path"], "--json", str(verdict))
    assert json.loads(verdict.read_text())["kit_sha256"] != saved["kit_sha256"] and "signature not checked" in out
    # another owner's key, and a kit that is not signed at all
    run(capsys, "keygen", "--out", str(tmp_path / "other"))
    code, _, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", honest["_path"],
                        "--trusted-key", str(tmp_path / "other.pub"))  # fmt: skip
    assert code == 2 and "not signed" in line


# --------------------------------------------------------------------------- fuzz


def test_fuzz_cards_manifests_and_answers(tiny_zoo, tiny_kit, tmp_path, capsys, hostile, monkeypatch):
    """Mutated cards, manifests and server answers: an error (2) or inconclusive (3), never a
    traceback, never a verdict on garbage."""
    import random

    from tests.hostile_server import MUTATIONS

    monkeypatch.delenv("UAPFP_TRUST_CODE", raising=False)
    rng = random.Random(0)
    card = {k: v for k, v in tiny_zoo.victim.items() if not k.startswith("_")}
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_zoo.path / "models" / card["weights"], models / card["weights"])
    bad_values = [None, -1, 0, True, 1e308, 10**30, "", "x" * 5000, [], {}, [[[[[[1]]]]]], "../../etc/passwd",
                  "/etc/passwd", "os:abort", "tempfile:mkdtemp", [1, 28], [0, 28, 28], [-1, 28, 28], "é\u0000"]  # fmt: skip
    essential = ("format", "id", "role", "arch", "input_shape", "num_classes", "weights", "weights_sha256",
                 "weights_format")  # fmt: skip
    outcomes = []
    for i in range(120):
        mutated = json.loads(json.dumps(card))
        raw = None
        if i % 6 == 5:  # the file itself garbled
            text = json.dumps(card).encode()
            cut = rng.randrange(1, len(text))
            raw = rng.choice([text[:cut], text[:cut] + b"\xff" + text[cut:], b"[" * 50000, b"\x00" * 100, b"{}"])
        else:
            key = essential[i % len(essential)]
            value = rng.choice([v for v in bad_values if v != card.get(key)])
            mutated[key] = value
        path = models / f"fuzz-{i}.json"
        path.write_bytes(raw if raw is not None else json.dumps(mutated).encode())
        code, out, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", str(path))
        assert code == 2 and line and "verdict" not in out, (i, mutated if raw is None else raw[:80], line)
        outcomes.append(code)
    # manifests
    original = json.loads((tiny_kit.path / "manifest.json").read_text())
    kit = tmp_path / "kit"
    shutil.copytree(tiny_kit.path, kit)
    victim_card = tiny_zoo.victim["_path"]
    for i in range(100):
        text = json.dumps(original).encode()
        kind = i % 5
        if kind == 0:
            j = rng.randrange(len(text))
            text = text[:j] + bytes([text[j] ^ (1 << rng.randrange(8))]) + text[j + 1 :]
        elif kind == 1:
            text = text[: rng.randrange(len(text))]
        elif kind == 2:
            m = json.loads(text)
            m[rng.choice(["format", "files"])] = rng.choice(bad_values)
            text = json.dumps(m).encode()
        elif kind == 3:
            m = json.loads(text)
            m["files"][rng.choice(sorted(m["files"]))] = rng.choice(bad_values)
            text = json.dumps(m).encode()
        else:
            text = rng.choice([b"[" * 200000, b"\xff\xfe\x00", b"1" * 5000, b'"x"', b"null"])
        (kit / "manifest.json").write_bytes(text)
        code, out, line = run(capsys, "-q", "verify", "--kit", str(kit), "--suspect", victim_card)
        try:
            same = json.loads(text) == original
        except (ValueError, RecursionError):
            same = False
        assert code == 0 if same else (code == 2 and line and "verdict" not in out), (i, text[:100], line)
        outcomes.append(code)
    # answers
    for seed in range(150):
        code, out, line = run(capsys, "-q", "verify", "--kit", str(tiny_kit.path), "--suspect", f"{hostile}/fuzz{seed}",
                              "--retries", "0")  # fmt: skip
        assert code in (2, 3) and "PIRACY" not in out and "NOT SHOWN" not in out, (
            seed,
            MUTATIONS[seed % len(MUTATIONS)],
            line,
            out,
        )
        outcomes.append(code)
    assert len(outcomes) == 370
