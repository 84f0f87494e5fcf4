"""A study: `siblings` with a per-suspect reference, each sibling scored on its own errors.

    python scripts/study-siblings-own-errors.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`siblings` scores a suspect by its statistic on the victim: the mean over 20 sets of 50 of the
victim's held-out errors of cos(victim - mean(A), suspect - mean(B)), siblings A and B. An honest
model's statistic is not zero: the images are the victim's mistakes, and a model less (or more)
accurate than the siblings leans towards (or away from) them; that level moves with the
suspect's family, and the calibration models (the zoo's CNNs) do not track it.

Under H0 the victim is one more sibling: nine models of one recipe and data, nine seeds. So the
same statistic is computed with each sibling j in the victim's place: on sibling j's own held-out
errors (chosen as the victim's are, by its own mistakes), cos(sibling_j - mean(A_j), suspect -
mean(B_j)), A_j and B_j the other eight models in two halves of four (the victim among them). For
an honest suspect the nine statistics are exchangeable, its family's lean included; a copy stands
out on the victim's. Scored, on the same answers (the union of the nine models' chosen errors):

- ``base``: the victim's statistic, against the kit's calibration models (the product's test);
- ``own``: the per-suspect test, (t_v - mean t_j) / (sd t_j sqrt(1 + 1/8)) against Student's t with
  7 degrees of freedom (the kit's prediction t-test; no calibration model at all), ranked by its p-value;
- ``diff``: t_v - mean t_j as the similarity, against the calibration models' (the kit's test).

AUC, TPR at 1 % FPR, detections and false alarms at alpha 0.01 on the families benchmark (dev half
unless ``--half test``; the suspects must exist: `uapfp bench families --halves dev|test`), and at the
kit's alpha on the zoo's held-out models.
"""

import argparse

import torch
import torch.nn.functional as F
from _study import family_answers, family_study_args, reference_scores, score_cells, table_head

from uapfp.cards import load_model_from_card
from uapfp.methods import truncate
from uapfp.training import predict_logits


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sets", type=int, default=20)
    p.add_argument("--per-set", type=int, default=50)


args, zoo, kit = family_study_args(__doc__, _options)

cards = {c["id"]: c for c in zoo.cards}
data = zoo.load_dataset()
x, y = data.x_test, data.y_test
targets = [load_model_from_card(zoo.victim)] + [load_model_from_card(cards[i]) for i in kit.info["siblings"]]
probs = torch.stack([predict_logits(m, x).softmax(-1) for m in targets])  # (9, N, K)
n_all = args.sets * args.per_set
chosen = []
for t in range(len(targets)):
    wrong = (probs[t].argmax(-1) != y).nonzero().squeeze(1)
    order = wrong[torch.randperm(len(wrong), generator=torch.Generator().manual_seed(t))]
    chosen.append(order[: (min(n_all, len(order)) // args.sets) * args.sets].reshape(args.sets, -1))
union = torch.unique(torch.cat([c.flatten() for c in chosen]))
where = torch.full((len(x),), -1, dtype=torch.long)
where[union] = torch.arange(len(union))
print(f"{len(union)} queries per suspect (the union of the nine models' {n_all} chosen errors)")

answers, info = family_answers(zoo, kit, args.models, args.half, lambda suspect: suspect(x[union]), data=data)


def statistics(ans: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """(9,) statistics of one suspect's answers (U, K), given the nine models' answers p (9, N, K)."""
    out = []
    for t in range(len(targets)):
        others = [o for o in range(len(targets)) if o != t]
        a, b = others[:4], others[4:]
        idx = chosen[t]  # (S, n) image indices
        r_t = p[t][idx] - p[a][:, idx].mean(0)
        r_s = ans[where[idx]] - p[b][:, idx].mean(0)
        out.append(F.cosine_similarity(r_s.flatten(-2), r_t.flatten(-2), dim=-1).mean())
    return torch.stack(out)


print(table_head(args.half, kit.config.alpha))
for mode in ("probs", "label"):
    p = truncate(probs, mode)
    st = {i: statistics(truncate(a, mode), p).double().numpy() for i, a in answers.items()}
    for name, (sim, p_value) in reference_scores(st).items():
        name = {"victim": "base"}.get(name, name)
        print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha, p_value)} |")
    if mode == "probs":
        for i, s in st.items():
            if info[i]["group"] == "fam":
                print(
                    f"  {i:34s} {info[i]['role']:10s} t_v {s[0]:+.3f}  t_j {s[1:].mean():+.3f} +- {s[1:].std(ddof=1):.3f}"
                )
