"""A study: a family null of 12 models trained with three recipes (4, 2 and 1 epochs: one round of the four kinds each).

    python scripts/study-spanning-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick   # first: its folders
    python scripts/study-mixed-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`scripts/study-spanning-null.py` joins three folders of 12 models each (the zoo's recipe of 4 epochs,
``--epochs 2 --seed 1``, ``--epochs 1 --seed 2``): 36 models, three times the owner's training, and no honest
`short` model flagged. This study asks whether a null of the same size and cost as today's (12 models) can span
the recipes too: one round of the four kinds (D_V with Adam, with SGD, overlapping, disjoint) from each folder,
4 x (4 + 2 + 1) = 28 epochs of training against 48 for today's null. Each of the three ways to assign a round
to a folder is scored (the rounds are independent draws of one recipe), and "4+4+1": two rounds of the zoo's
recipe and one of 1 epoch. Scored as in `study-spanning-null.py`: `siblings` on every set, the kit's prediction
t-test, probabilities and labels, counted at alpha 0.01; 0.05.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from _study import family_null_table, family_study_args

from uapfp.family_null import KINDS, FamilyNull

args, zoo, kit = family_study_args(__doc__)
R = len(KINDS)


def joined(parts: list[tuple[FamilyNull, list[int]]]) -> FamilyNull:
    """A null of the rounds ``picks`` of each folder's null (a round: one model of each kind; the folders' seeds
    differ, so this is the study's own join, not :func:`~uapfp.family_null.combine_nulls`)."""
    chosen = [
        {key: a[[r * R + k for r in picks for k in range(R)]] for key, a in n.answers.items()} for n, picks in parts
    ]
    return replace(parts[0][0], answers={k: torch.cat([c[k] for c in chosen]) for k in chosen[0]}, parts=())


def nulls_of(a: str) -> dict[str, object]:
    """The kit's null, the zoo's-recipe folder, the three folders joined, and the nulls of 12 that span them."""
    e4, e2, e1 = (FamilyNull.load(Path(args.models) / f"family-null-{a}{s}", kit) for s in ("", "-e2", "-e1"))
    all36 = joined([(e4, [0, 1, 2]), (e2, [0, 1, 2]), (e1, [0, 1, 2])])
    return {
        "the kit's calibration models": (None, all36),
        "4 epochs, 12 models (today's)": e4,
        "4+2+1 epochs, 36 models": all36,
        **{
            f"4+2+1 epochs, 12 models (rounds {r}, {(r + 1) % 3}, {(r + 2) % 3})": joined(
                [(e4, [r]), (e2, [(r + 1) % 3]), (e1, [(r + 2) % 3])]
            )
            for r in range(3)
        },  # fmt: skip
        "4+4+1 epochs, 12 models": joined([(e4, [0, 1]), (e1, [2])]),
    }


print(f"{args.half} half, {Path(args.kit).name}: `siblings` (every set) against the suspect's architecture's family "
      "null; alpha 0.01; 0.05")  # fmt: skip
family_null_table(args, zoo, kit, nulls_of)
