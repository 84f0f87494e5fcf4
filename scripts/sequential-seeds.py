"""The sequential test against the fixed one over the held-out models of several demo kits:
python scripts/sequential-seeds.py SEEDS [SHARES], e.g. 0,1,2,3,4,5,6,7 0.1,0.025 (each seed's
kit built by scripts/demo-seeds.py where runs/demo-slice-s{seed} lacks one; then what
`uapfp bench sequential` measures, once per share of alpha spent at each early look, default
today's uapfp.sequential.EARLY_SHARE).

How docs/method.md's many-seed figures were measured (2-core VM, nothing else running).
"""

import statistics
import subprocess
import sys
from pathlib import Path

import uapfp.sequential as sq
from uapfp.bench.sequential import SequentialConfig, compare_sequential

seeds = sys.argv[1].split(",")
shares = [float(x) for x in sys.argv[2].split(",")] if len(sys.argv) > 2 else [sq.EARLY_SHARE]
for seed in seeds:
    if not Path(f"runs/demo-slice-s{seed}/kit/kit.json").exists():
        subprocess.run([sys.executable, "scripts/demo-seeds.py", seed, "slice"], check=True, stdout=subprocess.DEVNULL)

print(
    "| early share | method | suspects | verdicts as the fixed test's | median queries, fixed / sequential "
    "| mean, sequential | copies detected, fixed / sequential | honest flagged, fixed / sequential |"
)
print("|---|---|---|---|---|---|---|---|")
differs = []
for share in shares:
    sq.EARLY_SHARE = share  # verify reads it at each verification
    rows: dict[str, list[dict]] = {}
    for seed in seeds:
        folder = f"runs/demo-slice-s{seed}"
        report = compare_sequential(SequentialConfig(kit=f"{folder}/kit", zoo=f"{folder}/zoo"))
        for s in report.suspects:
            rows.setdefault(s["method"], []).append({**s, "seed": seed})
    for method, ss in rows.items():
        copies = [s for s in ss if s["role"] == "piracy"]
        honest = [s for s in ss if s["role"] != "piracy"]

        def hits(group: list[dict], key: str) -> str:
            return f"{sum(s[key] == 'piracy' for s in group)}/{len(group)}"

        print(
            f"| {share} | `{method}` | {len(ss)} | {sum(s['fixed'] == s['sequential'] for s in ss)}/{len(ss)} | "
            f"{statistics.median(s['fixed_queries'] for s in ss):,.0f} / "
            f"{statistics.median(s['sequential_queries'] for s in ss):,.0f} | "
            f"{statistics.mean(s['sequential_queries'] for s in ss):,.0f} | {hits(copies, 'fixed')} / "
            f"{hits(copies, 'sequential')} | {hits(honest, 'fixed')} / {hits(honest, 'sequential')} |"
        )
        differs += [
            f"share {share}, {method}, seed {s['seed']} {s['id']}: fixed {s['fixed']} (p {s['fixed_p']:.4f}), "
            f"sequential {s['sequential']} (p {s['sequential_p']:.4f}, after {s['settled_after']} sets)"
            for s in ss
            if s["fixed"] != s["sequential"]
        ]
print("\n".join(["", "Where the two differ:", *differs] if differs else ["", "The two agree on every model."]))
