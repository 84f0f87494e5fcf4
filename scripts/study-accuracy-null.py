"""A study: a spanning family null that conditions on the suspect's accuracy on images the victim gets right.

    python scripts/study-spanning-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick   # its caches
    python scripts/study-accuracy-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

The default family null (``uapfp family-null``: 12 honest models of the suspect's architecture, one round of
four at the zoo's epochs, half and a quarter of them) is honest for honest suspects trained less than the zoo,
but it detects few copies at 0.01: its models' `siblings` statistic spreads with how well they are trained
(less accurate models sit closer to the victim on its errors). `scripts/study-recipe-robust.py` fitted a line
in the suspect's accuracy *on the victim's errors*, which is the lineage signal itself (a copy repeats the
victim's mistakes) and which could only extrapolate from a null of one recipe. Here the covariate is the
suspect's accuracy on 1,000 held-out images the victim classifies *correctly* (1,000 more queries, labels
only), and the null spans recipes, so a suspect of another recipe is interpolated, not extrapolated. Each
suspect's `siblings` statistic (every set, as `verify --family-null` scores) is tested

- ``plain``: against the null's statistics (the kit's prediction t-test, what `verify` does today);
- ``line``: against the prediction interval, at the suspect's accuracy, of the least-squares line of the
  null's statistics on their accuracies (t with n - 2 degrees of freedom);
- ``line within``: the line where the suspect's accuracy lies within the null's, else the plain test.

Counted at alpha 0.01; 0.05: the benchmark's copies and honest models, the null's own models (each against
the other 11), and the recipe study's `long` and `short` honest models; and, as comments, each null's range of accuracies and
every `long` or `short` model flagged at 0.05. The accuracies are cached in
``runs/study-accuracy-null-KIT-HALF.pt``. Written up in docs/method.md (not adopted).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from _study import cell, family_answers, family_study_args, regression_p

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.cards import load_model_from_card
from uapfp.family_null import KINDS, FamilyNull
from uapfp.methods import get_method, truncate
from uapfp.significance import prediction_greater
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.training import predict_logits

args, zoo, kit = family_study_args(__doc__)
tag = f"{Path(args.kit).name}-{args.half}"
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
data = zoo.load_dataset()
c, h, w = data.input_shape

# 1,000 held-out images the victim gets right, in a seeded order, as 20 sets of 50 (as the kit's sets are)
victim = load_model_from_card(zoo.victim).eval()
right = (predict_logits(victim, data.x_test).argmax(1) == data.y_test).nonzero().squeeze(1)
pick = right[torch.randperm(len(right), generator=torch.Generator().manual_seed(11))[:1000]]
x_right, y_right = data.x_test[pick].reshape(20, 50, c, h, w), data.y_test[pick]


def accuracy(suspect) -> torch.Tensor:
    """The suspect's labels on the 1,000 images, as a (1000,) tensor of 0/1 (right or not)."""
    return (torch.cat([suspect(s).argmax(-1) for s in x_right]) == y_right).float()


def wrap(model: torch.nn.Module) -> TorchSuspect:
    return TorchSuspect(model.eval(), input_shape=kit.input_shape, num_classes=kit.num_classes, output="probs")


