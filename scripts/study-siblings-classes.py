"""A study: does a copy inherit the victim's class-level biases, where a weak copy cannot follow it image by image?

    python scripts/study-siblings-classes.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`siblings` compares deviations from the victim's siblings image by image (cos(victim - mean(A), suspect - mean(B))
over the images of a set). Its weak copies follow the victim's recipe rather than its seed, image by image
(docs/method.md). A copy trained on the victim's answers might still inherit the victim's own class-level
biases (how much more often it says Shirt than T-shirt than its siblings do): a confusion matrix of deviations,
averaged over many images before the cosine, has far less noise than one image's. Variants, each one cosine
per model of the (K, K) matrices of mean deviations, grouped by the true class or the victim's class:

- ``siblings (errors, per image)``: the product's statistic on the first 1,000 errors (one set), for reference;
- ``conf by true class`` / ``conf by victim class``: on 1,000 held-out images at random, and on all 10,000;
- ``errors by (true, victim) pair``: the errors, grouped by the pair of their true and the victim's class;
- ``errors by true class``: the errors, grouped by their true class.

Every suspect answers the whole held-out set once (cached in ``runs/study-siblings-images-KIT-HALF.pt``).
Scored against the kit's calibration models (prediction t-test), alpha 0.01 on the families benchmark (dev half
unless ``--half test``) and the kit's alpha on the zoo's held-out models.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from _study import family_answers, family_aucs, family_study_args, score_cells, table_head, victim_and_siblings

from uapfp.methods import truncate
from uapfp.training import predict_logits

args, zoo, kit = family_study_args(__doc__)
data = zoo.load_dataset()
x, y = data.x_test, data.y_test
nine = [predict_logits(model, x).softmax(-1) for model in victim_and_siblings(zoo, kit)]
p_v, p_sib = nine[0], torch.stack(nine[1:])
cache = f"runs/study-siblings-images-{Path(args.kit).name}-{args.half}.pt"  # as study-siblings-images.py's answers
answers, info = family_answers(zoo, kit, args.models, args.half, lambda suspect: suspect(x), cache=cache, data=data)
k = p_v.shape[1]
said = p_v.argmax(-1)
gen = torch.Generator().manual_seed(0)
wrong = (said != y).nonzero().squeeze(1)
wrong = wrong[torch.randperm(len(wrong), generator=gen)][:1000]
rand = torch.randperm(len(x), generator=gen)[:1000]
every = torch.arange(len(x))


def grouped(dev: torch.Tensor, idx: torch.Tensor, key: torch.Tensor, groups: int) -> torch.Tensor:
    """The mean deviation (groups, K) of the images ``idx``, by ``key``; the groups no image falls in dropped."""
    total, count = torch.zeros(groups, k), torch.zeros(groups)
    total.index_add_(0, key[idx], dev[idx])
    count.index_add_(0, key[idx], torch.ones(len(idx)))
    return (total / count.clamp(min=1)[:, None])[count > 0]


variants = {
    "siblings (errors, per image)": lambda d: d[wrong].flatten(),
    "conf by true class, 1,000 random": lambda d: grouped(d, rand, y, k).flatten(),
    "conf by victim class, 1,000 random": lambda d: grouped(d, rand, said, k).flatten(),
    "conf by true class, all 10,000": lambda d: grouped(d, every, y, k).flatten(),
    "conf by victim class, all 10,000": lambda d: grouped(d, every, said, k).flatten(),
    "errors by (true, victim) pair": lambda d: grouped(d, wrong, y * k + said, k * k).flatten(),
    "errors by true class": lambda d: grouped(d, wrong, y, k).flatten(),
}
print(table_head(args.half, kit.config.alpha, per_family=True))
for mode in ("probs", "label"):
    pv, ps = truncate(p_v, mode), truncate(p_sib, mode)
    half_a, half_b = ps[: len(ps) // 2].mean(0), ps[len(ps) // 2 :].mean(0)
    for variant, stat in variants.items():
        r_v = stat(pv - half_a)
        sim = {i: float(F.cosine_similarity(stat(truncate(a, mode) - half_b), r_v, dim=0)) for i, a in answers.items()}
        print(f"| {mode} | {variant} | {score_cells(sim, info, kit.config.alpha)} | {family_aucs(sim, info)} |")
