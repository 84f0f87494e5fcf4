"""A study: is the verdict honest and strong when the null holds many honest models of the suspect's own family?

    python scripts/study-own-family-null.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    PYTHONPATH=examples UAPFP_TRUST_CODE=owner_nets \\
        python scripts/study-own-family-null.py --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2

`scripts/study-balanced-unique.py` bounded what any null shared by all suspects can give on families the
zoo never held (at most 13 of 33 copies at alpha 0.01), and found that 3 or 4 honest models of the
suspect's own family, as the null, detected 28 of 33 copies on the second victim but flagged 2 of 12 honest
models on the first: too few models to say. An owner who knows a suspect's architecture (the suspect is a
file they hold, say) can train many. This study trains ``--seeds`` more rounds of the benchmark's four
honest kinds of each family of the half (on exactly D_V with Adam and with SGD, on data overlapping it by
half, on data disjoint from it; other seeds, the benchmark's recipe) into ``--extra`` (default
``runs/families-honest-KIT``; resumable), so that each family has 4 x (1 + seeds) honest models, and tests
every suspect of the half, and every extra honest model, against the honest models of its own family (the
suspect itself left out), by the kit's prediction t-test. Statistics: `siblings`, the balanced ``vmc`` of
`study-balanced-unique.py` (k = 7), and the two averaged on the calibration models' scale. It counts
copies detected and honest models flagged at alpha 0.01 and 0.05, the extra honest models included in
the honest count (they are honest suspects too), and, for comparison, against the kit's calibration models.
Last, whether the family could be recognised from the answers rather than known: each suspect's
deviation from the mean honest model on the 10,000 held-out images, against each candidate family's
(the zoo's architectures and the half's families), the closest family's honest models as the null;
and the same with the suspect's own family left out of the candidates (a suspect of an architecture the
owner never trained). Dev half unless ``--half test``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _study import UniquePointStudy, counts

from uapfp.bench.suspects_zoo import DEV_FAMILIES, HONEST, TEST_FAMILIES, build_suspects, load_suspect
from uapfp.evaluate import auc
from uapfp.methods import truncate
from uapfp.significance import prediction_greater


def extra_args(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--seeds", type=int, default=4, help="extra rounds of the four honest kinds per family")
    parser.add_argument(
        "--extra", default=None, help="folder of the extra honest models (default runs/families-honest-KIT)"
    )


st = UniquePointStudy(__doc__, extra_args)
args, zoo, kit, data, x0, ref = st.args, st.zoo, st.kit, st.data, st.x0, st.ref
on_errors, on_unique, info = st.on_errors, st.on_unique, st.info
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
held_out = st.held_out
extra_root = Path(args.extra or f"runs/families-honest-{Path(args.kit).name}")
for seed in range(1, args.seeds + 1):
    folder = extra_root / f"seed{seed}"
    records = build_suspects(folder, st.nine[0], data, zoo.splits(), families=families, kinds=HONEST, seed=seed)
    for rec in records:
        name = f"{rec.name}-s{seed}"
        s = load_suspect(folder, rec, data)
        on_errors[name], on_unique[name], held_out[name] = (
            torch.stack([s(q) for q in ref.queries]),
            s(st.X[st.union]),
            s(x0),
        )
        info[name] = {"role": "homologous", "group": "extra", "family": rec.family}


calibration = st.calibration
suspects = [i for i in info if info[i]["group"] in ("fam", "extra")]
copies = [i for i in suspects if info[i]["role"] == "piracy"]
honest = [i for i in suspects if info[i]["role"] == "homologous"]
print(
    f"{args.half} half: {len(copies)} copies, {len(honest)} honest models ({len(honest) - sum(info[i]['group'] == 'fam' for i in honest)} "
    f"of them extra), {len(honest) // len(families)} honest models per family"
)
print(
    "| answers | statistic | null | AUC | detected, flagged at 0.01 | at 0.05 | per family: detected, flagged at 0.01 |"
)
print("|---|---|---|---|---|---|---|")
sib_of = {mode: {i: st.siblings(a, mode) for i, a in on_errors.items()} for mode in ("probs", "label")}
for mode in ("probs", "label"):
    sib = sib_of[mode]
    bal = {i: st.vmc(truncate(a, mode), 7) for i, a in on_unique.items()}
    both = st.combined(sib, bal)
    for name, sim in (("`siblings`", sib), ("balanced, k = 7", bal), ("`siblings` + balanced", both)):
        nulls = {
            "the kit's calibration models": lambda i: calibration,
            "the suspect's own family's honest models": lambda i: [
                j for j in honest if j != i and info[j]["family"] == info[i]["family"]
            ],
        }
        for null_name, null_of in nulls.items():
            p = {i: prediction_greater(np.array([sim[i]]), np.array([sim[j] for j in null_of(i)])) for i in suspects}
            cells = [counts(p, copies, honest, a) for a in (0.01, 0.05)]
            per = ", ".join(
                f"{f} {sum(p[i] < 0.01 for i in copies if info[i]['family'] == f)}, "
                f"{sum(p[i] < 0.01 for i in honest if info[i]['family'] == f)}"
                for f in families
            )
            print(
                f"| {mode} | {name} | {null_name} | {auc([sim[i] for i in copies], [sim[i] for i in honest]):.3f} | "
                f"{cells[0]} | {cells[1]} | {per} |"
            )

# ---- recognising the family from the answers: each suspect's deviation from the mean honest model on the
# held-out images (which carry no lineage: docs/method.md), against each candidate family's mean deviation;
# candidates: the zoo's architectures (their honest calibration and held-out models) and the half's families
candidates: dict[str, list[str]] = {}
for i in info:
    if info[i]["role"] == "homologous":
        candidates.setdefault(info[i]["family"], []).append(i)
print(
    "\nthe family recognised from the answers on the held-out images, then its honest models as the null "
    f"(candidates: {', '.join(f'{f} ({len(m)})' for f, m in candidates.items())}); `siblings`"
)
print(
    "| answers | candidates | honest recognised, copies recognised | detected, flagged at 0.01 | at 0.05 |\n|---|---|---|---|---|"
)
for mode in ("probs", "label"):
    rep = {i: truncate(a, mode).flatten() for i, a in held_out.items()}
    mean = torch.stack([rep[i] for i in info if info[i]["role"] == "homologous"]).mean(0)
    sib = sib_of[mode]
    for own_known in (True, False):
        recognised = {}
        for i in suspects:
            scores = {
                f: float(
                    torch.nn.functional.cosine_similarity(
                        rep[i] - mean, torch.stack([rep[j] for j in members if j != i]).mean(0) - mean, 0
                    )
                )
                for f, members in candidates.items()
                if own_known or f != info[i]["family"]
            }
            recognised[i] = max(scores, key=scores.get)
        p = {
            i: prediction_greater(np.array([sib[i]]), np.array([sib[j] for j in candidates[recognised[i]] if j != i]))
            for i in suspects
        }
        cells = [counts(p, copies, honest, a) for a in (0.01, 0.05)]
        right = [sum(recognised[i] == info[i]["family"] for i in group) for group in (honest, copies)]
        what = "all (the suspect's family among them)" if own_known else "all but the suspect's family"
        print(f"| {mode} | {what} | {right[0]}/{len(honest)}, {right[1]}/{len(copies)} | {cells[0]} | {cells[1]} |")