def load(arch: str, file: Path) -> TorchSuspect:
    model = create_model(arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    model.load_state_dict(load_tensors(file))
    return wrap(model)


cache = Path(f"runs/study-accuracy-null-{tag}.pt")
bench_acc, info = family_answers(zoo, kit, args.models, args.half, accuracy, cache=cache, data=data)
extra_cache = cache.with_name(cache.stem + "-extra.pt")
extra: dict[str, torch.Tensor] = torch.load(extra_cache, weights_only=True) if extra_cache.is_file() else {}
bench = [i for i in info if info[i]["group"] == "fam"]
# a distilled copy's architecture is its student's
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
archs = sorted({*families, *arch.values()})
nulls = {f: FamilyNull.load(Path(args.models) / f"family-null-{f}-span", kit) for f in archs}
for f, null in nulls.items():
    for j, m in enumerate(null.models):
        key = f"null/{f}/{j}"
        if key not in extra:
            extra[key] = accuracy(load(f, Path(null.folders[0]) / "models" / f"{m['name']}.safetensors"))
for f in families:
    for r in ("long", "short"):
        for k in KINDS:
            key = f"{r}/{f}-{k}"
            if key not in extra:
                folder = Path(f"runs/family-null-recipe-{Path(args.kit).name}")  # study-family-null-recipe.py's
                extra[key] = accuracy(load(f, folder / f"{key}.safetensors"))
torch.save(extra, extra_cache.with_suffix(".partial"))
extra_cache.with_suffix(".partial").rename(extra_cache)
acc = {**{i: float(v.mean()) for i, v in bench_acc.items()}, **{k: float(v.mean()) for k, v in extra.items()}}

# the `siblings` statistics, from the caches of the other studies of the half
ref = kit.references["errors"]
n_sets = kit.config.fingerprints
answers = torch.load(f"runs/study-siblings-level-{tag}.pt", weights_only=True)
recipe_answers = torch.load(f"runs/study-recipe-robust-{tag}.pt", weights_only=True)
method = get_method("siblings")


def similarity(a: torch.Tensor, mode: str) -> float:
    return float(method.compare(ref.truncated(mode, n_sets), truncate(a[:n_sets], mode)).mean())


def p_value(test: str, s: float, x0: float, ys: np.ndarray, xs: np.ndarray) -> float:
    """The suspect's p-value by ``test`` against a null of statistics ``ys`` at accuracies ``xs``."""
    if test == "plain" or (test == "line within" and not xs.min() <= x0 <= xs.max()):
        return prediction_greater(np.array([s]), ys)
    return regression_p(s, x0, ys, xs)


print(f"{args.half} half, {Path(args.kit).name}: `siblings` against the spanning family null, plain or with a line "
      "in the accuracy on 1,000 images the victim gets right; alpha 0.01; 0.05")  # fmt: skip
print("| answers | test | copies detected | the benchmark's honest flagged | the null's own models flagged | "
      "`long` flagged | `short` flagged |\n" + "|---" * 7 + "|")  # fmt: skip
for mode in ("probs", "label"):
    ys = {f: nulls[f].similarities(kit, method, mode, n_sets).mean(1).numpy() for f in archs}
    xs = {f: np.array([acc[f"null/{f}/{j}"] for j in range(nulls[f].count)]) for f in archs}
    if mode == "probs":
        for f in families:
            slope, _ = np.polyfit(xs[f], ys[f], 1)
            print(f"<!-- {f}: null accuracies {xs[f].min():.3f}..{xs[f].max():.3f}, slope {slope:.2f}, "
                  f"corr {np.corrcoef(xs[f], ys[f])[0, 1]:.2f} -->")  # fmt: skip
    for test in ("plain", "line", "line within"):
        bp = {i: p_value(test, similarity(answers[i], mode), acc[i], ys[arch[i]], xs[arch[i]]) for i in bench}
        copies = [bp[i] for i in bench if info[i]["role"] == "piracy"]
        honest = [bp[i] for i in bench if info[i]["role"] == "homologous"]
        own = [
            p_value(test, ys[f][j], xs[f][j], np.delete(ys[f], j), np.delete(xs[f], j))
            for f in families for j in range(len(ys[f]))
        ]  # fmt: skip
        recipes = []
        for r in ("long", "short"):
            recipes.append([])
            for f in families:
                for k in KINDS:
                    key = f"{r}/{f}-{k}"
                    q = p_value(test, similarity(recipe_answers[key], mode), acc[key], ys[f], xs[f])
                    recipes[-1].append(q)
                    if q < 0.05:
                        print(f"<!-- {mode} {test}: {key} p {q:.2g}, accuracy {acc[key]:.3f} (null "
                              f"{xs[f].min():.3f}..{xs[f].max():.3f}) -->")  # fmt: skip
        print(f"| {mode} | {test} | {cell(copies)} | {cell(honest)} | {cell(own)} | {cell(recipes[0])} | "
              f"{cell(recipes[1])} |", flush=True)  # fmt: skip
