"""A study: how many honest models should a family null hold (`uapfp family-null --count`, 12 by default)?

    python scripts/study-family-null-size.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

Needs the families benchmark's family nulls (``MODELS/family-null-ARCH``: the benchmark's null of one recipe, which
``uapfp bench families --family-null 12`` built until 2026-12-07; now ``uapfp family-null --epochs 4 --out
MODELS/family-null-ARCH`` per architecture)
and the own-family study's extra honest models (``scripts/study-own-family-null.py``,
``runs/families-honest-KIT/seed*``: the benchmark's recipe and four honest kinds, other seeds), which together
give each family of the half a pool of honest models (28 per dev family, 20 per test family). For each null
size n, ``--draws`` random draws of n models from the suspect's own family's pool (the suspect itself left
out where it is in the pool) are the null; the suspect is tested by `siblings` (the product's statistic for
``--family-null`` until 2026-12-07, when it became ``errors+siblings``) and the kit's prediction t-test. Counted, as means over the draws: the benchmark's copies
detected, its honest models flagged, and the pool's own models flagged (each against draws from the rest).
Copies of an architecture with no pool of the half (a copy distilled into another family) are left out.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from _study import family_answers, family_study_args

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
from uapfp.methods import get_method, truncate
from uapfp.significance import prediction_greater
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect


def extra(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--draws", type=int, default=200)


args, zoo, kit = family_study_args(__doc__, extra)
tag = f"{Path(args.kit).name}-{args.half}"
ref = kit.references["errors"]
ask = lambda s: torch.stack([s(q) for q in ref.queries])  # noqa: E731
answers, info = family_answers(zoo, kit, args.models, args.half, ask, cache=f"runs/study-siblings-level-{tag}.pt")
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
data = zoo.load_dataset()
c, h, w = data.input_shape
pool_files = {f: sorted((Path(args.models) / f"family-null-{f}" / "models").glob("*.safetensors")) for f in families}
for f in families:
    pool_files[f] += sorted(Path(f"runs/families-honest-{Path(args.kit).name}").glob(f"seed*/{f}-honest-*.safetensors"))
cache = Path(f"runs/study-family-null-size-{tag}.pt")
stored: dict[str, torch.Tensor] = torch.load(cache, weights_only=True) if cache.is_file() else {}
for f, fs in pool_files.items():
    for file in fs:
        key = f"{f}/{file.parent.name}/{file.stem}"
        if key not in stored:
            model = create_model(f, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
            model.load_state_dict(load_tensors(file))
            stored[key] = ask(TorchSuspect(model.eval(), input_shape=kit.input_shape, num_classes=kit.num_classes))
torch.save(stored, cache.with_suffix(".partial"))
cache.with_suffix(".partial").rename(cache)
pools = {f: [k for k in stored if k.startswith(f + "/")] for f in families}
bench = [i for i in info if info[i]["group"] == "fam"]
arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
bench = [i for i in bench if arch[i] in families]
copies = [i for i in bench if info[i]["role"] == "piracy"]
honest = [i for i in bench if info[i]["role"] == "homologous"]
smallest = min(len(p) for p in pools.values())
sizes = sorted({n for n in (6, 8, 12, 16, 20, 24, smallest - 1) if n <= smallest - 1})
print(
    f"{args.half} half, {Path(args.kit).name}: pools of {', '.join(f'{f} {len(p)}' for f, p in pools.items())} "
    f"honest models; {len(copies)} copies and {len(honest)} honest models of the benchmark; `siblings` against n "
    f"drawn from the suspect's own family's pool, mean over {args.draws} draws; alpha 0.01; 0.05"
)
print(
    "| answers | n | copies detected | the benchmark's honest flagged | the pools' models flagged |"
    "\n" + "|---" * 5 + "|"
)
method = get_method("siblings")


def drawn_p(sim: dict[str, float], x: str, fam: str, *, n: int, rng: np.random.Generator) -> float:
    """The p-value of ``x``'s similarity against ``n`` models drawn at random from ``fam``'s pool (not ``x``)."""
    others = [k for k in pools[fam] if k != x]
    pick = rng.choice(len(others), size=n, replace=False)
    return prediction_greater(np.array([sim[x]]), np.array([sim[others[j]] for j in pick]))


for mode in ("probs", "label"):
    r = ref.truncated(mode, ref.queries.shape[0])
    sim = {i: float(method.compare(r, truncate(a, mode)).mean()) for i, a in {**answers, **stored}.items()}
    for n in sizes:
        rng = np.random.default_rng(0)
        det = np.zeros((args.draws, 2, len(copies)), dtype=bool)
        flag, pflag = np.zeros((args.draws, 2)), np.zeros((args.draws, 2))
        for d in range(args.draws):
            p = functools.partial(drawn_p, sim, n=n, rng=rng)
            pc = np.array([p(i, arch[i]) for i in copies])
            ph = np.array([p(i, arch[i]) for i in honest])
            pp = np.array([p(k, f) for f in families for k in pools[f]])
            for j, a in enumerate((0.01, 0.05)):
                det[d, j], flag[d, j], pflag[d, j] = pc < a, (ph < a).sum(), (pp < a).sum()
        n_pool = sum(len(p) for p in pools.values())
        cells = [
            "; ".join(f"{x[:, j].sum(-1).mean() if x.ndim == 3 else x[:, j].mean():.1f}" for j in (0, 1))
            for x in (det, flag, pflag)
        ]
        print(
            f"| {mode} | {n} | {cells[0]} of {len(copies)} | {cells[1]} of {len(honest)} | {cells[2]} of {n_pool} |",
            flush=True,
        )
