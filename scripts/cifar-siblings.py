"""More siblings for a CIFAR preset's kit, measured: python scripts/cifar-siblings.py --data
imagefolder:../shared/data/cifar10-jpeg --siblings 4 [--preset cpu] [--work DIR] [--study DIR]

Needs the work folder of `uapfp bench cifar10` after its run. Copies its zoo into STUDY/zoo
(hard links: nothing of the run's is rewritten), adds siblings up to ``--siblings`` there (two at
a time on a local Ray instance; the other models are the run's, read back), protects it into
STUDY/kit with the preset's kit settings and scores the methods that read the victim's errors
(``siblings``, ``errors``, ``sac``) on the run's held-out suspects. Prints the Markdown table of
``uapfp bench cifar10`` for them and, per half and answer mode, the copies' and honest models'
similarities and p-values of ``siblings``, and the null's model means. Resumable.
"""

import argparse
from dataclasses import replace
from pathlib import Path

from _study import cifar_preset_args, hardlink_copy

from uapfp.bench.cifar10 import preset_suspects
from uapfp.bench.scoring import score_suspects
from uapfp.data import load_dataset
from uapfp.kit import Kit
from uapfp.methods import get_method
from uapfp.protect import protect
from uapfp.zoo import build_zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--siblings", type=int, default=4, help="siblings of the study's zoo (the preset's and more)")
parser.add_argument("--study", help="the study's folder (default WORK/study-siblings-N)")
args, chosen, work, preset_config = cifar_preset_args(parser)
study = Path(args.study or work / f"study-siblings-{args.siblings}")
config = replace(preset_config, siblings=args.siblings)
data = load_dataset(args.data)
study.mkdir(parents=True, exist_ok=True)
hardlink_copy(work / "zoo", study / "zoo")
zoo = build_zoo(study / "zoo", config, dataset=data, progress=True, ray_address="local")
kit = Kit.load(study / "kit") if (study / "kit" / "manifest.json").is_file() else None
kit = kit or protect(zoo, study / "kit", config=chosen.protect)
records = preset_suspects(work, chosen, preset_config, zoo, data)
rows, per_suspect = score_suspects(
    kit, str(work / "suspects"), records, data, methods=("siblings", "errors", "sac"), outputs=("probs", "label"),
    alpha=0.01,
)
print(f"{len(kit.info['siblings'])} siblings; null from {len(kit.info['models']['calibration'])} honest models\n")
print("| half | outputs | method | auc | tpr_at_1pct_fpr | detected | flagged |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['half']} | {r['outputs']} | {r['method']} | {r['auc']:.4f} | {r['tpr_at_1pct_fpr']:.4f} "
          f"| {r['detected']}/{r['copies']} | {r['flagged']}/{r['honest']} |")  # fmt: skip
method = get_method("siblings")
for mode in ("probs", "label"):
    null = method.null(kit, mode, kit.config.fingerprints, None).mean(1)
    print(f"\n`siblings`, {mode}: null model means {', '.join(f'{v:.4f}' for v in sorted(null.tolist()))}")
    for half in dict.fromkeys(r["half"] for r in per_suspect):
        mine = [s for s in per_suspect if s["method"] == "siblings" and s["outputs"] == mode and s["half"] == half]
        for role in ("piracy", "homologous"):
            sims = [s["similarity"] for s in mine if s["role"] == role]
            ps = [s["p_value"] for s in mine if s["role"] == role]
            print(f"- {half} {role}: similarity {min(sims):.4f}-{max(sims):.4f}, p {min(ps):.4g}-{max(ps):.4g}")
