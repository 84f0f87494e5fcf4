"""A study: the victim's unique points, balanced between where it alone is right and where it alone is wrong.

    python scripts/study-balanced-unique.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    PYTHONPATH=examples UAPFP_TRUST_CODE=owner_nets \\
        python scripts/study-balanced-unique.py --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2

`scripts/study-unique-points.py` found the copies within each family of the families benchmark on the
victim's *unique points* (held-out images and their 1-pixel shifts where the victim's label differs from
the one at least k of its 8 siblings agree on), but flagged half the honest models: a suspect's ``vmc``
there (its probability of the victim's label minus that of the siblings' label) falls with its accuracy
(-0.84 over 42 honest models), because on most unique points the victim is the one that is wrong. This
study splits the unique points by the true label: R, where the victim is right and the siblings' label
wrong, and W, where the victim is wrong and the siblings' label right (points where neither is right are
left out). A more accurate honest model raises ``vmc`` on R and lowers it on W, so the *balanced*
statistic ``(mean over R + mean over W) / 2`` cancels accuracy to first order, where a copy, which follows
the victim, scores high on both (``ratio``: each point's ``vmc`` divided by the suspect's mass on the two
labels, in case the level is how much a suspect hedges towards third classes). Rows: `siblings` as it is; ``vmc`` on all unique points (k = 7, as in
that study); on W alone; balanced for k = 8, 7, 6, and its ``ratio`` for k = 7; and `siblings` + balanced (k = 7), each channel put on
the calibration models' scale and the two averaged, as ``A+B`` does. Each is tested against the kit's
calibration models by the kit's test (the prediction t-test), alpha 0.01 on the families benchmark, the
kit's alpha on the zoo's held-out models.

Then how far a better null could take them: the same statistics tested at alpha 0.01 and 0.05 against
(a) the kit's calibration models; (b) those and the benchmark's honest models of the half's other
families (leave-family-out: a null that spans the families, which no kit has); (c) those and the
benchmark's honest models of every family of the half, the suspect itself left out: an oracle null that
holds the suspects' own families, a bound on what a null shared by all suspects could give; (d) the
suspect's own family's honest models alone (3 or 4): what an owner who knew the suspect's architecture
and trained honest models of it would have.

The answers are cached in ``runs/study-siblings-level-KIT-HALF.pt`` and ``runs/study-unique-points-KIT-HALF.pt``
(KIT the kit folder's name; read back only for its kit). Decisions are made on the dev half (the default);
the test half is not for tuning.
"""

from __future__ import annotations

import numpy as np
from _study import UniquePointStudy, counts, family_aucs, score_cells, table_head

from uapfp.methods import truncate
from uapfp.significance import prediction_greater

st = UniquePointStudy(__doc__)
args, kit, info, calibration, labels, Y = st.args, st.kit, st.info, st.calibration, st.labels, st.Y
for k in st.KS:
    where, consensus = st.unique[0, k]
    print(
        f"the victim's unique points, k = {k}: {len(where)}; R (the victim right) "
        f"{int((labels[0, where] == Y[where]).sum())}, W (the siblings' label right) {int((consensus == Y[where]).sum())}"
    )

print(table_head(args.half, kit.config.alpha, per_family=True))
kept: dict[tuple[str, str], dict[str, float]] = {}
for mode in ("probs", "label"):
    rows = {
        "`siblings` as it is": {i: st.siblings(a, mode) for i, a in st.on_errors.items()},
        "unique points: vmc, k = 7, all": {i: st.vmc(truncate(a, mode), 7, "all") for i, a in st.on_unique.items()},
        "unique points: vmc, k = 7, W only": {i: st.vmc(truncate(a, mode), 7, "W") for i, a in st.on_unique.items()},
    }
    for k in st.KS:
        rows[f"unique points: balanced, k = {k}"] = {i: st.vmc(truncate(a, mode), k) for i, a in st.on_unique.items()}
    rows["unique points: balanced, k = 7, ratio"] = {
        i: st.vmc(truncate(a, mode), 7, "ratio") for i, a in st.on_unique.items()
    }
    rows["`siblings` + balanced (k = 7)"] = st.combined(
        rows["`siblings` as it is"], rows["unique points: balanced, k = 7"]
    )
    for name, sim in rows.items():
        print(f"| {mode} | {name} | {score_cells(sim, info, kit.config.alpha)} | {family_aucs(sim, info)} |")
    for name in ("`siblings` as it is", "unique points: balanced, k = 7", "`siblings` + balanced (k = 7)"):
        kept[mode, name] = rows[name]

fam = [i for i in info if info[i]["group"] == "fam"]
honest = [i for i in fam if info[i]["role"] == "homologous"]
copies = [i for i in fam if info[i]["role"] == "piracy"]
nulls = {
    "the kit's calibration models": lambda i: calibration,
    "and the other families' honest models": lambda i: (
        calibration + [j for j in honest if info[j]["family"] != info[i]["family"]]
    ),
    "and every family's honest models (oracle)": lambda i: calibration + [j for j in honest if j != i],
    "the suspect's own family's honest models only": lambda i: [
        j for j in honest if j != i and info[j]["family"] == info[i]["family"]
    ],
}
print(f"\n{args.half} half: copies detected and honest models flagged, against four nulls")
print("| answers | statistic | null | detected, flagged at 0.01 | at 0.05 |\n|---|---|---|---|---|")
for (mode, name), sim in kept.items():
    for null_name, null_of in nulls.items():
        p = {i: prediction_greater(np.array([sim[i]]), np.array([sim[j] for j in null_of(i)])) for i in fam}
        cells = [counts(p, copies, honest, a) for a in (0.01, 0.05)]
        print(f"| {mode} | {name} | {null_name} | {cells[0]} | {cells[1]} |")
