"""The pictures researchers expect, as one self-contained HTML page: ROC curves, the similarity
CDF per role (the paper's figure 5) and per-architecture tables, from what ``uapfp evaluate
--json`` or ``uapfp bench families --out`` wrote. Figures are matplotlib PNGs embedded in the page.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from .evaluate import auc, tally
from .report import PAGE, e, figure, png

ROLE_COLOURS = {"piracy": "#b22222", "homologous": "#1f4e79"}
HEADERS = {"tpr_at_1pct_fpr": "TPR at 1% FPR", "queries_per_suspect": "queries", "seconds_per_suspect": "s / suspect",
           "max_p": "max p", "min_p": "min p", "piracy_models": "copies", "homologous_models": "honest",
           "piracy_mean_similarity": "copies' mean", "homologous_mean_similarity": "honest mean",
           "piracy_detected": "detected", "homologous_flagged": "flagged"}
#: The columns of a :func:`~uapfp.evaluate.tally` in a table.
TALLY_COLUMNS = ["piracy_models", "homologous_models", "auc", "piracy_mean_similarity", "homologous_mean_similarity",
                 "piracy_detected", "homologous_flagged"]


def roc_points(positive: list[float], negative: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold (a score >= threshold is called a copy)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    thresholds = np.concatenate([[np.inf], np.unique(np.concatenate([pos, neg]))[::-1]])
    fpr = np.array([(neg >= t).mean() if len(neg) else 0.0 for t in thresholds])
    tpr = np.array([(pos >= t).mean() if len(pos) else 0.0 for t in thresholds])
    return fpr, tpr


def roc_figure(curves: dict[str, tuple[list[float], list[float]]], title: str) -> str:
    """ROC curves, one per name: (copies' scores, honest models' scores)."""
    fig, ax = figure(5.2, 4.6)
    for name, (pos, neg) in curves.items():
        fpr, tpr = roc_points(pos, neg)
        ax.step(fpr, tpr, where="post", label=f"{name} (AUC {auc(pos, neg):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="#999")
    ax.set(xlabel="false positive rate (honest models flagged)", ylabel="true positive rate (copies found)",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title=title)  # fmt: skip
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return png(fig)


def cdf_figure(by_role: dict[str, list[float]], title: str) -> str:
    """The empirical CDF of the similarity, one curve per role (the paper's figure 5)."""
    fig, ax = figure(6, 3.4)
    for role, values in by_role.items():
        xs = np.sort(np.asarray(values, dtype=np.float64))
        if len(xs):
            ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=f"{role} ({len(xs)})",
                    color=ROLE_COLOURS.get(role))  # fmt: skip
    ax.set(xlabel="similarity to the victim", ylabel="share of models at or below", ylim=(0, 1.02), title=title)
    ax.legend(loc="upper left", frameon=False)
    return png(fig)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """An HTML table of ``rows`` restricted to ``columns`` (floats to 4 significant digits)."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else html.escape("-" if v is None else str(v))

    head = "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _split(scores: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    pos = [s["similarity"] for s in scores if s["role"] == "piracy"]
    neg = [s["similarity"] for s in scores if s["role"] == "homologous"]
    return pos, neg


def evaluation_report(record: dict[str, Any]) -> str:
    """The page of a kit's held-out evaluation (what ``uapfp evaluate --json`` writes)."""
    models = record["models"]
    pos, neg = _split(models)
    archs = sorted({m["arch"] for m in models})
    per_arch = [{"arch": a, **_tally([m for m in models if m["arch"] == a])} for a in archs]
    s = record["summary"]
    body = f"""
<h1>Held-out evaluation of a kit</h1>
<p>Method <b>{e(record["method"])}</b>, answers <b>{e(record["output_mode"])}</b>,
{e(record["fingerprints"])} query sets, significance {e(record["alpha"])}; kit <span class="mono">{e(record["kit_sha256"])}</span>.
AUC <b>{f"{s['auc']:.4f}" if isinstance(s["auc"], float) else "n/a"}</b>: {e(s["piracy_detected"])} of
{e(s["piracy_models"])} copies detected, {e(s["homologous_flagged"])} of {e(s["homologous_models"])} honest models flagged.</p>
<p class="caveat">Held-out models are of the zoo's architectures and recipes; for suspects unlike
the zoo, see the families benchmark.</p>
<img alt="ROC curve" src="{roc_figure({"held out": (pos, neg)}, "ROC on the held-out zoo models")}">
<img alt="similarity CDF per role" src="{cdf_figure({"piracy": pos, "homologous": neg}, "Similarity per role")}">
<h2>Per architecture</h2>
{table(per_arch, ["arch", *TALLY_COLUMNS])}
<h2>Per architecture, optimiser and role (the paper's table 2)</h2>
{table(record.get("groups") or [], ["arch", "optimizer", "role", "n", "mean", "std", "max_p", "min_p"])}
"""
    return PAGE.format(title="uapfp held-out evaluation", colour="#555", body=body)


