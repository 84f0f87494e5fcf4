"""A study: on which held-out images does `siblings` see the victim's lineage best?

    python scripts/study-siblings-images.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`siblings` compares deviations from the victim's siblings (cos(victim - mean(A), suspect - mean(B)))
on 1,000 of the victim's held-out errors, in 20 sets of 50. A copy is trained on the victim's
answers to natural images, so its lineage may also show where the victim is right but unsure.
Every suspect answers the whole held-out set once (cached in ``runs/study-siblings-images-HALF.pt``,
a dict of tensors); the statistic is then computed on image choices of 1,000 (20 sets of 50):

- ``errors``: the victim's errors (the product's queries);
- ``low-margin``: the held-out images the victim gets right with the smallest margin between its two
  largest probabilities;
- ``errors+low-margin``: 500 of each per 1,000 (two sets of 25 in each set of 50);
- ``random``: held-out images at random;
- ``errors-2000``: the errors and the 1,000 lowest-margin right ones, 20 sets of 100 (2,000 queries).

Scored against the kit's calibration models (prediction t-test), alpha 0.01 on the families
benchmark (dev half unless ``--half test``; its suspects must exist) and the kit's alpha on the
zoo's held-out models.
"""

import torch
import torch.nn.functional as F
from _study import family_answers, family_aucs, family_study_args, score_cells, table_head

from uapfp.cards import load_model_from_card
from uapfp.methods import truncate
from uapfp.training import predict_logits

args, zoo, kit = family_study_args(__doc__)

cards = {c["id"]: c for c in zoo.cards}
data = zoo.load_dataset()
x, y = data.x_test, data.y_test
victim = load_model_from_card(zoo.victim)
p_v = predict_logits(victim, x).softmax(-1)
p_sib = torch.stack([predict_logits(load_model_from_card(cards[i]), x).softmax(-1) for i in kit.info["siblings"]])
answers, info = family_answers(
    zoo,
    kit,
    args.models,
    args.half,
    lambda suspect: suspect(x),
    cache=f"runs/study-siblings-images-{args.half}.pt",
    data=data,
)
gen = torch.Generator().manual_seed(0)
wrong = (p_v.argmax(-1) != y).nonzero().squeeze(1)
wrong = wrong[torch.randperm(len(wrong), generator=gen)][:1000]
top2 = p_v.topk(2, -1).values
margin = top2[:, 0] - top2[:, 1]
right = (p_v.argmax(-1) == y).nonzero().squeeze(1)
low = right[margin[right].argsort()][:1000]
low = low[torch.randperm(len(low), generator=gen)]
rand = torch.randperm(len(x), generator=gen)[:1000]
choices = {
    "errors": wrong.reshape(20, 50),
    "low-margin": low.reshape(20, 50),
    "errors+low-margin": torch.cat([wrong[:500].reshape(20, 25), low[:500].reshape(20, 25)], 1),
    "random": rand.reshape(20, 50),
    "errors-2000": torch.cat([wrong.reshape(20, 50), low.reshape(20, 50)], 1),
}
print(table_head(args.half, kit.config.alpha, "images", per_family=True))
for mode in ("probs", "label"):
    pv, ps = truncate(p_v, mode), truncate(p_sib, mode)
    half_a, half_b = ps[:4].mean(0), ps[4:].mean(0)
    for name, idx in choices.items():
        r_v = (pv - half_a)[idx].flatten(-2)
        sim = {}
        for i, a in answers.items():
            r_s = (truncate(a, mode) - half_b)[idx].flatten(-2)
            sim[i] = float(F.cosine_similarity(r_s, r_v, dim=-1).mean())
        print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha)} | {family_aucs(sim, info)} |")
