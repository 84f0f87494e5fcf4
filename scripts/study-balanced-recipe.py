"""A study: does the balanced statistic keep the family null honest for honest suspects trained another way?

    python scripts/study-family-null-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick --half dev
    python scripts/study-balanced-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

The family null (`verify --family-null`: `siblings` against 12 honest models of the suspect's architecture,
the benchmark's recipe) flags honest models trained for half the epochs (`short`), because the victim's
deviation from its siblings on its error images leans towards "less mass on the true class", and so does
any less accurate model's (`scripts/study-recipe-robust.py`). The *balanced* statistic of
`scripts/study-balanced-unique.py` was built to cancel accuracy to first order: on the victim's unique
points (held-out images and their 1-pixel shifts where its label differs from the one 7 of its 8 siblings
give), it averages a suspect's ``vmc`` (its probability of the victim's label minus that of the siblings'
label) over R, where the victim alone is right, and over W, where it alone is wrong; a more accurate model
gains on R what it loses on W, a copy scores high on both. The own-family study chose ``siblings`` +
balanced on the dev half, but it was never tried on honest models of other recipes, nor against the
product's family null. This study scores `siblings`, balanced (k = 7) and the two averaged on the
calibration models' scale, each against the benchmark's family null of the suspect's architecture
(``MODELS/family-null-ARCH``, the product's code, 12 models of 4 epochs: ``uapfp family-null --epochs 4``; the
benchmark's ``--family-null 12`` built it until 2026-12-07), on the benchmark's copies and honest models,
on the null's own models (each against the other 11), and on the `long` (8 epochs, batch 64, 2-pixel crops)
and `short` (2 epochs, batch 256) honest models that `scripts/study-family-null-recipe.py` trains into
``runs/family-null-recipe-KIT`` (run it first for the half). Alpha 0.01; 0.05.

Answers of the null and recipe models are cached in ``runs/study-balanced-recipe-KIT-HALF.pt``; those of the
benchmark's suspects come from the caches the other studies of the half write. Dev half unless ``--half test``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from _study import UniquePointStudy, cell, null_and_recipe_files, p_left_out

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.evaluate import auc
from uapfp.methods import truncate
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect

RECIPES = ("long", "short")
st = UniquePointStudy(__doc__)
args, kit, info, data = st.args, st.kit, st.info, st.data
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
bench = [i for i in info if info[i]["group"] == "fam"]
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
copies = [i for i in bench if info[i]["role"] == "piracy"]
honest = [i for i in bench if info[i]["role"] == "homologous"]

# the null models' and the recipe models' answers to the error sets and the unique points (cached)
c, h, w = data.input_shape
files = null_and_recipe_files(args.models, args.kit, arch.values(), families)
cache = Path(f"runs/study-balanced-recipe-{st.tag}.pt")
stored: dict[str, torch.Tensor] = torch.load(cache, weights_only=True) if cache.is_file() else {}
for key, file in files.items():
    if f"{key}#errors" in stored:
        continue
    if not file.is_file():
        raise SystemExit(f"{file} is missing: run scripts/study-family-null-recipe.py --half {args.half} first")
    model = create_model(key.split("/")[1], in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    model.load_state_dict(load_tensors(file))
    s = TorchSuspect(model.eval(), input_shape=kit.input_shape, num_classes=kit.num_classes, output="probs")
    stored[f"{key}#errors"] = torch.stack([s(q) for q in st.ref.queries])
    stored[f"{key}#unique"] = s(st.X[st.union])
torch.save(stored, cache.with_suffix(".partial"))
cache.with_suffix(".partial").rename(cache)
for key in files:
    st.on_errors[key], st.on_unique[key] = stored[f"{key}#errors"], stored[f"{key}#unique"]


print(
    f"{args.half} half, {Path(args.kit).name}: each suspect against its own architecture's family null (12 honest "
    "models, the benchmark's recipe; the null's own models each against the other 11); alpha 0.01; 0.05"
)
print(
    "| answers | statistic | AUC | copies detected | the benchmark's honest flagged | null models flagged | "
    "`long` flagged | `short` flagged |\n" + "|---" * 8 + "|"
)
for mode in ("probs", "label"):
    sib = {i: st.siblings(a, mode) for i, a in st.on_errors.items()}
    bal = {i: st.vmc(truncate(a, mode), 7) for i, a in st.on_unique.items()}
    for name, sim in (("`siblings`", sib), ("balanced, k = 7", bal), ("`siblings` + balanced", st.combined(sib, bal))):
        null_of = {a: [k for k in files if k.startswith(f"null/{a}/")] for a in set(arch.values())}
        p = functools.partial(p_left_out, sim)
        loo = [p(k, null_of[a]) for a in families for k in null_of[a]]
        rec = [[p(k, null_of[k.split("/")[1]]) for k in files if k.startswith(r + "/")] for r in RECIPES]
        print(
            f"| {mode} | {name} | {auc([sim[i] for i in copies], [sim[i] for i in honest]):.3f} | "
            f"{cell([p(i, null_of[arch[i]]) for i in copies])} | {cell([p(i, null_of[arch[i]]) for i in honest])} | "
            f"{cell(loo)} | {cell(rec[0])} | {cell(rec[1])} |",
            flush=True,
        )
