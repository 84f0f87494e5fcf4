"""A study: which method a family null tests by, now that the null spans recipes: honest models of other recipes.

    uapfp bench families --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick --halves dev --family-null 12 --methods siblings,sac,siblings+sac,errors+siblings --out runs/bench-families-quick-dev-span-methods.json
    python scripts/study-family-null-method.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`uapfp bench families --family-null 12` scores each method against the spanning family null on the
benchmark's copies and honest models (and the null's own models), which share a recipe with the null's
models (their 4 epochs lie within its 5, 2 and 1). The default was made to span recipes because a null of
one recipe flagged honest models trained another way. A method chosen for it must stay honest for them too.
This verifies, through `verify` (every set, the suspect against ``MODELS/family-null-ARCH-span``), the
`long` (8 epochs, batch 64, 2-pixel crops) and `short` (2 epochs, batch 256) honest models that
`scripts/study-family-null-recipe.py` trains into ``runs/family-null-recipe-KIT`` (run it first for the
half), by each method, with probabilities and labels: how many are flagged at 0.01; 0.05.
"""

from __future__ import annotations

from pathlib import Path

from _study import cell, family_study_args

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.family_null import KINDS, FamilyNull
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.verify import verify

METHODS = ("siblings", "errors+siblings", "siblings+sac")
args, zoo, kit = family_study_args(__doc__)
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
data = zoo.load_dataset()
c, h, w = data.input_shape
folder = Path(f"runs/family-null-recipe-{Path(args.kit).name}")
models = {}
for recipe in ("long", "short"):
    for family in families:
        for kind in KINDS:
            model = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
            model.load_state_dict(load_tensors(folder / recipe / f"{family}-{kind}.safetensors"))
            models[(recipe, family, kind)] = model.eval()
nulls = {f: FamilyNull.load(Path(args.models) / f"family-null-{f}-span", kit) for f in families}

print(f"{args.half} half, {Path(args.kit).name}: honest models of other recipes against the spanning family null, "
      "by method; flagged at 0.01; 0.05")  # fmt: skip
print("| answers | method | `long` flagged | `short` flagged |\n|---|---|---|---|")
for mode in ("probs", "label"):
    for method in METHODS:
        cells = []
        for recipe in ("long", "short"):
            ps = []
            for (r, family, _), model in models.items():
                if r != recipe:
                    continue
                suspect = TorchSuspect(model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=mode)
                ps.append(verify(kit, suspect, method=method, sequential=False, family_null=nulls[family]).p_value)
            cells.append(cell(ps))
        print(f"| {mode} | `{method}` | {cells[0]} | {cells[1]} |", flush=True)
