"""A study: does `siblings` against a family null detect more with more of the victim's errors?

    python scripts/study-more-errors.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

The kit's `errors` sets hold 1,000 held-out images the victim misclassifies: on Fashion-MNIST, nearly all
of its errors on the 10,000 test images. Against a family null (`verify --family-null`), the honest models'
`siblings` similarities spread partly because of which images were drawn: on the first victim's dev
families the mean over the even sets correlates with the mean over the odd ones at 0.29 (widebn) to 0.87
(lenet5) across the null's 12 models. More error images would shrink that part. This study makes them
from the same held-out images moved by one pixel (the 9 shifts of `_study.SHIFTS`, the unshifted first),
keeps the victim's errors among them, and scores `siblings` (the product's statistic, sets of 50) on:
``kit``, the kit's own 1,000; ``unshifted``, the victim's errors on the unshifted images (as the kit, in
another order); ``shifted, 1,000``, 1,000 drawn from all (as many queries as the kit, other images); and
``shifted, all``. Each against the suspect's own architecture's family null (``MODELS/family-null-ARCH``,
12 models of 4 epochs: ``uapfp family-null --epochs 4``, as the benchmark built it until 2026-12-07; the null's own models each against the other 11) and, for the `kit` row, the kit's calibration
models. Counted at alpha 0.01; 0.05: the benchmark's copies detected and honest models flagged, the nulls'
models flagged, and the `long` and `short` honest models of `scripts/study-family-null-recipe.py` flagged.

Answers are cached in ``runs/study-more-errors-KIT-HALF.pt``. Dev half unless ``--half test``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _study import (
    SHIFTS,
    cell,
    family_answers,
    family_study_args,
    null_and_recipe_files,
    p_left_out,
    shifted,
    victim_and_siblings,
)

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.evaluate import auc
from uapfp.methods import get_method, truncate
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.training import predict_logits

PER_SET = 50
args, zoo, kit = family_study_args(__doc__)
tag = f"{Path(args.kit).name}-{args.half}"
data = zoo.load_dataset()
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
nine = victim_and_siblings(zoo, kit)
X = torch.cat([shifted(data.x_test, dy, dx) for dy, dx in SHIFTS])
Y = data.y_test.repeat(len(SHIFTS))
wrong = (predict_logits(nine[0], X).argmax(-1) != Y).nonzero().squeeze(1)
order = wrong[torch.randperm(len(wrong), generator=torch.Generator().manual_seed(0))]
XE = X[order]
n_plain = int((order < len(data.x_test)).sum())
print(f"the victim's errors: {n_plain} on the unshifted held-out images, {len(order)} with the shifts")
with torch.no_grad():
    nine_probs = torch.stack([predict_logits(m, XE).softmax(-1) for m in nine])  # (9, N, K)

# every model's answers to XE (probabilities), cached
ask = lambda s: s(XE)  # noqa: E731
answers, info = family_answers(zoo, kit, args.models, args.half, ask, cache=f"runs/study-more-errors-{tag}.pt",
                               data=data)  # fmt: skip
bench = [i for i in info if info[i]["group"] == "fam"]
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
copies = [i for i in bench if info[i]["role"] == "piracy"]
honest = [i for i in bench if info[i]["role"] == "homologous"]
calibration = [i for i in info if info[i]["group"] == "calibration"]
files = null_and_recipe_files(args.models, args.kit, arch.values(), families)
cache = Path(f"runs/study-more-errors-{tag}-extra.pt")
stored: dict[str, torch.Tensor] = torch.load(cache, weights_only=True) if cache.is_file() else {}
c, h, w = data.input_shape
for key, file in files.items():
    if key not in stored:
        model = create_model(key.split("/")[1], in_channels=c, image_size=(h, w), num_classes=data.num_classes)
        model.load_state_dict(load_tensors(file))
        stored[key] = TorchSuspect(model.eval(), input_shape=kit.input_shape, num_classes=kit.num_classes)(XE)
torch.save(stored, cache.with_suffix(".partial"))
cache.with_suffix(".partial").rename(cache)
answers.update(stored)

# the kit's own sets: the benchmark's and the zoo's models from the other studies' cache, the null and recipe
# models from scripts/study-balanced-recipe.py's (run it first)
on_kit = torch.load(f"runs/study-siblings-level-{tag}.pt", weights_only=True)
extra = torch.load(f"runs/study-balanced-recipe-{tag}.pt", weights_only=True)
on_kit.update({k: extra[f"{k}#errors"] for k in files})
ref = kit.references["errors"]

plain = torch.arange(len(order))[order < len(data.x_test)]
choices = {
    "unshifted": plain[: (len(plain) // PER_SET) * PER_SET],
    "shifted, 1,000": torch.arange(1000),
    "shifted, all": torch.arange((len(order) // PER_SET) * PER_SET),
}


def sib(a: torch.Tensor, idx: torch.Tensor, mode: str) -> float:
    """`siblings`' mean similarity over sets of PER_SET of the images ``idx`` of XE, for answers ``a`` (N, K)."""
    v, s = truncate(nine_probs[:, idx], mode), truncate(a[idx], mode)
    half_a, half_b = v[1:5].mean(0), v[5:].mean(0)
    r_v, r_s = (v[0] - half_a).view(-1, PER_SET * v.shape[-1]), (s - half_b).view(-1, PER_SET * v.shape[-1])
    return float(F.cosine_similarity(r_v, r_s, dim=-1).mean())


