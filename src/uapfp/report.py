"""Evidence an IP team can hand on: one self-contained HTML file per verdict.

:func:`verdict_report` renders what ``uapfp verify --json`` wrote (the verdict, the kit's
identity, the query log's hash): the verdict in one sentence and what it does not say, the
suspect's score against the honest models' as a figure, every channel's score and p-value, the
per-set similarities, the kit, the queries spent and the command that rechecks them, versions,
machine and times. Figures are drawn by matplotlib and embedded as PNG: the file needs no
network, and printing it from a browser gives a clean PDF.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
import platform
import shlex
from pathlib import Path
from typing import Any

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Georgia, 'DejaVu Serif', serif; max-width: 52rem; margin: 2rem auto; color: #111; line-height: 1.45 }}
h1 {{ font-size: 1.5rem; margin-bottom: .2rem }} h2 {{ font-size: 1.1rem; margin-top: 1.6rem; border-bottom: 1px solid #ccc }}
.verdict {{ font-size: 1.25rem; padding: .8rem 1rem; border-left: .4rem solid {colour}; background: #f6f6f6 }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem }} td, th {{ border: 1px solid #ccc; padding: .25rem .5rem; text-align: left }}
code, .mono {{ font-family: 'DejaVu Sans Mono', monospace; font-size: .82rem; word-break: break-all }}
img {{ max-width: 100%; }} .grid img {{ width: 49%; }} .caveat {{ color: #444; font-size: .92rem }}
@media print {{ body {{ margin: 0 }} h2 {{ page-break-after: avoid }} img {{ page-break-inside: avoid }} }}
</style></head><body>
{body}
</body></html>
"""


