"""A study, not a product method: conferrable adversarial examples as queries, on the families dev half.

    python scripts/study-cae.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick

After Lukas et al. (ICLR 2021, "Deep Neural Network Fingerprinting by Conferrable Adversarial
Examples"): held-out images the victim gets right, moved (L-inf PGD, radius ``--eps``) towards the
victim's second class so that the victim and the kit's encoder-training copies (the surrogates)
answer it, while the kit's encoder-training honest models and the victim's siblings (the
references) do not. The ``1,000`` most conferrable (the surrogates' share answering the target
times the references' share not answering it), in 20 sets of 50, are the queries; a suspect's
similarity per set is the share of labels it gives as the victim does (any answer mode). The null
is the kit's calibration models, the test the kit's (prediction t-test). Printed: AUC, TPR at 1 %
FPR, copies detected and honest models flagged on the families benchmark's development half
(alpha 0.01; its suspects must exist: `uapfp bench families --halves dev`) and on the zoo's
held-out models (the kit's alpha), for these queries alone and combined with `siblings` (the
channels standardised on the calibration models and averaged, as `A+B` methods are).
"""

import argparse
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F

from uapfp.bench.scoring import tpr_at_fpr
from uapfp.bench.suspects_zoo import DEV_FAMILIES, KINDS, build_suspects, load_suspect
from uapfp.cards import load_model_from_card
from uapfp.evaluate import auc
from uapfp.kit import Kit
from uapfp.methods import get_method, standardise, truncate
from uapfp.significance import prediction_greater
from uapfp.suspects.spec import card_suspect
from uapfp.training import predict_logits
from uapfp.zoo import Zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--zoo", required=True)
parser.add_argument("--kit", required=True)
parser.add_argument("--models", required=True, help="the families benchmark's suspects (its --models folder)")
parser.add_argument("--eps", type=float, default=0.15, help="L-inf radius on [0, 1] pixels")
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--base", type=int, default=1500, help="held-out images moved (the best 1,000 are kept)")
parser.add_argument("--seed", type=int, default=3)
args = parser.parse_args()
logging.basicConfig(level=logging.WARNING)

zoo, kit = Zoo.load(args.zoo), Kit.load(args.kit)
cards = {c["id"]: c for c in zoo.cards}
parts = kit.info["models"]
data = zoo.load_dataset()
victim = load_model_from_card(zoo.victim).eval()
surrogates = [load_model_from_card(cards[i]).eval() for i in parts["train"] if cards[i]["role"] == "piracy"]
references = [load_model_from_card(cards[i]).eval() for i in parts["train"] if cards[i]["role"] == "homologous"]
references += [load_model_from_card(cards[i]).eval() for i in kit.info["siblings"]]
for m in (victim, *surrogates, *references):
    m.requires_grad_(False)

# ---------------------------------------------------------------- the queries
start = time.perf_counter()
x, y = data.x_test, data.y_test
right = (predict_logits(victim, x).argmax(1) == y).nonzero().squeeze(1)
base = right[torch.randperm(len(right), generator=torch.Generator().manual_seed(args.seed))[: args.base]]
xb, yb = x[base], y[base]
logits = predict_logits(victim, xb)
logits[torch.arange(len(xb)), yb] = -torch.inf
target = logits.argmax(1)  # the victim's second class


def mean_probs(models: list[torch.nn.Module], xa: torch.Tensor) -> torch.Tensor:
    return torch.stack([F.softmax(m(xa), 1) for m in models]).mean(0)


