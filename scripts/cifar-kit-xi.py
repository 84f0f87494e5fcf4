"""The UAP's radius of a CIFAR preset's kit, measured: python scripts/cifar-kit-xi.py --data
imagefolder:../shared/data/cifar10-jpeg [--preset cpu] [--work DIR] [--xi 0.3,0.1,0.03]

Needs the work folder of `uapfp bench cifar10` after its run (the zoo and the held-out suspects,
read back, never trained here). For each radius, protects the zoo again into WORK/study-xi/xi-X
with the preset's other kit settings (resumable: a finished kit is read back) and scores the UAP
methods (`uap`, the paper's, and `uap-raw`, its fingerprint without the encoder) on the same
suspects as the benchmark. Prints one Markdown table: AUC, TPR at 1 % FPR, copies detected and
honest models flagged at alpha 0.01, per half (`in-zoo`: the development half, where a radius is
chosen; `left-out`: the test half, reported) and answer mode, and the UAP's fooling rate.
"""

import argparse
from dataclasses import replace

from _study import cifar_preset_args

from uapfp.bench.cifar10 import preset_suspects
from uapfp.bench.scoring import score_suspects
from uapfp.data import load_dataset
from uapfp.kit import Kit
from uapfp.protect import protect
from uapfp.zoo import Zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--xi", default="0.3,0.1,0.03", help="comma-separated L-inf radii (inputs in [0, 1])")
args, chosen, work, config = cifar_preset_args(parser)
data = load_dataset(args.data)
zoo = Zoo.load(work / "zoo")
records = preset_suspects(work, chosen, config, zoo, data)
lines = []
for xi in (float(x) for x in args.xi.split(",")):
    kit_dir = work / "study-xi" / f"xi-{xi:g}"
    if (kit_dir / "manifest.json").is_file():
        kit = Kit.load(kit_dir)
    else:
        kit = protect(zoo, kit_dir, config=replace(chosen.protect, xi=xi))
    fooling = kit.info.get("uap", {}).get("fooling_rate_val")
    rows, _ = score_suspects(
        kit, str(work / "suspects"), records, data, methods=("uap", "uap-raw"), outputs=("probs", "label"), alpha=0.01
    )
    for r in rows:
        lines.append(
            f"| {xi:g} | {fooling if fooling is None else round(fooling, 3)} | {r['half']} | {r['outputs']} "
            f"| {r['method']} | {r['auc']:.4f} | {r['tpr_at_1pct_fpr']:.4f} | {r['detected']}/{r['copies']} "
            f"| {r['flagged']}/{r['honest']} |"
        )
print("| xi | fooling rate | half | outputs | method | auc | tpr_at_1pct_fpr | detected | flagged |")
print("|---|---|---|---|---|---|---|---|---|")
print("\n".join(lines))
