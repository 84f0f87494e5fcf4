"""A study: a `siblings` statistic whose family null stays honest for honest suspects trained another way.

    python scripts/study-family-null-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick --half dev
    python scripts/study-recipe-robust.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

`scripts/study-family-null-recipe.py` found that the family null (`verify --family-null`, `siblings`)
flags honest models trained for half the epochs (`short`), which sit closer to the victim than the
null's models. The suspected cause: the victim's error images are chosen by its mistakes, so its
deviation from its siblings, ``r_v``, leans towards "less mass on the true class" on every image, and
so does the deviation of any model less accurate than the siblings. The variants here take that
direction out, and are scored against the same family nulls (12 honest models of the suspect's own
architecture, the benchmark's recipe: ``MODELS/family-null-ARCH``, which ``uapfp bench families --family-null 12``
built until 2026-12-07, and ``uapfp family-null --epochs 4 --out MODELS/family-null-ARCH`` builds now) on the benchmark's copies and honest models, on the nulls' own
models (each against the rest of its null), and on honest models trained with the `long` and `short`
recipes (which the recipe study trains into ``runs/family-null-recipe-KIT``: run it first for the half):

- ``siblings``: the product's statistic, cos(r_v, r_s);
- ``truth out (set)``: each set's deviations made orthogonal to its direction towards the true labels;
- ``truth out (image)``: the true class's column dropped from every image's deviation (the cosine over
  the other K - 1 columns);
- ``wrong classes``: the deviations of each answer's wrong-class distribution (the answer with its true
  class's entry set to zero, divided by what is left; an answer that gives the true class everything
  contributes zeros), so that how often a model is wrong does not count, only where it goes when it is.

Then two more tables: nulls that span recipes (the 12 with the `long` or the `short` models), each with and
without a line in the suspect's accuracy on the error images (a prediction interval of the regression), each
recipe tested against a null without it; and whether a warning on a suspect less accurate on the error images
than every model of its null would single out the honest models the null flags.

The answers of the benchmark's suspects and the zoo's models come from the cache the other studies of
the half write (``runs/study-siblings-level-KIT-HALF.pt``); the recipe models' answers are cached in
``runs/study-recipe-robust-KIT-HALF.pt``.
"""

from __future__ import annotations

import collections
import itertools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _study import cell, family_answers, family_study_args, regression_p

from uapfp.archs import create_model
from uapfp.bench.scoring import tpr_at_fpr
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.evaluate import auc
from uapfp.family_null import KINDS, FamilyNull
from uapfp.methods import truncate
from uapfp.significance import prediction_greater
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect

RECIPES = ("long", "short")
args, zoo, kit = family_study_args(__doc__)
tag = f"{Path(args.kit).name}-{args.half}"
ref_all = kit.references["errors"]
n_sets = kit.config.fingerprints
ask = lambda suspect: torch.stack([suspect(s) for s in ref_all.queries])  # noqa: E731
answers, info = family_answers(zoo, kit, args.models, args.half, ask, cache=f"runs/study-siblings-level-{tag}.pt")
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
bench = {i: v for i, v in info.items() if v["group"] == "fam"}
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
nulls = {a: FamilyNull.load(Path(args.models) / f"family-null-{a}", kit) for a in sorted(set(arch.values()))}

# the recipe models' answers (cached)
cache = Path(f"runs/study-recipe-robust-{tag}.pt")
recipe_answers: dict[str, torch.Tensor] = torch.load(cache, weights_only=True) if cache.is_file() else {}
folder = Path(f"runs/family-null-recipe-{Path(args.kit).name}")
data = zoo.load_dataset()
c, h, w = data.input_shape
for recipe in RECIPES:
    for family in families:
        for kind in KINDS:
            key = f"{recipe}/{family}-{kind}"
            if key in recipe_answers:
                continue
            file = folder / f"{key}.safetensors"
            if not file.is_file():
                raise SystemExit(f"{file} is missing: run scripts/study-family-null-recipe.py --half {args.half} first")
            model = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
            model.load_state_dict(load_tensors(file))
            recipe_answers[key] = ask(TorchSuspect(model.eval(), input_shape=kit.input_shape,
                                                   num_classes=kit.num_classes, output="probs"))  # fmt: skip