def _tally(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~uapfp.evaluate.tally` of score records (role, similarity, verdict)."""
    return tally((s["role"], s["similarity"], s["verdict"]) for s in scores)


def families_report(record: dict[str, Any]) -> str:
    """The page of the families benchmark (what ``uapfp bench families --out`` writes)."""
    rows, suspects = record["rows"], record["suspects"]
    sections = []
    for half in dict.fromkeys(r["half"] for r in rows):
        for output in dict.fromkeys(r["outputs"] for r in rows if r["half"] == half):
            mine = [s for s in suspects if s["half"] == half and s["outputs"] == output]
            methods = list(dict.fromkeys(s["method"] for s in mine))
            curves = {m: _split([s for s in mine if s["method"] == m]) for m in methods}
            per_family = [
                {"method": m, "family": f, **_tally([s for s in mine if s["method"] == m and s["family"] == f])}
                for m in methods for f in dict.fromkeys(s["family"] for s in mine)
            ]  # fmt: skip
            cdfs = "".join(
                f'<img alt="CDF {html.escape(m)}" src="{cdf_figure(dict(zip(("piracy", "homologous"), curves[m])), m)}">'
                for m in methods
            )
            sections.append(f"""
<h2>{html.escape(half)} half, answers {html.escape(output)}</h2>
{table([r for r in rows if r["half"] == half and r["outputs"] == output],
       ["method", "auc", "tpr_at_1pct_fpr", "copies", "detected", "honest", "flagged", "queries_per_suspect",
        "seconds_per_suspect"])}
<img alt="ROC curves" src="{roc_figure(curves, f"{half} half, {output}")}">
<h3>Similarity per role (the paper's figure 5)</h3><div class="grid">{cdfs}</div>
<h3>Per family</h3>
{table(per_family, ["method", "family", *TALLY_COLUMNS])}
""")  # fmt: skip
    fams = "; ".join(f"{h}: {', '.join(f)}" for h, f in record.get("families", {}).items())
    body = f"""
<h1>Families benchmark: suspects of families the zoo never held</h1>
<p>Zoo <code>{e(record["zoo"])}</code>, kit <code>{e(record["kit"])}</code>,
significance {e(record["alpha"])}. Families: {html.escape(fams)}. Decide on the dev half; report the test half.</p>
{"".join(sections)}
"""
    return PAGE.format(title="uapfp families benchmark", colour="#555", body=body)


def results_report(record: dict[str, Any]) -> str:
    """The page of an evaluation or a families benchmark, told apart by their keys."""
    if record.get("experiment") == "families":
        return families_report(record)
    if "models" in record and "summary" in record:
        return evaluation_report(record)
    raise ValueError("not an evaluation (uapfp evaluate --json) or a families benchmark (uapfp bench families --out)")
