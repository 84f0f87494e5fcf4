"""uapfp demo end to end on the shipped slice, and its evidence page in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

from uapfp.demo import run_demo

from .test_report import CHROMIUM_MISSING, _chromium, _decodes, skip_without_chromium


@skip_without_chromium
def test_the_demo_runs_and_its_evidence_page_renders(tmp_path, capsys):
    assert not CHROMIUM_MISSING
    assert run_demo(out=str(tmp_path / "demo"), progress=False, full=False) == 0
    out = capsys.readouterr().out
    match = re.search(r"(\d+)/(\d+) verdicts match the truth", out)
    assert match and int(match.group(2)) >= 10, out[-2000:]
    page = next((tmp_path / "demo" / "evidence").glob("*.html"))
    record = json.loads(page.with_suffix(".json").read_text())
    assert str(page) in out and record["verdict"] in ("piracy", "not shown")
    assert record["method"] == "siblings"  # the default (auto) on a zoo with the victim's siblings
    # The suggested next command names a held-out copy (one the kit never trained on), not a zoo model at random.
    suggested = re.search(r"uapfp verify --kit \S+ --suspect (\S+)", out.split("Next:", 1)[1]).group(1)
    kit_info = json.loads((tmp_path / "demo" / "kit" / "kit.json").read_text())
    assert Path(suggested).stem in kit_info["models"]["heldout"] and "piracy" in Path(suggested).stem
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
    assert record["verdict"] in text and f"{record['p_value']:.3g}" in text
    assert record["kit_sha256"] in text and record["query_log_sha256"] in text and record["queries"] > 0
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())
    assert len(images) >= 2 and all(_decodes(d) for d in images)