torch.save(recipe_answers, cache.with_suffix(".partial"))
cache.with_suffix(".partial").rename(cache)


def perp(r: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Each set's flattened (..., S, n*K) deviations ``r`` without their component along ``d``."""
    dn = F.normalize(d.flatten(-2), dim=-1)
    rf = r.flatten(-2)
    return rf - (rf * dn).sum(-1, keepdim=True) * dn


def wrong_dist(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., S, n, K) answers -> their distribution over the wrong classes (zeros where there is none)."""
    q = p.scatter(-1, y.expand(p.shape[:-1]).unsqueeze(-1), 0.0)
    return q / q.sum(-1, keepdim=True).clamp_min(1e-6)


def statistics(a: torch.Tensor, mode: str) -> dict[str, float]:
    """Every variant's mean similarity over the kit's sets, for answers ``a`` (S, n, K) as probabilities."""
    ref = ref_all.truncated(mode, n_sets)
    a = truncate(a[:n_sets], mode)
    m = ref.siblings.shape[0]
    sa, sb = ref.siblings[: m // 2], ref.siblings[m // 2 :]
    r_v, r_s = ref.victim - sa.mean(0), a - sb.mean(0)
    truth = F.one_hot(ref.labels, ref.victim.shape[-1]).float()
    keep = 1 - truth
    y = ref.labels
    qv, qs = wrong_dist(ref.victim, y) - wrong_dist(sa, y).mean(0), wrong_dist(a, y) - wrong_dist(sb, y).mean(0)
    cos = lambda u, v: float(F.cosine_similarity(u.flatten(-2), v.flatten(-2), dim=-1).mean())  # noqa: E731
    return {
        "siblings": cos(r_v, r_s),
        "truth out (set)": float(
            F.cosine_similarity(perp(r_v, truth - sa.mean(0)), perp(r_s, truth - sb.mean(0)), dim=-1).mean()
        ),  # fmt: skip
        "truth out (image)": cos(r_v * keep, r_s * keep),
        "wrong classes": cos(qv, qs),
    }


def null_stats(a: str, mode: str) -> list[dict[str, float]]:
    ans = nulls[a].answers["errors"]
    return [statistics(ans[i], mode) for i in range(ans.shape[0])]


def family_of(key: str) -> str:
    """The architecture of a recipe model's key, ``recipe/family-kind``."""
    return key.split("/")[1].split("-")[0]


copies = [i for i in bench if bench[i]["role"] == "piracy"]
honest = [i for i in bench if bench[i]["role"] == "homologous"]
print(
    f"{args.half} half, {Path(args.kit).name}: against each suspect's own family's null ({nulls[families[0]].count} "
    "honest models of its architecture, the benchmark's recipe), alpha 0.01; 0.05"
)
print(
    "| answers | statistic | AUC | TPR at 1 % FPR | copies detected | the benchmark's honest flagged | null models "
    "flagged (leave one out) | `long` flagged | `short` flagged | per family AUC |"
)
print("|---" * 10 + "|")
for mode in ("probs", "label"):
    ns = {a: null_stats(a, mode) for a in nulls}
    sus = {i: statistics(answers[i], mode) for i in bench}
    rec = {k: statistics(v, mode) for k, v in recipe_answers.items()}
    for stat in sus[next(iter(sus))]:
        null_of = {a: np.array([s[stat] for s in v]) for a, v in ns.items()}
        p = {i: prediction_greater(np.array([s[stat]]), null_of[arch[i]]) for i, s in sus.items()}
        loo = [prediction_greater(v[j : j + 1], np.delete(v, j)) for a, v in null_of.items() if a in families
               for j in range(len(v))]  # fmt: skip
        recipe_cells = [cell([prediction_greater(np.array([s[stat]]), null_of[family_of(k)])
                              for k, s in rec.items() if k.startswith(r + "/")]) for r in RECIPES]  # fmt: skip
        pos, neg = [sus[i][stat] for i in copies], [sus[i][stat] for i in honest]
        fam_auc = ", ".join(
            f"{f} {auc([sus[i][stat] for i in copies if bench[i]['family'] == f], [sus[i][stat] for i in honest if bench[i]['family'] == f]):.2f}"
            for f in families
        )
        print(
            f"| {mode} | {stat} | {auc(pos, neg):.3f} | {tpr_at_fpr(pos, neg):.2f} | {cell([p[i] for i in copies])} | "
            f"{cell([p[i] for i in honest])} | {cell(loo)} | {recipe_cells[0]} | {recipe_cells[1]} | {fam_auc} |",
            flush=True,
        )


# ---- nulls that span recipes, and a null that models the statistic's level as a line in the suspect's
# accuracy on the error images (which the owner knows: the images' labels are theirs; no extra queries).
# Each recipe's honest models are tested against a null that never held that recipe.
def err_accuracy(a: torch.Tensor) -> float:
    ref = ref_all.truncated("probs", n_sets)
    return float((a[:n_sets].argmax(-1) == ref.labels).float().mean())


print(
    "\nnulls per family: the 12, with the `long` or `short` models added; `line`: the statistic regressed on the "
    "accuracy on the error images. Each recipe's models against a null without them. alpha 0.01; 0.05"
)
print(
    "| answers | statistic | null | line | copies detected | the benchmark's honest flagged | `long` flagged | "
    "`short` flagged |"
)
print("|---" * 8 + "|")
acc_null = {a: [err_accuracy(v.answers["errors"][i]) for i in range(v.count)] for a, v in nulls.items()}
acc = {**{i: err_accuracy(answers[i]) for i in bench}, **{k: err_accuracy(v) for k, v in recipe_answers.items()}}
for mode in ("probs", "label"):
    ns = {a: null_stats(a, mode) for a in nulls}
    stat_of = {**{i: statistics(answers[i], mode) for i in bench},
               **{k: statistics(v, mode) for k, v in recipe_answers.items()}}  # fmt: skip
    for stat, extra, line in itertools.product(
        ("siblings", "truth out (set)"), ((), ("long",), ("short",)), (False, True)
    ):
        added = {a: [k for k in recipe_answers if k.split("/")[0] in extra and family_of(k) == a] for a in nulls}
        ys = {a: np.array([s[stat] for s in ns[a]] + [stat_of[k][stat] for k in added[a]]) for a in nulls}
        xs = {a: np.array(acc_null[a] + [acc[k] for k in added[a]]) for a in nulls}
        p = {
            i: regression_p(stat_of[i][stat], acc[i], ys[a], xs[a]) if line
            else prediction_greater(np.array([stat_of[i][stat]]), ys[a])
            for i, a in [*((i, arch[i]) for i in bench), *((k, family_of(k)) for k in recipe_answers)]
        }  # fmt: skip
        cells = [cell([p[i] for i in group]) for group in (copies, honest)]
        cells += ["(in the null)" if r in extra else cell([p[k] for k in recipe_answers if k.startswith(r + "/")])
                  for r in RECIPES]  # fmt: skip
        print(
            f"| {mode} | {stat} | 12{''.join(' + ' + e for e in extra)} | {'yes' if line else 'no'} | "
            + " | ".join(cells)
            + " |",
            flush=True,
        )

# ---- a warning instead: would "the suspect is less accurate on the error images than every model of its null"
# single out the honest models the null flags, and not the copies it detects?
print(
    "\n`siblings` against the 12, alpha 0.01: flagged or not, and whether the suspect's accuracy on the error images "
    "is below every null model's"
)
print("| answers | suspects | flagged, below | flagged, within | not flagged, below | not flagged, within |")
print("|---|---|---|---|---|---|")
for mode in ("probs", "label"):
    ns = {a: np.array([s["siblings"] for s in null_stats(a, mode)]) for a in nulls}
    groups = {"copies": [(i, arch[i], answers[i]) for i in copies],
              "the benchmark's honest models": [(i, arch[i], answers[i]) for i in honest],
              **{f"honest `{r}`": [(k, family_of(k), v) for k, v in recipe_answers.items() if k.startswith(r + "/")]
                 for r in RECIPES}}  # fmt: skip
    for name, items in groups.items():
        tally = collections.Counter(
            (prediction_greater(np.array([statistics(a, mode)["siblings"]]), ns[f]) < 0.01, acc[i] < min(acc_null[f]))
            for i, f, a in items
        )
        print(
            f"| {mode} | {name} | "
            + " | ".join(str(tally[k]) for k in itertools.product((True, False), (True, False)))
            + " |"
        )
