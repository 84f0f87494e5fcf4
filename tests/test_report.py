"""The evidence report: made by uapfp verify --report from a kit, rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from uapfp.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_MISSING = CHROMIUM is None
#: CI installs Debian's chromium (.ci/run): there a missing browser fails the test instead of skipping it
skip_without_chromium = pytest.mark.skipif(
    CHROMIUM_MISSING and not os.environ.get("CI"), reason="Debian's chromium is not installed (.ci/run installs it)"
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _chromium(tmp_path, *args):  # type: ignore[no-untyped-def]
    profile = tmp_path / f"chromium-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@skip_without_chromium
def test_a_report_opens_in_chromium_with_the_verdict_and_figures(tiny_zoo, tiny_kit, tmp_path, capsys):
    pirate = next(c for c in tiny_zoo.cards if c["role"] == "piracy" and c["id"] in tiny_kit.info["models"]["heldout"])
    report, verdict = tmp_path / "report.html", tmp_path / "verdict.json"
    code = main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", pirate["_path"], "--json", str(verdict),
                 "--report", str(report)])  # fmt: skip
    capsys.readouterr()
    record = json.loads(verdict.read_text())
    assert code == 0 and record["query_log_sha256"] and record["kit"]["sha256"] == tiny_kit.sha256
    page = report.read_text()
    assert 'src="http' not in page and 'href="http' not in page and 'src="data:image/png' in page  # self-contained
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    text = " ".join(dom.split())
    assert record["verdict"] in text and f"{record['p_value']:.3g}" in text
    assert tiny_kit.sha256 in text and record["query_log_sha256"] in text
    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,2200", report.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # not blank: text and figures
    # the figures decoded: the PNG data in the page are real images
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', report.read_text())
    assert len(images) >= 2 and all(_decodes(d) for d in images)
    # uapfp report renders the same record from the JSON alone
    assert main(["-q", "report", str(verdict), "--out", str(tmp_path / "again.html")]) == 0
    again = (tmp_path / "again.html").read_text()
    assert tiny_kit.sha256 in again and record["verdict"] in again


def test_roc_points_by_hand_and_their_area_is_the_auc():
    from uapfp.evaluate import auc
    from uapfp.report_results import roc_points

    fpr, tpr = roc_points([0.9, 0.7, 0.4], [0.8, 0.3])
    # thresholds inf, 0.9, 0.8, 0.7, 0.4, 0.3
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 0.5, 1.0]
    assert np.allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # rounded: ties count 1/2
    fpr, tpr = roc_points(pos.tolist(), neg.tolist())
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: a tie is a diagonal step
    assert abs(area - auc(pos, neg)) < 1e-12


@skip_without_chromium
def test_evaluation_and_families_pages_render(tiny_zoo, tiny_kit, tmp_path, capsys):
    page, record = tmp_path / "evaluation.html", tmp_path / "evaluation.json"
    assert main(["-q", "evaluate", "--kit", str(tiny_kit.path), "--zoo", str(tiny_zoo.path), "--json", str(record),
                 "--report", str(page)]) == 0  # fmt: skip
    capsys.readouterr()
    ev = json.loads(record.read_text())
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())  # what a reader sees
    assert f"AUC {ev['summary']['auc']:.4f}" in text and tiny_kit.sha256 in text
    assert all(f"<td>{a}</td>" in dom for a in {m["arch"] for m in ev["models"]})
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())
    assert len(images) == 2 and all(_decodes(d) for d in images)
    # a families benchmark's record (its layout, scores made up here) renders one ROC per half and answer mode
    suspects = [
        {"half": "dev", "outputs": "probs", "method": m, "family": f, "role": role, "similarity": s, "verdict": v}
        for m in ("uap", "siblings") for f in ("mlp", "lenet5")
        for role, s, v in (("piracy", 0.9, "piracy"), ("piracy", 0.4, "not shown"), ("homologous", 0.5, "not shown"))
    ]  # fmt: skip
    rows = [{"half": "dev", "outputs": "probs", "method": m, "auc": 0.5, "copies": 4, "honest": 2} for m in ("uap", "siblings")]
    bench = tmp_path / "families.json"
    bench.write_text(json.dumps({"experiment": "families", "zoo": "z", "kit": "k", "alpha": 0.01,
                                 "families": {"dev": ["mlp", "lenet5"]}, "rows": rows, "suspects": suspects}))  # fmt: skip
    assert main(["-q", "report", str(bench)]) == 0
    html_page = bench.with_suffix(".html").read_text()
    assert html_page.count("<h2>") == 1 and "<td>lenet5</td>" in html_page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html_page)
    assert len(images) == 3 and all(_decodes(d) for d in images)  # one ROC, a CDF per method
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"something": 1}))
    assert main(["-q", "report", str(bad)]) != 0
    assert "evaluate --json" in capsys.readouterr().err


def _decodes(data: str) -> bool:
    import base64
    import io

    figure = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"), dtype=np.float32)
    return figure.shape[0] > 100 and figure.std() > 10


def test_a_crafted_record_injects_no_markup_and_missing_values_render():
    from uapfp.report import verdict_report

    bad = "<script>alert(1)</script>"
    page = verdict_report({"verdict": "not shown", "suspect": bad, "p_value": None, "alpha": bad, "queries": bad,
                           "similarity": float("nan"), "null_models": [0.1, float("nan"), None, 0.2], "kit_sha256": bad,
                           "environment": {"uapfp": bad}, "channels": [], "per_fingerprint": [0.5, None]})  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;" in page and "p = n/a" in page
