"""A study: the victim's UAP against its siblings' UAPs, as a per-suspect reference.

    python scripts/study-sibling-uaps.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

Under H0 the victim is one more of nine models of one recipe and data (itself and its 8
siblings), so an honest suspect has no reason to answer the victim's UAP more as the victim does
than it answers sibling j's UAP as sibling j does: the nine statistics are exchangeable, whatever
the suspect's family. A copy learnt the victim's function near its data, and follows the victim's
UAP more. Each of the nine models gets its own UAP (the kit's algorithm and radius, on 2,000 D_V
images); the queries are the kit's probe images (20 sets of 100) with each of the nine UAPs. Per
target t (the victim or a sibling) and suspect s, on the probe images plus t's UAP:

- ``agree``: the share of labels s gives as t does;
- ``dev``: cos(t - mean(A_t), s - mean(B_t)), A_t and B_t the other eight models in halves of four.

Scored for each: ``X``: the victim's statistic against the kit's calibration models (prediction
t-test); ``X-own``: (t_v - mean t_j) / (sd t_j sqrt(1 + 1/8)) against Student's t, 7 degrees of
freedom (the kit's prediction t-test, no calibration model; ranked by its p-value); ``X-diff``:
t_v - mean t_j against the calibration models'. AUC, TPR at 1 % FPR, detections and false alarms at alpha 0.01 on the families benchmark (dev half unless
``--half test``; its suspects must exist) and at the kit's alpha on the zoo's held-out models.
"""

import time

import numpy as np
import torch
import torch.nn.functional as F
from _study import family_answers, family_study_args, reference_scores, score_cells, table_head

from uapfp.cards import load_model_from_card
from uapfp.methods import truncate
from uapfp.training import predict_logits
from uapfp.uap import create_uap_method

args, zoo, kit = family_study_args(__doc__)

cards = {c["id"]: c for c in zoo.cards}
data = zoo.load_dataset()
x_v = data.x_train[zoo.splits()["victim"]]
targets = [load_model_from_card(zoo.victim)] + [load_model_from_card(cards[i]) for i in kit.info["siblings"]]
config = kit.config
start = time.perf_counter()
uaps = [kit.v]
for t, model in enumerate(targets[1:], 1):
    gen = torch.Generator().manual_seed(config.seed + t)
    uap_x = x_v[torch.randperm(len(x_v), generator=gen)[: config.uap_images]]
    method = create_uap_method(config.uap_method, xi=config.xi, norm=config.norm)
    uaps.append(method(model, uap_x, x_val=data.x_test, seed=config.seed + t, progress=False).v)
print(f"8 sibling UAPs in {time.perf_counter() - start:.0f} s")
probes = kit.probe_images[:20]  # (S, n, C, H, W): the 20 sets the kit asks by default
s_, n_ = probes.shape[:2]
queries = torch.stack([(probes + v).clamp(0, 1) for v in uaps])  # (9, S, n, C, H, W)
flat = queries.reshape(-1, *queries.shape[3:])


def ask(model_or_suspect, is_model: bool) -> torch.Tensor:
    out = predict_logits(model_or_suspect, flat).softmax(-1) if is_model else model_or_suspect(flat)
    return out.reshape(9, s_, n_, -1)


p = torch.stack([ask(m, True) for m in targets])  # (9 models, 9 UAPs, S, n, K)
answers, info = family_answers(zoo, kit, args.models, args.half, lambda suspect: ask(suspect, False), data=data)


def statistics(ans: torch.Tensor, p: torch.Tensor) -> dict[str, np.ndarray]:
    agree, dev = [], []
    for t in range(9):
        others = [o for o in range(9) if o != t]
        a, b = others[:4], others[4:]
        agree.append((ans[t].argmax(-1) == p[t, t].argmax(-1)).float().mean())
        r_t, r_s = p[t, t] - p[a, t].mean(0), ans[t] - p[b, t].mean(0)
        dev.append(F.cosine_similarity(r_s.flatten(-2), r_t.flatten(-2), dim=-1).mean())
    return {"agree": torch.stack(agree).double().numpy(), "dev": torch.stack(dev).double().numpy()}


print(table_head(args.half, kit.config.alpha))
for mode in ("probs", "label"):
    pm = truncate(p, mode)
    st = {i: statistics(truncate(a, mode), pm) for i, a in answers.items()}
    for kind in ("agree", "dev"):
        for name, (sim, p_value) in reference_scores({i: s[kind] for i, s in st.items()}).items():
            name = kind if name == "victim" else f"{kind}-{name}"
            print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha, p_value)} |")
    if mode == "probs":
        for i, s in st.items():
            if info[i]["group"] == "fam":
                a_, d_ = s["agree"], s["dev"]
                print(
                    f"  {i:30s} {info[i]['role']:10s} agree v {a_[0]:.3f} j {a_[1:].mean():.3f}+-{a_[1:].std(ddof=1):.3f}"
                    f"  dev v {d_[0]:+.3f} j {d_[1:].mean():+.3f}+-{d_[1:].std(ddof=1):.3f}"
                )
