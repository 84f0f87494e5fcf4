"""A study: does a family null stay honest for honest suspects trained with another recipe than its own?

    python scripts/study-family-null-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    PYTHONPATH=examples UAPFP_TRUST_CODE=owner_nets \\
        python scripts/study-family-null-recipe.py --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2

`uapfp bench families --family-null 12` measured the null of a suspect's own family (until 2026-12-07 of one
recipe, into ``MODELS/family-null-ARCH``: now ``uapfp family-null --epochs 4 --out MODELS/family-null-ARCH``) on honest suspects
trained with the null's own recipe (4 epochs, batch 128, no augmentation): exchangeable with the null's
models, which flatters it. A real honest suspect was trained its maker's way. This study trains the four
honest kinds of each family of the half (on D_V with Adam and with SGD, overlapping D_V by half, disjoint
from it) with other recipes, into ``--out`` (default ``runs/family-null-recipe-KIT``; resumable), and
verifies each through the product (`verify`, every set) against the family null the benchmark built
(``MODELS/family-null-FAMILY``, 12 models) and against the kit's calibration models, with probabilities
and labels. Recipes: ``long`` (8 epochs, batch 64, random crops of 2 pixels) and ``short`` (2 epochs,
batch 256). Test half unless ``--half dev``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.family_null import KINDS, FamilyNull, train_honest
from uapfp.kit import Kit
from uapfp.storage import load_tensors, save_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.training import accuracy
from uapfp.verify import verify
from uapfp.zoo import Zoo

RECIPES = {"long": {"epochs": 8, "batch_size": 64, "augment": "crop:2"}, "short": {"epochs": 2, "batch_size": 256}}

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--zoo", required=True)
parser.add_argument("--kit", required=True)
parser.add_argument("--models", required=True, help="the families benchmark's folder, with its family-null-* nulls")
parser.add_argument("--half", choices=("dev", "test"), default="test")
parser.add_argument("--out", default=None)
parser.add_argument("--bench", default=None, help="the families benchmark's JSON of the half, for nulls that mix recipes")
args = parser.parse_args()
logging.basicConfig(level=logging.WARNING)
zoo, kit = Zoo.load(args.zoo), Kit.load(args.kit)
data, splits = zoo.load_dataset(), zoo.splits()
out = Path(args.out or f"runs/family-null-recipe-{Path(args.kit).name}")
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
c, h, w = data.input_shape
rows = []
for r_index, (recipe, kw) in enumerate(RECIPES.items()):
    for f_index, family in enumerate(families):
        null = FamilyNull.load(Path(args.models) / f"family-null-{family}", kit)
        for k_index, kind in enumerate(KINDS):
            file = out / recipe / f"{family}-{kind}.safetensors"
            if file.is_file():
                model = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
                model.load_state_dict(load_tensors(file))
                model.eval()
            else:
                seed = 30_000 + 1000 * r_index + 100 * f_index + k_index
                model = train_honest(family, kind, data, splits, seed=seed, **kw)
                save_tensors(file, model.state_dict())
            acc = accuracy(model, data.x_test, data.y_test)
            for mode in ("probs", "label"):
                shape = {"input_shape": kit.input_shape, "num_classes": kit.num_classes, "output": mode}
                own = verify(kit, TorchSuspect(model, **shape), family_null=null, sequential=False)
                shared = verify(kit, TorchSuspect(model, **shape), method=own.method, sequential=False)
                rows.append((recipe, family, kind, mode, acc, own.similarity, own.null_mean, own.p_value, shared.p_value))
            print(f"{recipe} {family} {kind}: accuracy {acc:.4f}, siblings {rows[-2][5]:.3f} (null mean "
                  f"{rows[-2][6]:.3f}), p family null {rows[-2][7]:.3g}, kit's {rows[-2][8]:.3g}", flush=True)

print(f"\n{args.half} half, {Path(args.kit).name}: honest models flagged, of {len(families) * len(KINDS)} per recipe")
print("| recipe | answers | family null: 0.01; 0.05 | the kit's calibration models: 0.01; 0.05 | accuracy |")
print("|---|---|---|---|---|")
for recipe in RECIPES:
    for mode in ("probs", "label"):
        mine = [r for r in rows if r[0] == recipe and r[3] == mode]
        cells = [f"{sum(r[i] < 0.01 for r in mine)}; {sum(r[i] < 0.05 for r in mine)}" for i in (7, 8)]
        accs = [r[4] for r in mine]
        print(f"| {recipe} | {mode} | {cells[0]} | {cells[1]} | {min(accs):.3f} to {max(accs):.3f} |")

# ---- nulls that mix recipes: the family null's 12 models with the other recipes' models, each recipe left
# out in turn (honest models of a recipe the null never saw), and all together; the copies and the benchmark's
# honest models (from --bench, `siblings` against the kit: the similarity does not depend on the null) too
if args.bench:
    import json

    import numpy as np

    from uapfp.methods import get_method
    from uapfp.significance import prediction_greater

    bench = json.loads(Path(args.bench).read_text())
    sib = get_method("siblings")
    print("\nnulls that mix recipes (`siblings`): detected or flagged at 0.01; 0.05")
    print("| answers | null per family | copies (of 44) | the benchmark's honest models | honest `long` | honest `short` |")
    print("|---|---|---|---|---|---|")
    for mode in ("probs", "label"):
        null12 = {
            f: sib.similarities(kit, FamilyNull.load(Path(args.models) / f"family-null-{f}", kit).answers["errors"][
                :, : kit.config.fingerprints], mode).mean(1).numpy()
            for f in {s["arch"] for s in bench["suspects"]} | set(families)
        }  # fmt: skip
        trained = {recipe: {f: np.array([r[5] for r in rows if r[0] == recipe and r[1] == f and r[3] == mode])
                            for f in families} for recipe in RECIPES}  # fmt: skip
        bench_rows = [s for s in bench["suspects"] if s["method"] == "siblings" and s["outputs"] == mode]
        for name, extra in (("the 12 (its recipe)", ()), ("12 + `long`", ("long",)), ("12 + `short`", ("short",)),
                            ("12 + `long` + `short`", ("long", "short"))):  # fmt: skip
            nulls = {f: np.concatenate([v, *(trained[r][f] for r in extra if f in trained[r])]) for f, v in null12.items()}
            copies = [(s["arch"], s["similarity"]) for s in bench_rows if s["role"] == "piracy"]
            honest = [(s["arch"], s["similarity"]) for s in bench_rows if s["role"] == "homologous"]
            groups = [copies, honest] + [
                None if recipe in extra else [(f, v) for f in families for v in trained[recipe][f]] for recipe in RECIPES
            ]  # a recipe's honest models, unless the null holds them
            cells = []
            for items in groups:
                if items is None:
                    cells.append("(in the null)")
                    continue
                p = [prediction_greater(np.array([v]), nulls[f]) for f, v in items]
                cells.append(f"{sum(x < 0.01 for x in p)}; {sum(x < 0.05 for x in p)} of {len(p)}")
            print(f"| {mode} | {name} | " + " | ".join(cells) + " |")
