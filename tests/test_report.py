"""The evidence report: made by uapfp verify --report from a kit, rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from uapfp.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _chromium(tmp_path, *args):  # type: ignore[no-untyped-def]
    profile = tmp_path / f"chromium-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (.ci/run installs it)")
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
    import base64
    import io
    import re

    images = re.findall(r'src="data:image/png;base64,([^"]+)"', report.read_text())
    assert len(images) >= 2
    for data in images:
        figure = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"), dtype=np.float32)
        assert figure.shape[0] > 100 and figure.std() > 10
    # uapfp report renders the same record from the JSON alone
    assert main(["-q", "report", str(verdict), "--out", str(tmp_path / "again.html")]) == 0
    again = (tmp_path / "again.html").read_text()
    assert tiny_kit.sha256 in again and record["verdict"] in again
