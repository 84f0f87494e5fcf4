"""Copies detected and honest models flagged at other significance levels, from a families benchmark's JSON.

    python scripts/families-at-alpha.py runs/bench-families-quick-dev.json runs/bench-families-quick-test.json
    python scripts/families-at-alpha.py runs/bench-families-v2s.json --alphas 0.01 0.05

`uapfp bench families` counts verdicts at its own alpha (0.01), while `verify` gives them at the kit's
(0.05 by default). Every suspect's p-value is in the benchmark's JSON, so the counts at any level
follow from it without scoring anything again. One line per file, half, answers and method.
"""

from __future__ import annotations

import argparse
import json

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("bench", nargs="+", help="JSON files written by `uapfp bench families --out`")
parser.add_argument("--alphas", nargs="+", type=float, default=[0.01, 0.05])
parser.add_argument("--methods", nargs="+", default=["uap", "siblings", "uap+siblings", "errors", "sac"])
args = parser.parse_args()

print("| file | half | answers | method | " + " | ".join(f"detected, flagged at {a}" for a in args.alphas) + " |")
print("|---" * (4 + len(args.alphas)) + "|")
for path in args.bench:
    suspects = json.load(open(path))["suspects"]
    for half in ("dev", "test"):
        for outputs in ("probs", "label"):
            for method in args.methods:
                rows = [s for s in suspects if (s["half"], s["outputs"], s["method"]) == (half, outputs, method)]
                copies = [s["p_value"] for s in rows if s["role"] == "piracy"]
                honest = [s["p_value"] for s in rows if s["role"] == "homologous"]
                if not rows:
                    continue
                cells = [
                    f"{sum(p < a for p in copies)}/{len(copies)}, {sum(p < a for p in honest)}/{len(honest)}"
                    for a in args.alphas
                ]
                print(f"| {path} | {half} | {outputs} | `{method}` | " + " | ".join(cells) + " |")