def sib_kit(a: torch.Tensor, mode: str) -> float:
    """`siblings`' mean similarity on the kit's own sets, as the product scores it."""
    r = ref.truncated(mode, ref.queries.shape[0])
    return float(get_method("siblings").compare(r, truncate(a, mode)).mean())


print(
    f"{args.half} half, {Path(args.kit).name}: `siblings`, each suspect against its own architecture's family null; "
    "alpha 0.01; 0.05"
)
print(
    "| answers | images | queries | AUC | copies detected | the benchmark's honest flagged | null models flagged | "
    "`long` flagged | `short` flagged | null's spread (sd) / copies' mean above the null | the kit's calibration "
    "models as the null: copies detected, honest flagged, `long`, `short` flagged |\n" + "|---" * 11 + "|"
)
keys = [*bench, *files, *calibration]
kit_groups = (copies, honest, [k for k in files if k.startswith("long/")], [k for k in files if k.startswith("short/")])
for mode in ("probs", "label"):
    rows = {"kit": ({i: sib_kit(on_kit[i], mode) for i in keys}, ref.queries.shape[0] * ref.queries.shape[1])}
    for name, idx in choices.items():
        rows[name] = ({i: sib(answers[i], idx, mode) for i in keys}, len(idx))
    for name, (sim, queries) in rows.items():
        null_of = {a: [k for k in files if k.startswith(f"null/{a}/")] for a in set(arch.values())}
        p = functools.partial(p_left_out, sim)
        loo = [p(k, null_of[a]) for a in families for k in null_of[a]]
        rec = [[p(k, null_of[k.split("/")[1]]) for k in files if k.startswith(r + "/")] for r in ("long", "short")]
        spread = np.mean([np.std([sim[k] for k in null_of[a]], ddof=1) for a in families])
        gap = np.mean([sim[i] - np.mean([sim[k] for k in null_of[arch[i]]]) for i in copies])
        print(
            f"| {mode} | {name} | {queries} | {auc([sim[i] for i in copies], [sim[i] for i in honest]):.3f} | "
            f"{cell([p(i, null_of[arch[i]]) for i in copies])} | {cell([p(i, null_of[arch[i]]) for i in honest])} | "
            f"{cell(loo)} | {cell(rec[0])} | {cell(rec[1])} | {spread:.4f} / {gap:.4f} | "
            f"{' / '.join(cell([p(i, calibration) for i in group]) for group in kit_groups)} |",
            flush=True,
        )