moved = []
for s in range(0, len(xb), 250):
    x0, t = xb[s : s + 250], target[s : s + 250]
    delta = torch.zeros_like(x0, requires_grad=True)
    for _ in range(args.steps):
        xa = (x0 + delta).clamp(0, 1)
        on_surrogates = mean_probs(surrogates, xa).gather(1, t[:, None]).squeeze(1)
        on_references = mean_probs(references, xa).gather(1, t[:, None]).squeeze(1)
        loss = (F.cross_entropy(victim(xa), t) - torch.log(on_surrogates + 1e-6).mean()
                - torch.log(1 - on_references + 1e-6).mean())  # fmt: skip
        (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta -= args.eps / 8 * g.sign()
            delta.clamp_(-args.eps, args.eps)
    moved.append((x0 + delta.detach()).clamp(0, 1))
xa = torch.cat(moved)
with torch.no_grad():
    hit = predict_logits(victim, xa).argmax(1) == target
    share_s = torch.stack([predict_logits(m, xa).argmax(1) == target for m in surrogates]).float().mean(0)
    share_r = torch.stack([predict_logits(m, xa).argmax(1) == target for m in references]).float().mean(0)
conferrability = torch.where(hit, share_s * (1 - share_r), torch.full_like(share_s, -1.0))
keep = conferrability.argsort(descending=True)[:1000]
queries = xa[keep].reshape(20, 50, *x.shape[1:])
victim_labels = target[keep].reshape(20, 50)
print(f"queries made in {time.perf_counter() - start:.0f} s: the victim answers the target on {hit.float().mean():.2f} "
      f"of {len(xa)}; the surrogates on {share_s.mean():.2f}, the references on {share_r.mean():.2f}; kept 1,000, "
      f"conferrability {conferrability[keep].mean():.2f} (min {conferrability[keep].min():.2f})")  # fmt: skip

# ---------------------------------------------------------------- the suspects
errors_sets = kit.references["errors"].queries
suspects: dict[str, tuple[str, object]] = {}  # name -> (role, suspect)
for i in (*parts["calibration"], *parts["heldout"]):
    suspects["zoo/" + i] = (cards[i]["role"], card_suspect(cards[i]))
for rec in build_suspects(args.models, victim, data, zoo.splits(), families=DEV_FAMILIES, kinds=KINDS):
    suspects["dev/" + rec.name] = (rec.role, load_suspect(args.models, rec, data))
cae, errors = {}, {}
for name, (_, s) in suspects.items():
    cae[name] = torch.stack([(s(q).argmax(-1) == v).float().mean() for q, v in zip(queries, victim_labels)])
    errors[name] = torch.stack([s(q) for q in errors_sets])

# ---------------------------------------------------------------- the scores
siblings = get_method("siblings")
null_ids = ["zoo/" + i for i in parts["calibration"]]
agreement = np.array([float(cae[n].mean()) for n in null_ids])
print(f"the calibration models' label agreement on them: {agreement.mean():.3f} +- {agreement.std(ddof=1):.3f}")
print("| queries | answers | dev AUC | dev TPR at 1 % FPR | dev detected, flagged (alpha 0.01) | zoo held out: AUC; detected, flagged |")
print("|---|---|---|---|---|---|")
for label, mode in (("conferrable", "probs"), ("conferrable + siblings", "probs"), ("conferrable + siblings", "label")):
    sib = {n: siblings.similarities(kit, truncate(a, mode), mode).mean() for n, a in errors.items()}
    if label == "conferrable":
        stat = {n: float(c.mean()) for n, c in cae.items()}
    else:
        names = list(suspects)
        channels = torch.stack([torch.stack([cae[n].mean() for n in names]), torch.stack([sib[n] for n in names])])
        null = channels[:, [names.index(n) for n in null_ids]]
        stat = {n: float(standardise(channels[:, k], null)[0]) for k, n in enumerate(names)}
    null_stat = np.array([stat[n] for n in null_ids])
    cells = []
    for prefix, alpha in (("dev/", 0.01), ("zoo/", kit.config.alpha)):
        ids = [n for n in suspects if n.startswith(prefix) and n not in null_ids]
        pos = [stat[n] for n in ids if suspects[n][0] == "piracy"]
        neg = [stat[n] for n in ids if suspects[n][0] == "homologous"]
        p = {n: prediction_greater(np.array([stat[n]]), null_stat) for n in ids}
        detected = sum(p[n] < alpha for n in ids if suspects[n][0] == "piracy")
        flagged = sum(p[n] < alpha for n in ids if suspects[n][0] == "homologous")
        cells.append((auc(pos, neg), tpr_at_fpr(pos, neg), f"{detected}/{len(pos)}, {flagged}/{len(neg)}"))
    (d_auc, d_tpr, d_cnt), (z_auc, _, z_cnt) = cells
    print(f"| {label} | {'any' if label == 'conferrable' else mode} | {d_auc:.3f} | {d_tpr:.2f} | {d_cnt} | {z_auc:.3f}; {z_cnt} |")
