"""How many honest models `siblings` needs in its null: python scripts/siblings-null-size.py --zoo runs/zoo-quick
--kit runs/kit-quick --models runs/families-quick [--half test]

A study (docs/method.md, "How many honest models calibrate the methods that learn nothing"). The
`siblings` method reads no encoder, so every homologous model the kit does not hold out (its
calibration models and the encoder's honest training models) can calibrate it. For null sizes of 5
to all of them, nulls drawn at random (200 draws; one for all) from those models: the families
benchmark's suspects (development half unless ``--half test``) detected and honest models flagged
at alpha 0.01, and the zoo's held-out models at the kit's alpha, as means over the draws with the
5-95 % range. The suspects must exist (`uapfp bench families --halves dev|test` trains them); they
are only queried here.
"""

import argparse
import logging

import numpy as np
import torch

from uapfp.bench.suspects_zoo import DEV_FAMILIES, KINDS, TEST_FAMILIES, build_suspects, load_suspect
from uapfp.cards import load_model_from_card
from uapfp.kit import Kit
from uapfp.methods import get_method, truncate
from uapfp.significance import prediction_greater
from uapfp.suspects.spec import card_suspect
from uapfp.zoo import Zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--zoo", required=True)
parser.add_argument("--kit", required=True)
parser.add_argument("--models", required=True, help="the families benchmark's suspects (its --models folder)")
parser.add_argument("--half", choices=("dev", "test"), default="dev")
parser.add_argument("--draws", type=int, default=200)
args = parser.parse_args()
logging.basicConfig(level=logging.WARNING)

zoo, kit = Zoo.load(args.zoo), Kit.load(args.kit)
ref = kit.references["errors"]
data = zoo.load_dataset()
part = {i: p for p, ids in kit.info["models"].items() for i in ids}
answers, role = {}, {}
for card in zoo.cards:
    if part.get(card["id"]) in ("calibration", "train", "heldout"):
        suspect = card_suspect(card)
        answers[card["id"]], role[card["id"]] = torch.stack([suspect(s) for s in ref.queries]), card["role"]
victim = load_model_from_card(zoo.victim)
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
for rec in build_suspects(args.models, victim, data, zoo.splits(), families=families, kinds=KINDS):
    suspect = load_suspect(args.models, rec, data)
    answers["fam/" + rec.name], role["fam/" + rec.name] = torch.stack([suspect(s) for s in ref.queries]), rec.role

method = get_method("siblings")
pool = [i for i in answers if part.get(i) in ("calibration", "train") and role[i] == "homologous"]
rng = np.random.default_rng(0)
n_copies = sum(i.startswith("fam/") and r == "piracy" for i, r in role.items())
n_honest = sum(i.startswith("fam/") and r == "homologous" for i, r in role.items())
print(f"{len(pool)} honest models the kit does not hold out; alpha 0.01 ({args.half} half), {kit.config.alpha} (zoo)")
print(f"| answers | null models | {args.half} copies detected (of {n_copies}) | {args.half} honest flagged (of {n_honest}) "
      "| zoo copies | zoo honest |")
print("|---|---|---|---|---|---|")
for mode in ("probs", "label"):
    r = ref.truncated(mode, ref.queries.shape[0])
    sim = {i: float(method.compare(r, truncate(a, mode)).mean()) for i, a in answers.items()}
    groups = {
        (g, rl): [i for i in answers if (i.startswith("fam/") if g == "fam" else part.get(i) == "heldout") and role[i] == rl]
        for g in ("fam", "zoo") for rl in ("piracy", "homologous")
    }  # fmt: skip
    for n in sorted({5, 10, 15, 20, len(pool)}):
        counts: dict[tuple[str, str], list[int]] = {k: [] for k in groups}
        for _ in range(args.draws if n < len(pool) else 1):
            null = np.array([sim[i] for i in rng.choice(pool, n, replace=False)])
            for (g, rl), ids in groups.items():
                alpha = 0.01 if g == "fam" else kit.config.alpha
                counts[(g, rl)].append(sum(prediction_greater(np.array([sim[i]]), null) < alpha for i in ids))

        def cell(key: tuple[str, str], counts: dict[tuple[str, str], list[int]] = counts) -> str:
            c = np.array(counts[key])
            spread = f" ({np.percentile(c, 5):.0f}-{np.percentile(c, 95):.0f})" if len(c) > 1 else ""
            return f"{c.mean():.1f}{spread}"

        print(f"| {mode} | {n} | {cell(('fam', 'piracy'))} | {cell(('fam', 'homologous'))} | "
              f"{cell(('zoo', 'piracy'))} / {len(groups[('zoo', 'piracy')])} | "
              f"{cell(('zoo', 'homologous'))} / {len(groups[('zoo', 'homologous')])} |")  # fmt: skip
