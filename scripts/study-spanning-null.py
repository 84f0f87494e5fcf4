"""A study: a family null that spans two recipes (`verify --family-null A --family-null B`), through the product.

    python scripts/study-family-null-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick --half dev
    python scripts/study-recipe-robust.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    uapfp family-null --kit runs/kit-quick --zoo runs/zoo-quick --arch ARCH --out runs/families-quick/family-null-ARCH-e2 --epochs 2 --seed 1   # each family
    python scripts/study-spanning-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

The family null the benchmark builds (``MODELS/family-null-ARCH``: 12 honest models of the suspect's
architecture, the zoo's recipe, 4 epochs) flags honest suspects trained for fewer epochs
(`scripts/study-family-null-recipe.py`). An owner can now join it with a second folder built with another
recipe (``uapfp family-null --epochs 2 --seed 1``, into ``MODELS/family-null-ARCH-e2``; and, where it is there, a
third of 1 epoch, ``--epochs 1 --seed 2`` into ``MODELS/family-null-ARCH-e1``) by giving ``--family-null``
more than once (:func:`uapfp.family_null.combine_nulls`). This study scores each suspect of the half
as `verify --family-null` does (`siblings` on every set, the kit's prediction t-test against the null's
models scored as suspects, probabilities and labels) against its architecture's null alone and against
the two joined: the benchmark's copies and honest models, the `long` (8 epochs, batch 64, crops) and
`short` (2 epochs, batch 256: fewer steps than the second folder's) honest models of the recipe study, and
each null's own models against the rest of it. Counted at alpha 0.01; 0.05. The answers come from the
caches of the other studies of the half (run `study-recipe-robust.py` first) and from the nulls' folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from _study import cell, family_answers, family_study_args

from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.family_null import KINDS, FamilyNull, combine_nulls
from uapfp.methods import get_method, truncate
from uapfp.significance import prediction_greater

args, zoo, kit = family_study_args(__doc__)
tag = f"{Path(args.kit).name}-{args.half}"
ref = kit.references["errors"]
n_sets = kit.config.fingerprints
answers, info = family_answers(zoo, kit, args.models, args.half, lambda s: torch.stack([s(q) for q in ref.queries]),
                               cache=f"runs/study-siblings-level-{tag}.pt")  # fmt: skip
recipe_answers = torch.load(f"runs/study-recipe-robust-{tag}.pt", weights_only=True)  # scripts/study-recipe-robust.py
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
bench = [i for i in info if info[i]["group"] == "fam"]
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
nulls = {}
for a in sorted(set(arch.values())):
    one = FamilyNull.load(Path(args.models) / f"family-null-{a}", kit)
    two = FamilyNull.load(Path(args.models) / f"family-null-{a}-e2", kit)
    nulls[a] = {"the zoo's recipe, 12 models": one, "and 2 epochs, 24 models": combine_nulls([one, two])}
    if (Path(args.models) / f"family-null-{a}-e1").is_dir():  # and a third folder, of 1 epoch (--seed 2)
        three = FamilyNull.load(Path(args.models) / f"family-null-{a}-e1", kit)
        nulls[a]["and 2 and 1 epochs, 36 models"] = combine_nulls([one, two, three])
method = get_method("siblings")


def similarity(a: torch.Tensor, mode: str) -> float:
    """A suspect's `siblings` similarity on the kit's sets, from its answers (S, n, K) as probabilities."""
    return float(method.compare(ref.truncated(mode, n_sets), truncate(a[:n_sets], mode)).mean())


def p_value(s: float, null: FamilyNull, mode: str) -> float:
    """What `verify --family-null` gives: the prediction t-test against the null's models scored as suspects."""
    return prediction_greater(np.array([s]), null.similarities(kit, method, mode, n_sets).mean(1).numpy())


print(
    f"{args.half} half, {Path(args.kit).name}: `siblings` (every set) against the suspect's architecture's family "
    "null, alone and joined with one of 2 epochs (uapfp family-null --epochs 2 --seed 1); alpha 0.01; 0.05"
)
print(
    "| answers | null | copies detected | the benchmark's honest flagged | the null's own models flagged (each "
    "against the rest) | `long` flagged | `short` flagged |\n" + "|---" * 7 + "|"
)
for mode in ("probs", "label"):
    for name in nulls[families[0]]:
        p = {i: p_value(similarity(answers[i], mode), nulls[arch[i]][name], mode) for i in bench}
        copies = [p[i] for i in bench if info[i]["role"] == "piracy"]
        honest = [p[i] for i in bench if info[i]["role"] == "homologous"]
        own = []
        for f in families:
            null = nulls[f][name]
            for j in range(null.count):
                own.append(p_value(similarity(null.answers["errors"][j], mode), null.without(j), mode))
        recipes = [
            [p_value(similarity(recipe_answers[f"{r}/{f}-{k}"], mode), nulls[f][name], mode) for f in families for k in KINDS]
            for r in ("long", "short")
        ]  # fmt: skip
        print(f"| {mode} | {name} | {cell(copies)} | {cell(honest)} | {cell(own)} | {cell(recipes[0])} | "
              f"{cell(recipes[1])} |", flush=True)  # fmt: skip
