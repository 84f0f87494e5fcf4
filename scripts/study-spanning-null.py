"""A study: a family null that spans two recipes (`verify --family-null A --family-null B`), through the product.

    python scripts/study-family-null-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick --half dev
    python scripts/study-recipe-robust.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    uapfp family-null --kit runs/kit-quick --zoo runs/zoo-quick --arch ARCH --out runs/families-quick/family-null-ARCH-e2 --epochs 2 --seed 1   # each family
    uapfp family-null --kit runs/kit-quick --zoo runs/zoo-quick --arch ARCH --out runs/families-quick/family-null-ARCH-span   # the default
    python scripts/study-spanning-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

The family null the benchmark built until 2026-12-07 (``MODELS/family-null-ARCH``: 12 honest models of the suspect's
architecture, the zoo's recipe, 4 epochs; ``uapfp family-null --epochs 4 --out MODELS/family-null-ARCH`` builds it now) flags honest suspects trained for fewer epochs
(`scripts/study-family-null-recipe.py`). An owner can now join it with a second folder built with another
recipe (``uapfp family-null --epochs 2 --seed 1``, into ``MODELS/family-null-ARCH-e2``; and, where it is there, a
third of 1 epoch, ``--epochs 1 --seed 2`` into ``MODELS/family-null-ARCH-e1``) by giving ``--family-null``
more than once (:func:`uapfp.family_null.combine_nulls`). This study scores each suspect of the half
as `verify --family-null` does (`siblings` on every set, the kit's prediction t-test against the null's
models scored as suspects, probabilities and labels) against its architecture's null alone and against
the two joined: the benchmark's copies and honest models, the `long` (8 epochs, batch 64, crops) and
`short` (2 epochs, batch 256: fewer steps than the second folder's) honest models of the recipe study, and
each null's own models against the rest of it. Where ``MODELS/family-null-ARCH-span`` is there (``uapfp
family-null`` with its defaults: 12 models, one round of four at the zoo's epochs, half and a quarter of them),
it is scored too. Counted at alpha 0.01; 0.05. The answers come from the
caches of the other studies of the half (run `study-recipe-robust.py` first) and from the nulls' folders.
"""

from __future__ import annotations

from pathlib import Path

from _study import family_null_table, family_study_args

from uapfp.family_null import FamilyNull, combine_nulls

args, zoo, kit = family_study_args(__doc__)


def nulls_of(a: str) -> dict[str, FamilyNull]:
    """The architecture's null alone and joined with the folder of 2 epochs, and of 1 where it is there."""
    one = FamilyNull.load(Path(args.models) / f"family-null-{a}", kit)
    two = FamilyNull.load(Path(args.models) / f"family-null-{a}-e2", kit)
    rows = {"the zoo's recipe, 12 models": one, "and 2 epochs, 24 models": combine_nulls([one, two])}
    if (Path(args.models) / f"family-null-{a}-e1").is_dir():  # and a third folder, of 1 epoch (--seed 2)
        three = FamilyNull.load(Path(args.models) / f"family-null-{a}-e1", kit)
        rows["and 2 and 1 epochs, 36 models"] = combine_nulls([one, two, three])
    if (Path(args.models) / f"family-null-{a}-span").is_dir():  # uapfp family-null's default since 2026-12-07
        rows["the default: one folder of the zoo's, half and a quarter of its epochs, 12 models"] = FamilyNull.load(
            Path(args.models) / f"family-null-{a}-span", kit)  # fmt: skip
    return rows


print(
    f"{args.half} half, {Path(args.kit).name}: `siblings` (every set) against the suspect's architecture's family "
    "null, alone and joined with one of 2 epochs (uapfp family-null --epochs 2 --seed 1); alpha 0.01; 0.05"
)
family_null_table(args, zoo, kit, nulls_of)
