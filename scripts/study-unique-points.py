"""A study: does the victim's lineage show where the victim alone decides otherwise than its siblings?

    python scripts/study-unique-points.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`siblings` scores a suspect by cos(victim - mean(A), suspect - mean(B)) on the victim's held-out
errors, siblings A and B. On unseen families an honest model's score has a level that moves with
its family (docs/method.md). Most of the victim's errors are the data's hard images, which every
model gets wrong; what is the victim's own is where it decides otherwise than models of its own
recipe. This study measures, on the same answers and against the kit's calibration models by the
kit's test, four ways to go there:

- ``errors, k of 8 siblings right``: `siblings` on only those of the kit's 1,000 error images that
  at least k of the 8 siblings classify right (few images: 30 with k = 8 on the default kit);
- ``unique points``: held-out images, and the same images moved by one pixel in each of 8
  directions (9 x 10,000, label-free: natural images near the data), where the victim's label
  differs from the label on which at least k of its 8 siblings agree. Two statistics: ``vmc``, the
  suspect's probability of the victim's label minus that of the siblings' label, averaged; ``agree``,
  the share of the victim's labels among the suspect's. Then the same per suspect: each of the nine
  models (the victim and its siblings) in turn has its unique points against the other eight, and
  the victim's statistic is tested against the siblings' (``own``: the kit's prediction t-test,
  Student's t with 7 d.f., no calibration model), since under H0 the nine are exchangeable;
- ``truth projected out``: `siblings`, with each set's deviations made orthogonal to the direction
  towards the true labels (one-hot(y) - the half's mean), a correction for the suspect's accuracy;
- ``secondary classes``: on held-out images the victim and its siblings all get right, the
  deviations of the log-probabilities of the nine wrong classes (centred per image), a copy trained
  on probabilities inheriting the victim's dark knowledge.

Last, how much of the honest models' level is their accuracy: the correlation, over the honest
models (the zoo's and the benchmark's), of ``vmc`` (k = 7) and of `siblings` with test accuracy; and
both statistics regressed on test accuracy against a null that spans the families' accuracies (for
each suspect: the calibration models and the benchmark's honest models of the other families, a
linear fit, the prediction t-test on the residuals; a null no kit has, to see what it would give).

Each suspect answers the kit's error images (cached in ``runs/study-siblings-level-KIT-HALF.pt``, KIT
the kit folder's name), the 10,000 held-out images (``runs/study-siblings-images-KIT-HALF.pt``) and the
union of the nine models' unique points among the shifted images (``runs/study-unique-points-KIT-HALF.pt``); each cache is read
back only for its kit. Alpha 0.01 on the families benchmark (dev half unless ``--half test``; its
suspects must exist: `uapfp bench families --halves dev|test`), the kit's alpha on the zoo's held-out models.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from _study import UniquePointStudy, family_aucs, score_cells, table_head

from uapfp.evaluate import auc
from uapfp.methods import truncate
from uapfp.significance import prediction_greater
from uapfp.training import predict_logits

st = UniquePointStudy(__doc__)
args, kit, data, x0, ref, nine, info = st.args, st.kit, st.data, st.x0, st.ref, st.nine, st.info
KS, y0, X, labels, unique, union, row = st.KS, data.y_test, st.X, st.labels, st.unique, st.union, st.row
on_errors, on_unique, held_out = st.on_errors, st.on_unique, st.held_out

# ---- the unique points of each of the nine models, among the shifted held-out images
original = {k: int((unique[0, k][0] < len(x0)).sum()) for k in KS}
print(
    "unique points of the victim (k = " + ", ".join(map(str, KS)) + "): "
    + ", ".join(f"{len(unique[0, k][0])} ({original[k]} unshifted)" for k in KS)
    + f"; of the nine models: {len(union)} in all"
)  # fmt: skip


def unique_stats(answers: torch.Tensor, k: int, stat: str) -> np.ndarray:
    """The statistic on each of the nine models' unique points (the victim's first)."""
    out = []
    for m in range(len(nine)):
        where, consensus = unique[m, k]
        a = answers[row[where]]
        if stat == "vmc":
            on_m = a.gather(-1, labels[m, where, None]).squeeze(-1)
            out.append(float((on_m - a.gather(-1, consensus[:, None]).squeeze(-1)).mean()))
        else:
            out.append(float((a.argmax(-1) == labels[m, where]).float().mean()))
    return np.array(out)


def perp(r: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Each set's (..., S, n, K) deviations, flattened, without their component along ``d`` (S, n, K)."""
    rf, df = r.flatten(-2), d.flatten(-2)
    dn = df / df.norm(dim=-1, keepdim=True)
    return rf - (rf * dn).sum(-1, keepdim=True) * dn


