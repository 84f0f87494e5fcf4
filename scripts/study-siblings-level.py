"""A study: does `siblings` lose its copies to the honest models' level, and does removing the level help?

    python scripts/study-siblings-level.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`siblings` scores a suspect by cos(r_v, r_s) on the victim's held-out errors, with
r_v = victim - mean(siblings A) and r_s = suspect - mean(siblings B). The images are chosen by the
victim's mistakes, so r_v leans towards "more mass on the victim's wrong class v_i, less on the
true class y_i" on every image; an honest model less accurate than the siblings leans the same
way, a more accurate one the other way, and so the honest models' level moves with their family
(docs/results-fmnist.md). A copy differs from them image by image: it follows the victim where
the victim's mistake is its own. The variants here remove the common level before the cosine:

- ``base``: the product's similarity;
- ``centred``: each set's deviations are put in a frame aligned per image (the column of the
  victim's class v_i, the column of the true class y_i, then the classes in their order with
  those two set to zero), and each column is centred over the set's images; then the cosine;
- ``centred-hard``: as ``centred``, each column also regressed on the image's hardness (the
  siblings' mean probability of v_i) before the cosine;
- ``others``: the cosine over the classes other than v_i and y_i only;
- ``log``, ``log-centred``: ``base`` and ``centred`` on log-probabilities (clamped at 1e-6; the
  siblings' mean is then a geometric one): a copy trained on the victim's probabilities follows
  its small ones too, which probabilities hide (with labels only, the same as ``base``).

Every variant is scored on the same answers, against the kit's calibration models, by the kit's
test (prediction t-test) at alpha 0.01 on the families benchmark (the development half unless
``--half test``; its suspects must exist: `uapfp bench families --halves dev|test` trains them)
and at the kit's alpha on the zoo's held-out models. The answers are cached in
``runs/study-siblings-level-HALF.pt`` (a dict of tensors: ``torch.load(..., weights_only=True)``),
read back only for the kit they were asked for.
"""

import torch
import torch.nn.functional as F
from _study import family_answers, family_aucs, family_study_args, score_cells, table_head

from uapfp.methods import truncate

args, zoo, kit = family_study_args(__doc__)

ref = kit.references["errors"]
answers, info = family_answers(
    zoo, kit, args.models, args.half, lambda suspect: torch.stack([suspect(s) for s in ref.queries]),
    cache=f"runs/study-siblings-level-{args.half}.pt",
)  # fmt: skip


def aligned(r: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., S, n, K) deviations -> (..., S, n, K + 2): [r(v_i), r(y_i), r with v_i and y_i zeroed]."""
    idx_v = v.expand(r.shape[:-1]).unsqueeze(-1)
    idx_y = y.expand(r.shape[:-1]).unsqueeze(-1)
    col_v, col_y = r.gather(-1, idx_v), r.gather(-1, idx_y)
    rest = r.scatter(-1, idx_v, 0.0).scatter(-1, idx_y, 0.0)
    return torch.cat([col_v, col_y, rest], -1)


def residual(a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Each column of (..., S, n, D) ``a`` minus its least-squares fit on [1, h] over the n images; h: (S, n)."""
    x = torch.stack([torch.ones_like(h), h], -1)  # (S, n, 2)
    hat = x @ torch.linalg.pinv(x)  # (S, n, n)
    return a - hat @ a


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine over the last two dimensions; ``b`` broadcast to ``a``."""
    return F.cosine_similarity(a.flatten(-2), b.flatten(-2).expand_as(a.flatten(-2)), dim=-1)


def variants(r_ref, ans: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-set similarity (..., S) of every variant, for answers (..., S, n, K)."""
    out = variants_of(r_ref.victim, r_ref.siblings, r_ref.labels, ans, "")
    log = lambda p: p.clamp_min(1e-6).log()  # noqa: E731
    logged = variants_of(log(r_ref.victim), log(r_ref.siblings), r_ref.labels, log(ans), "log")
    out["log"], out["log-centred"] = logged["logbase"], logged["logcentred"]
    return out


def variants_of(victim, siblings, labels, ans, prefix) -> dict[str, torch.Tensor]:
    m = siblings.shape[0]
    half_a, half_b = siblings[: m // 2].mean(0), siblings[m // 2 :].mean(0)
    v, y = victim.argmax(-1), labels
    r_v, r_s = victim - half_a, ans - half_b
    out = {prefix + "base": cos(r_s, r_v)}
    a_v, a_s = aligned(r_v, v, y), aligned(r_s, v, y)
    out[prefix + "centred"] = cos(a_s - a_s.mean(-2, keepdim=True), a_v - a_v.mean(-2, keepdim=True))
    if prefix:
        return out
    hard = siblings.mean(0).gather(-1, v.unsqueeze(-1)).squeeze(-1)
    out["centred-hard"] = cos(residual(a_s, hard), residual(a_v, hard))
    out["others"] = cos(a_s[..., 2:], a_v[..., 2:])
    return out


names = ["base", "centred", "centred-hard", "others", "log", "log-centred"]
print(table_head(args.half, kit.config.alpha, per_family=True))
for mode in ("probs", "label"):
    r_ref = ref.truncated(mode, ref.queries.shape[0])
    sims = {i: {k: float(s.mean()) for k, s in variants(r_ref, truncate(a, mode)).items()} for i, a in answers.items()}
    for name in names:
        sim = {i: s[name] for i, s in sims.items()}
        print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha)} | {family_aucs(sim, info)} |")