def evidence(verdict: Any, kit: Any, query_log: Path | str | None, *, command: str | None = None) -> dict[str, Any]:
    """A verdict with what makes it evidence: the kit, the query log's hash, the command, versions,
    machine and time (what ``uapfp verify --json`` writes and :func:`verdict_report` renders)."""
    from . import __version__
    from .storage import sha256_file

    log_path = Path(query_log) if query_log else None
    return {
        **verdict.to_dict(),
        "query_log": str(log_path) if log_path else None,
        "query_log_sha256": sha256_file(log_path) if log_path and log_path.is_file() else None,
        "kit": kit.describe(),
        "command": command,
        "environment": {"uapfp": __version__, "python": platform.python_version(), "platform": platform.platform(),
                        "machine": platform.machine()},  # fmt: skip
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def figure(width: float, height: float) -> tuple[Any, Any]:
    """A matplotlib figure and its axes, drawn off-screen (no pyplot: the caller's backend is left alone)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def png(fig: Any) -> str:
    """A figure as a data: URL of a PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure_against_honest(record: dict[str, Any]) -> str:
    """The suspect's score (a line) against the honest models' of its null (dots and a histogram)."""
    null = [v for v in record.get("null_models") or [] if finite(v)]
    score = record.get("similarity")
    score = score if finite(score) else None
    fig, ax = figure(7, 2.6)
    if null:
        ax.hist(null, bins=min(20, max(5, len(null) // 2)), color="#9bb7d4", edgecolor="white", label="honest models")
        ax.plot(null, [0.1] * len(null), "|", color="#1f4e79", markersize=14)
    if score is not None:
        ax.axvline(score, color="#b22222", linewidth=2.5, label="the suspect")
    ax.set_xlabel("combined statistic" if len(record.get("channels") or []) > 1 else "similarity to the victim")
    ax.set_yticks([])
    ax.legend(loc="upper left", frameon=False)
    family = record.get("family_null") or {}
    ax.set_title(f"The suspect against honest models of its architecture ({family.get('arch')})" if family
                 else "The suspect against the honest models the kit knows")  # fmt: skip
    return png(fig)


def _suspect_architecture(family: dict[str, Any]) -> str:
    """What the evidence says of the suspect's architecture against its family null's."""
    if "architecture_checked" not in family:
        return "not recorded (a verdict of before it was)"
    named, arch = family.get("suspect_architecture"), family.get("arch")
    if family["architecture_checked"]:
        return f"{named}, as the suspect's spec names it: the null's ({arch}), checked by uapfp"
    if named:
        return (f"{named}, as the suspect's spec names it; uapfp could not compare it with the null's ({arch}): its "
                f"code may not be imported on this run, or does not build for the kit's input. That it is {arch} is the "
                "owner's word")
    return f"not named by the suspect (a file or a server): that it is {arch} is the owner's word"


def _null_folders(family: dict[str, Any]) -> list[str]:
    """The folders of a verdict's family null (one, or each of a joined null's); [] where the record says
    nothing readable (a record handed to uapfp report may be crafted)."""
    paths = family.get("paths")
    if isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths):
        return paths
    return [family["path"]] if isinstance(family.get("path"), str) else []


def epochs_said(epochs: Any) -> str:
    """A family null's recipe epochs in words: ``5`` as "5 epochs", ``[5, 2, 1]`` (one per round of four models)
    as "5, 2 and 1 epochs"; anything else (a record may be crafted) as "epochs not recorded"."""
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if whole(epochs):
        return f"{epochs} epoch{'' if epochs == 1 else 's'}"
    if isinstance(epochs, list) and epochs and all(whole(v) for v in epochs):
        said = [str(v) for v in epochs]
        return (", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else said[0]) + (
            " epochs" if epochs != [1] else " epoch")
    return "epochs not recorded"


def _null_recipes(family: dict[str, Any]) -> str:
    """The recipe of each folder of the family null, as the evidence page says it."""
    recipes = family.get("recipe")
    recipes = recipes if isinstance(recipes, list) else [recipes]
    said = [
        f"{epochs_said(r.get('epochs'))}{' (one per round of four models, in turn)' if isinstance(r.get('epochs'), list) else ''}, "
        f"batch {r.get('batch_size')}, augmentation {r.get('augment')}, seed {r.get('seed')}"
        for r in recipes if isinstance(r, dict)
    ]  # fmt: skip
    return "; ".join(said) or "not recorded"


def _figure_per_set(record: dict[str, Any]) -> str | None:
    sims = [v for v in record.get("per_fingerprint") or [] if finite(v)]
    if not sims:
        return None
    fig, ax = figure(7, 2.2)
    ax.bar(range(1, len(sims) + 1), sims, color="#555")
    ax.set_xlabel("query set")
    ax.set_ylabel("similarity")
    ax.set_title("Similarity on each query set")
    return png(fig)


def e(value: Any) -> str:
    """A record's value as HTML text (a record handed to uapfp report may be crafted)."""
    return html.escape(str(value))


def _num(value: Any, spec: str) -> str:
    try:
        return format(value, spec) if isinstance(value, (int, float)) else "n/a"
    except OverflowError:  # an int too large for a float (a record handed to uapfp report may be crafted)
        return "n/a"


def _p(value: Any) -> str:
    return _num(value, ".3g")


def _rows(pairs: list[tuple[str, Any]]) -> str:
    """Table rows; a value is escaped unless it is markup this module made (a ``Markup``)."""
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{v if isinstance(v, Markup) else e(v)}</td></tr>"
                   for k, v in pairs)  # fmt: skip


class Markup(str):
    """HTML made here from escaped parts."""


def sentence(record: dict[str, Any]) -> str:
    """The verdict in one sentence (and one more where the suspect's classes were read in the victim's order)."""
    order = class_order_of(record)
    if isinstance(order.get("order"), list) and record.get("verdict") != "inconclusive":
        return _sentence(record) + (" The suspect numbers the classes otherwise than the victim; its answers were read "
                                    "in the victim's order (the suspect's class order, below).")  # fmt: skip
    if order.get("contradicted") is True:
        return _sentence(record) + (" Its answers to the class-order check's images fit another class order than its "
                                    "answers to the other queries: it may answer those images otherwise on purpose "
                                    "(the suspect's class order, below).")  # fmt: skip
    return _sentence(record)


def _sentence(record: dict[str, Any]) -> str:
    v, p, alpha = record.get("verdict"), _p(record.get("p_value")), e(record.get("alpha"))
    suspect = e(record.get("suspect"))
    at = f"p = {p}"
    seq = record.get("sequential")
    if isinstance(seq, dict) and seq.get("settled_after") is not None:
        at += (f" after {e(seq.get('settled_after'))} query sets, against that look's level "
               f"{_num(seq.get('level'), '.3g')} of the sequential test")  # fmt: skip
    if v == "piracy":
        return (f"The suspect <b>{suspect}</b> is closer to the victim than honest models are: "
                f"<b>piracy</b> at significance {alpha} ({at}).")  # fmt: skip
    if v == "not shown" and _cannot_show(record):
        return (f"The suspect <b>{suspect}</b> is <b>not shown</b> to be a copy ({at}, significance {alpha}), and this "
                f"test would not show even an exact copy of the victim (it gets p = {_p(record.get('p_floor'))} here). "
                "So this verdict is no evidence that the suspect is not a copy."
                + (f" Note: {html.escape(str(record.get('message')))}." if record.get("message") else ""))  # fmt: skip
    if v == "not shown":
        return (f"The suspect <b>{suspect}</b> is <b>not shown</b> to be a copy: its similarity is usual for an honest "
                f"model ({at}, significance {alpha}). This does not prove it is not one."
                + (f" Note: {html.escape(str(record.get('message')))}." if record.get("message") else ""))  # fmt: skip
    return (f"The verification of <b>{suspect}</b> is <b>inconclusive</b>: {html.escape(str(record.get('message')))}. "
            "What was measured is below.")  # fmt: skip


def _cannot_show(record: dict[str, Any]) -> bool:
    """Whether the record's test could show no copy: its floor (what an exact copy of the victim gets) is not below
    the level it tested at (alpha, or the sequential test's last look's). False where the record does not say."""
    floor, level = record.get("p_floor"), record.get("alpha")
    seq = record.get("sequential")
    levels = seq.get("levels") if isinstance(seq, dict) else None
    if isinstance(levels, list) and levels:
        level = levels[-1]
    return finite(floor) and finite(level) and floor >= level


def finite(x: Any) -> bool:
    """Whether ``x`` is a finite number a figure can hold (a record handed to uapfp report may be crafted: an int
    too large for a float is not)."""
    try:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    except OverflowError:
        return False


def class_order_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a verdict record says of the class-order check (empty where it says nothing readable: a record handed to
    uapfp report may be crafted)."""
    order = record.get("class_order")
    return order if isinstance(order, dict) else {}


def _class_order(order: dict[str, Any]) -> str:
    """What the class-order check found, as the verdict noted it."""
    note = order.get("note")
    return note if isinstance(note, str) else "not checked (the kit holds no class-order images)"


def _sequential(seq: Any) -> str:
    if not isinstance(seq, dict) or not seq:
        return "no: the sets were tested at the significance level, with no early stop"
    looks = "/".join(str(k) for k in seq.get("looks") or [])
    if seq.get("settled_after") is None:
        return f"not settled (looks after {looks} sets)"
    return f"settled after {seq.get('settled_after')} sets at level {_num(seq.get('level'), '.3g')} (looks after {looks} sets)"


def verdict_report(record: dict[str, Any]) -> str:
    """The HTML report of a verdict record (what ``uapfp verify --json`` writes)."""
    kit = record.get("kit") or {}
    victim = kit.get("victim") or {}
    colour = {"piracy": "#b22222", "not shown": "#2e7d32"}.get(str(record.get("verdict")), "#b8860b")
    per_set = _figure_per_set(record)
    channels = record.get("channels") or []
    channel_rows = "".join(
        f"<tr><td>{e(c.get('method'))}</td><td>{_num(c.get('similarity'), '.4f')}</td><td>{_p(c.get('p_value'))}</td>"
        f"<td>{e(c.get('fingerprints'))}</td></tr>"
        for c in channels if isinstance(c, dict)
    )  # fmt: skip
    family = record.get("family_null") if isinstance(record.get("family_null"), dict) else {}
    recheck = (
        f"uapfp recheck --kit KIT --log {record.get('query_log')}"
        + "".join(f" --family-null {shlex.quote(p)}" for p in _null_folders(family))
        if record.get("query_log") else "(no query log was written)"
    )  # fmt: skip
    if family:
        caveat = f"""The p-value says how unusual the suspect's score is among {e(record.get("null_count"))} honest
models of the suspect's own architecture ({e(family.get("arch"))}) that the owner trained on their own data
(uapfp family-null). It is the right null only if the suspect is of that architecture, and was trained at least
about as thoroughly as the least trained of those models: on the families benchmark of uapfp (docs/results-fmnist.md)
honest models trained for fewer steps than any model of a null sat closer to the victim and were flagged by it, and a
null whose models span the zoo's epochs, half and a quarter of them (uapfp family-null's default since 2026-12-07)
flagged at most one of them at 0.01 (docs/method.md). Its recipe is below.""" + (
            f""" This null joins {len(_null_folders(family))} folders, and holds the recipe of each (below)."""
            if len(_null_folders(family)) > 1 else "")
    else:
        caveat = """The p-value says how unusual the suspect's score is among the honest models the kit was
calibrated with. It is exact for suspects like those models (the zoo's architectures and training
recipes); for a suspect unlike every model of the zoo it can be wrong in either direction; the
families benchmark of uapfp (docs/results-fmnist.md) says how often, for families the zoo never held.
If you know the suspect's architecture, a null of honest models of it (uapfp family-null) is the fairer test."""
    mono = lambda v: Markup(f'<span class="mono">{e(v)}</span>')  # noqa: E731
    code = lambda v: Markup(f"<code>{e(v)}</code>")  # noqa: E731
    body = f"""
<h1>Was this classifier copied from ours?</h1>
<p class="mono">{e(record.get("finished") or "")}</p>
<p class="verdict">{sentence(record)}</p>
<h2>What this verdict does not say</h2>
<p class="caveat">{caveat}
A verdict is evidence about the suspect's answers to {e(record.get("queries"))} queries, not about how
it was made; "not shown" is not proof of innocence.</p>
<h2>The suspect against honest models</h2>
<img alt="the suspect's score against the honest models'" src="{_figure_against_honest(record)}">
<table>{_rows([
    ("method", record.get("method")),
    ("score" if len(channels) > 1 else "similarity", _num(record.get("similarity"), ".4f")),
    ("p-value", _p(record.get("p_value"))),
    *([("an exact copy of the victim would get", _p(record.get("p_floor")))] if "p_floor" in record else []),
    ("significance level", record.get("alpha")),
    ("sequential test", _sequential(record.get("sequential"))),
    ("the suspect's class order", _class_order(class_order_of(record))),
    ("test", record.get("test")), ("calibration", record.get("calibration")),
    ("honest models", record.get("null_count")),
    *([("family null", f"{family.get('models')} honest models of {family.get('arch')}, "
                       f"{' + '.join(_null_folders(family)) or 'folder not recorded'}"),
       ("its training recipe" + ("s" if len(_null_folders(family)) > 1 else ""), _null_recipes(family)),
       ("family null SHA-256", mono(family.get("sha256"))),
       ("the suspect's architecture", _suspect_architecture(family))] if family else []),
])}</table>
{"<h2>Channels</h2><table><tr><th>method</th><th>similarity</th><th>p-value</th><th>sets</th></tr>" + channel_rows + "</table>" if len(channels) > 1 else ""}
{f'<h2>Per query set</h2><img alt="similarity per query set" src="{per_set}">' if per_set else ""}
<h2>The kit</h2>
<table>{_rows([
    ("kit SHA-256", mono(record.get("kit_sha256"))),
    ("signed by", record.get("kit_signed_by") or "not checked against a key"),
    ("victim", f"{victim.get('id')} ({victim.get('arch')}), test accuracy {victim.get('test_accuracy')}"),
    ("dataset", kit.get("dataset")),
    ("zoo", kit.get("zoo_summary")),
    ("made", kit.get("created")),
])}</table>
<h2>Queries and how to check them again</h2>
<table>{_rows([
    ("suspect", record.get("suspect")), ("answers", record.get("output_mode")),
    ("queries sent", record.get("queries")),
    ("query sets", f"{record.get('fingerprints')} of {record.get('fingerprints_requested')}"),
    ("query log", record.get("query_log")),
    ("query log SHA-256", mono(record.get("query_log_sha256"))),
    ("recheck", code(recheck)),
    ("command", code(record.get("command"))),
])}</table>
<h2>Versions and machine</h2>
<table>{_rows([(str(k), v) for k, v in (record.get("environment") or {}).items()] + [("seconds", record.get("seconds"))])}</table>
"""
    return PAGE.format(title=e(f"uapfp verdict: {record.get('suspect')}"), colour=colour, body=body)
