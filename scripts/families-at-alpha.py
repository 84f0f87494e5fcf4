"""Copies detected and honest models flagged at other significance levels, from a families benchmark's JSON.

    python scripts/families-at-alpha.py runs/bench-families-quick-dev.json runs/bench-families-quick-test.json
    python scripts/families-at-alpha.py runs/bench-families-v2s.json --alphas 0.01 0.05

`uapfp bench families` counts verdicts at its own alpha (0.01), while `verify` gives them at the kit's
(0.05 by default). Every suspect's p-value is in the benchmark's JSON, so the counts at any level
follow from it without scoring anything again. One line per file, half, answers and method.

With ``--usable D``, the copies are counted in two groups: those whose test accuracy is within D of the mean
of their family's honest suspects (the benchmark's, not a family null's models), copies a thief could serve
in their place, and the rest (ART's adaptive copies of 3,000 queries, adversarially trained copies, pruned
copies that lost their accuracy).

    python scripts/families-at-alpha.py runs/bench-families-quick-test-span.json --usable 0.05 --methods siblings "siblings (family null)"
"""

from __future__ import annotations

import argparse
import json

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("bench", nargs="+", help="JSON files written by `uapfp bench families --out`")
parser.add_argument("--alphas", nargs="+", type=float, default=[0.01, 0.05])
parser.add_argument("--methods", nargs="+", default=["uap", "siblings", "uap+siblings", "errors", "sac"])
parser.add_argument("--usable", type=float, default=None,
                    help="also count the copies within this much test accuracy of their family's honest suspects")  # fmt: skip
args = parser.parse_args()

extra = f" | copies within {args.usable} of their family's accuracy; the rest" if args.usable is not None else ""
print("| file | half | answers | method | " + " | ".join(f"detected, flagged at {a}" for a in args.alphas) + extra + " |")
print("|---" * (4 + len(args.alphas) + (args.usable is not None)) + "|")
for path in args.bench:
    suspects = json.load(open(path))["suspects"]
    honest_accuracy: dict[tuple[str, str], list[float]] = {}
    for s in suspects:  # the benchmark's own honest suspects, once each (one method's rows)
        if s["role"] == "homologous" and not s["kind"].startswith("null-") and s["method"] == suspects[0]["method"]:
            if s["outputs"] == suspects[0]["outputs"]:
                honest_accuracy.setdefault((s["half"], s["family"]), []).append(s["test_accuracy"])
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
                if args.usable is not None:
                    level = {k: sum(v) / len(v) for k, v in honest_accuracy.items()}
                    usable = [s for s in rows if s["role"] == "piracy"
                              and s["test_accuracy"] >= level[(half, s["family"])] - args.usable]  # fmt: skip
                    rest = [s for s in rows if s["role"] == "piracy" and s not in usable]
                    cells.append("; ".join(
                        " and ".join(f"{sum(s['p_value'] < a for s in group)}/{len(group)}" for a in args.alphas)
                        for group in (usable, rest)
                    ))  # fmt: skip
                print(f"| {path} | {half} | {outputs} | `{method}` | " + " | ".join(cells) + " |")