def on_errors_stats(answers: torch.Tensor, mode: str) -> dict[str, float]:
    """`siblings` on the error images the siblings get right, and with the truth direction projected out."""
    r = ref.truncated(mode, ref.queries.shape[0])
    m = r.siblings.shape[0]
    half_a, half_b = r.siblings[: m // 2].mean(0), r.siblings[m // 2 :].mean(0)
    r_v, r_s = r.victim - half_a, truncate(answers, mode) - half_b
    right = (ref.siblings.argmax(-1) == ref.labels).sum(0).flatten()  # of the 8, per image
    out = {}
    for k in KS:
        keep = right >= k
        v_k, s_k = (t.reshape(-1, t.shape[-1])[keep].flatten() for t in (r_v, r_s))
        out[f"errors, {k} of 8 siblings right ({int(keep.sum())} images)"] = float(F.cosine_similarity(v_k, s_k, 0))
    truth = F.one_hot(r.labels, r.victim.shape[-1]).float()
    out["truth projected out"] = float(
        F.cosine_similarity(perp(r_v, truth - half_a), perp(r_s, truth - half_b), -1).mean()
    )
    return out


def secondary(p: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the nine wrong classes on the images ``keep``, centred per image."""
    logp = p[..., keep, :].clamp_min(1e-7).log()
    wrong = ~F.one_hot(y0[keep], data.num_classes).bool().expand_as(logp)
    logp = logp.masked_select(wrong).reshape(*logp.shape[:-1], data.num_classes - 1)
    return logp - logp.mean(-1, keepdim=True)


probs_nine = torch.stack([predict_logits(m, x0).softmax(-1) for m in nine])
all_right = (probs_nine.argmax(-1) == y0).all(0)
dark = secondary(probs_nine, all_right)
dark_a, dark_b = dark[1:5].mean(0), dark[5:].mean(0)

print(table_head(args.half, kit.config.alpha, per_family=True))
stats = {}
for mode in ("probs", "label"):
    rows: dict[str, tuple[dict[str, float], object]] = {}
    for i, a in on_errors.items():
        for name, s in on_errors_stats(a, mode).items():
            rows.setdefault(name, ({}, None))[0][i] = s
    for k in KS:
        for stat in ("vmc", "agree"):
            per_model = {i: unique_stats(truncate(a, mode), k, stat) for i, a in on_unique.items()}
            stats[mode, k, stat] = per_model
            rows[f"unique points: {stat}, k = {k}"] = ({i: t[0] for i, t in per_model.items()}, None)
            own = {i: -prediction_greater(t[:1], t[1:]) for i, t in per_model.items()}
            rows[f"unique points: {stat}, k = {k}, own"] = (own, lambda s: -s)
    if mode == "probs":
        sec = {i: float(F.cosine_similarity((dark[0] - dark_a).flatten(), (secondary(a, all_right) - dark_b).flatten(), 0))
               for i, a in held_out.items()}  # fmt: skip
        rows["secondary classes"] = (sec, None)
    for name, (sim, p_value) in rows.items():
        print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha, p_value)} | {family_aucs(sim, info)} |")

acc_of = {i: float((held_out[i].argmax(-1) == y0).float().mean()) for i in info}
sib_of = {mode: {i: st.siblings(a, mode) for i, a in on_errors.items()} for mode in ("probs", "label")}
honest = [i for i in info if info[i]["role"] == "homologous"]
accuracy = np.array([acc_of[i] for i in honest])
vmc7 = np.array([stats["probs", 7, "vmc"][i][0] for i in honest])
sib = np.array([sib_of["probs"][i] for i in honest])
print(
    f"\nover the {len(honest)} honest models: correlation with test accuracy of vmc (k = 7) "
    f"{np.corrcoef(accuracy, vmc7)[0, 1]:+.2f}, of `siblings` {np.corrcoef(accuracy, sib)[0, 1]:+.2f}"
)


def accuracy_regressed(value: dict[str, float], accuracy: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Each suspect's statistic minus its fit on test accuracy over honest models spanning the accuracies
    (the calibration models and the benchmark's honest models of the other families: a null no kit has),
    and the prediction t-test's p-value of that residual against theirs."""
    out = {}
    for i in info:
        family = info[i]["family"] if info[i]["group"] == "fam" else None
        null = [
            j for j in info if j != i and info[j]["role"] == "homologous"
            and (info[j]["group"] == "calibration" or (info[j]["group"] == "fam" and info[j]["family"] != family))
        ]  # fmt: skip
        x, v = np.array([accuracy[j] for j in null]), np.array([value[j] for j in null])
        slope, intercept = np.polyfit(x, v, 1)
        r = value[i] - (intercept + slope * accuracy[i])
        out[i] = (r, prediction_greater(np.array([r]), v - (intercept + slope * x)))
    return out


fam = [i for i in info if info[i]["group"] == "fam"]
fam_pos = [i for i in fam if info[i]["role"] == "piracy"]
fam_neg = [i for i in fam if info[i]["role"] == "homologous"]
print("\nregressed on test accuracy, against a null spanning the families' accuracies (leave-family-out):")
for mode in ("probs", "label"):
    for name, value in (("vmc, k = 7", {i: stats[mode, 7, "vmc"][i][0] for i in info}), ("`siblings`", sib_of[mode])):
        res = accuracy_regressed(value, acc_of)
        sim = {i: v[0] for i, v in res.items()}
        print(
            f"  {mode}, {name}: AUC {auc([sim[i] for i in fam_pos], [sim[i] for i in fam_neg]):.3f}, "
            f"{sum(res[i][1] < 0.01 for i in fam_pos)}/{len(fam_pos)} detected, "
            f"{sum(res[i][1] < 0.01 for i in fam_neg)}/{len(fam_neg)} flagged at alpha 0.01; {family_aucs(sim, info)}"
        )

print("\nper suspect of the benchmark (probs): accuracy, vmc k = 7 on the victim's and the siblings' mean, own p")
for i in sorted(fam, key=lambda i: (info[i]["family"], info[i]["role"], i)):
    t = stats["probs", 7, "vmc"][i]
    print(f"  {i:28s} {acc_of[i]:.3f} {t[0]:+.3f} {t[1:].mean():+.3f} {prediction_greater(t[:1], t[1:]):.4f}")
