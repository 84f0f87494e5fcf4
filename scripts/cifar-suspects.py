"""A CIFAR preset's held-out suspects and their recovery, without the rest of the zoo:
python scripts/cifar-suspects.py --data imagefolder:../shared/data/cifar10-jpeg [--preset cpu] [--work DIR]

Trains (or reads back) what `uapfp bench cifar10` trains as its held-out suspects, with the
benchmark's own code (uapfp.bench.cifar10.preset_suspects) in the same work folder (default
runs/cifar10-PRESET), so that the bench command reads every one of them back instead of training
it again. They need the zoo's victim only: if the work folder has none, it is trained first, as
the zoo's first model (the zoo's build with no other job; the bench command then adds the rest).
Prints a Markdown table: per architecture, each suspect's test accuracy and its recovery (its
accuracy over the victim's). Resumable, as the benchmark is.
"""

import argparse
import time
from dataclasses import replace

from _study import cifar_preset_args

from uapfp.bench.cifar10 import preset_suspects
from uapfp.data import load_dataset
from uapfp.zoo import Zoo, build_zoo

args, chosen, work, config = cifar_preset_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
data = load_dataset(args.data)
start = time.perf_counter()
if (work / "zoo" / "models" / "victim.json").is_file():
    zoo = Zoo.load(work / "zoo")
else:
    victim_only = replace(config, piracy_per_cell=0, homologous_per_cell=0, siblings=0)
    zoo = build_zoo(work / "zoo", victim_only, dataset=data, progress=True)
victim_acc = float(zoo.victim["test_accuracy"])
records = preset_suspects(work, chosen, config, zoo, data)
seconds = time.perf_counter() - start

kinds = list(dict.fromkeys(r.kind for r in records))
print(f"Victim `{zoo.victim['arch']}`: test accuracy {victim_acc:.4f}. Each cell: test accuracy (recovery).")
print(f"Seconds of this run: {seconds:.0f}; summed over the suspects' cards: {sum(r.seconds for r in records):.0f}.\n")
print("| arch | half | " + " | ".join(kinds) + " |")
print("|---|---|" + "---|" * len(kinds))
for arch in dict.fromkeys(r.family for r in records):
    mine = {r.kind: r for r in records if r.family == arch}
    cells = [f"{mine[k].test_accuracy:.4f} ({mine[k].test_accuracy / victim_acc:.3f})" if k in mine else "-" for k in kinds]
    print(f"| `{arch}` | {next(iter(mine.values())).half} | " + " | ".join(cells) + " |")
