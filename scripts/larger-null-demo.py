"""The demo's verdicts with a larger null, a study: python scripts/larger-null-demo.py 'runs/demo-slice-s*'

For demo folders made by `python scripts/demo-seeds.py SEED slice|full` (the zoo and kit of each
seed): each held-out model's verdict as the demo gives it (the kit's method and sequential test),
with the kit's null (its calibration models) and with a larger one for the methods that learn
nothing (the calibration models, then the encoder's homologous training models, queried here), the
change measured and withdrawn in docs/method.md ("How many honest models `siblings` needs").
Prints the verdicts that differ per seed and the totals.
"""

import glob
import sys
from dataclasses import replace

import torch

from uapfp.kit import Kit
from uapfp.suspects.spec import card_suspect
from uapfp.verify import PIRACY, verify
from uapfp.zoo import Zoo

totals = {"kit's null": [0, 0], "larger null": [0, 0]}  # copies detected, honest models flagged
held = [0, 0]
for folder in sorted(glob.glob(sys.argv[1]), key=lambda p: int(p.rsplit("-s", 1)[1])):
    kit, zoo = Kit.load(f"{folder}/kit"), Zoo.load(f"{folder}/zoo")
    cards = {c["id"]: c for c in zoo.cards}
    honest_train = [i for i in kit.info["models"]["train"] if cards[i]["role"] == "homologous"]
    models = {i: card_suspect(cards[i]) for i in honest_train}
    references = {
        key: replace(ref, null=torch.cat([ref.null, torch.stack([torch.stack([m(q) for q in ref.queries])
                                                                 for m in models.values()])]))  # fmt: skip
        for key, ref in kit.references.items()
    }
    kits = {"kit's null": kit, "larger null": replace(kit, references=references)}
    changed = []
    for i in kit.info["models"]["heldout"]:
        copy = cards[i]["role"] == "piracy"
        held[0 if copy else 1] += 1
        verdicts = {name: verify(k, card_suspect(cards[i])) for name, k in kits.items()}
        for name, v in verdicts.items():
            totals[name][0 if copy else 1] += v.verdict == PIRACY
        a, b = verdicts.values()
        if a.verdict != b.verdict:
            changed.append(f"{i} ({cards[i]['role']}): {a.verdict} at p {a.p_value:.3g} -> {b.verdict} at p {b.p_value:.3g}")
    n_null = kit.references["errors"].null.shape[0]
    print(f"{folder}: null {n_null} -> {n_null + len(honest_train)} honest models; " + ("; ".join(changed) or "same verdicts"))
for name, (copies, honest) in totals.items():
    print(f"{name}: {copies} of {held[0]} copies detected, {honest} of {held[1]} honest models flagged")
