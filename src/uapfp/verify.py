"""Verifying a suspect: its fingerprints, their similarities to the victim's, the test, the verdict.

The similarity of a suspect to the victim on probe set j is the cosine of the encoder's
embeddings of their fingerprints on that set (paper section 4.3); the suspect's similarity
is the mean over the sets. A statistical test (:mod:`uapfp.significance`; by default the
prediction t-test against honest models) compares it with the kit's calibration models,
scored as the calibration says (:mod:`uapfp.calibration`); the verdict is ``piracy`` when
p < alpha, else ``not shown``. By default querying stops once the sequential test
(:mod:`uapfp.sequential`) settles the verdict. A run cut short by a query budget reports what
it measured and the verdict ``inconclusive``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .calibration import Calibration, get_calibration
from .classorder import CLASSES_KEY, confirms, find_order
from .encoder import FingerprintEncoder, embed
from .errors import BudgetExhaustedError, ConfigError, SuspectError, SuspectUnavailableError
from .kit import Kit
from .methods import Method, get_method, standardise
from .sequential import looks
from .significance import StatTest, get_test
from .suspects.base import OutputMode, Suspect

if TYPE_CHECKING:
    from .family_null import FamilyNull

PIRACY = "piracy"
NOT_SHOWN = "not shown"
INCONCLUSIVE = "inconclusive"
CLASS_ORDER_NOT_CHECKED = (
    "order not checked: the kit holds no class-order images (made before 2026-12-07; uapfp protect makes them)"
)
CLASS_ORDER_UNANSWERED = (
    "order not checked: the suspect was not asked the class-order images, or did not answer them (a query budget "
    "too small for them and every set, or spent first); its answers read as given"
)
CLASS_ORDER_STORED = "order not checked: answers scored as stored (evaluate, bench), in the victim's order"


def cosine_similarities(encoder: FingerprintEncoder, f_victim: torch.Tensor, f_suspect: torch.Tensor) -> torch.Tensor:
    """Per-set cosine similarity (S,) of the embeddings of two fingerprint stacks (S, D)."""
    if f_victim.shape != f_suspect.shape:
        raise ValueError(f"fingerprint shapes differ: {tuple(f_victim.shape)} vs {tuple(f_suspect.shape)}")
    return (embed(encoder, f_victim) * embed(encoder, f_suspect)).sum(dim=-1)


@dataclass
class Verdict:
    """The outcome of one verification, as printed and as written to JSON."""

    suspect: str
    verdict: str
    similarity: float
    similarity_std: float
    p_value: float
    alpha: float
    fingerprints: int
    fingerprints_requested: int
    queries: int
    output_mode: str
    null_mean: float
    null_count: int
    seconds: float
    kit_sha256: str
    per_fingerprint: list[float] = field(default_factory=list)
    message: str = ""
    test: str = "models"
    calibration: str = "kit"
    kit_signed_by: str | None = None
    method: str = "uap"
    channels: list[dict[str, Any]] = field(default_factory=list)
    """Per channel of a combined method: its name, mean similarity, p-value and fingerprints."""
    null_models: list[float] = field(default_factory=list)
    """Each calibration (honest) model's score, the suspect's counterpart in the test."""
    sequential: dict[str, Any] = field(default_factory=dict)
    """The sequential test's looks, levels, and the look that settled the verdict (empty: all sets, level alpha)."""
    family_null: dict[str, Any] = field(default_factory=dict)
    """The null of the suspect's own family it was tested against (empty: the kit's calibration models)."""
    p_floor: float = float("nan")
    """The p-value an exact copy of the victim gets from this test (:func:`exact_copy_p`): where it is not below
    the level, even an exact copy would not be shown."""
    class_order: dict[str, Any] = field(default_factory=dict)
    """What the class-order check found (:mod:`uapfp.classorder`), with ``note``, a line for a person (empty: not
    checked, the kit holds no class-order images)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    def render(self) -> str:
        """A short human report."""
        combined = len(self.channels) > 1
        what = "statistic " if combined else "similarity "
        lines = [
            f"suspect      {self.suspect}",
            f"verdict      {self.verdict.upper()}" + (f"  ({self.message})" if self.message else ""),
            f"method       {self.method}",
            f"{what:<13}{self.similarity:.4f} +- {self.similarity_std:.4f} "
            f"(honest null: {self.null_mean:.4f}, n={self.null_count}, {self._null_source()})",
            f"p-value      {self.p_value:.3g}  ({get_test(self.test).description}, alpha {self.alpha}"
            + (f"; an exact copy of the victim: p {self.p_floor:.3g})" if math.isfinite(self.p_floor) else ")"),
            f"fingerprints {self.fingerprints} of {self.fingerprints_requested}, {self.queries} queries, "
            f"outputs {self.output_mode}, {self.seconds:.2f} s",
            *([self._sequential_line()] if self.sequential else []),
            "classes      " + (self.class_order.get("note", "") if self.class_order else CLASS_ORDER_NOT_CHECKED),
            f"kit          sha256 {self.kit_sha256}"
            + (f", signed by key {self.kit_signed_by} (checked)" if self.kit_signed_by else " (signature not checked)"),
        ]
        if combined:
            lines += [
                f"  {c['method']:<11}similarity {c['similarity']:.4f}, p {c['p_value']:.3g} ({c['fingerprints']} sets)"
                for c in self.channels
            ]
        return "\n".join(lines)

    def _null_source(self) -> str:
        if self.family_null:
            checked = {True: " (checked)", False: " (not checked)"}.get(self.family_null.get("architecture_checked"), "")
            return (f"honest models of the suspect's architecture {self.family_null['arch']}{checked}, "
                    f"family null sha256 {self.family_null['sha256'][:16]}")  # fmt: skip
        return f"calibration {self.calibration}"

    def _sequential_line(self) -> str:
        seq = self.sequential
        looks = "/".join(str(k) for k in seq["looks"])
        if seq.get("settled_after") is None:
            return f"sequential   not settled (looks after {looks} sets)"
        return (
            f"sequential   settled after {seq['settled_after']} of {self.fingerprints_requested} sets, "
            f"p against that look's level {seq['level']:.3g} (looks after {looks} sets; overall alpha {self.alpha})"
        )


def check_alpha(alpha: float) -> float:
    """``alpha`` if it is a significance level in (0, 1), else a ConfigError."""
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ConfigError(f"--alpha must be a significance level between 0 and 1 (exclusive), got {alpha}")
    return float(alpha)


def fingerprint_count(kit: Kit, fingerprints: int | None, method: Method | None = None) -> int:
    """The number of query sets each channel uses (the kit's default when None), checked against the kit."""
    n = kit.config.fingerprints if fingerprints is None else fingerprints
    available = min(len(ch.sets(kit)) for ch in (method.channels if method else (get_method("uap"),)))
    if not 2 <= n <= available:
        raise ConfigError(f"--fingerprints must be between 2 and {available} for this kit and method, got {n}")
    return n


@dataclass(frozen=True)
class Scoring:
    """How answers are scored: the method, the test, the calibration of its null, and alpha; with
    ``family``, the null is that family null's models (:mod:`uapfp.family_null`), not the kit's."""

    method: Method
    test: StatTest
    calibration: Calibration
    alpha: float
    family: FamilyNull | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls, kit: Kit, *, method: Method | str | None = None, test: StatTest | str | None = None,
        calibration: Calibration | str | None = None, alpha: float | None = None,
        family_null: FamilyNull | None = None,
    ) -> Scoring:  # fmt: skip
        """The kit's own method, test, calibration and alpha, where none is given (with a family null, the
        method is :func:`family_null_method`'s)."""
        stat_test = get_test(test if test is not None else kit.config.null)
        if method is None:
            method = kit.config.method if family_null is None else family_null_method(kit, stat_test.name)
        scoring = cls(
            get_method(method),
            stat_test,
            get_calibration(calibration if calibration is not None else kit.config.calibration),
            check_alpha(alpha if alpha is not None else kit.config.alpha),
            family_null,
        )
        if family_null is not None and family_null.kit_sha256 != kit.sha256:
            raise ConfigError(f"the family null {family_null.where} was built for another kit; rebuild its answers "
                              "with uapfp family-null --kit for this kit")  # fmt: skip
        if len(scoring.method.channels) > 1 and scoring.test.name != "models":
            raise ConfigError(f"a combined method is tested by the model-level test, not {scoring.test.name!r}")
        return scoring


def family_null_method(kit: Kit, test: str = "models") -> str:
    """The method a suspect is tested by against a family null when none is named: ``errors+siblings``, the
    victim's held-out errors read two ways (the suspect's share of its mistakes that are the victim's, after
    AKH, and its deviation from the victim's siblings), one set of queries; ``siblings`` alone where the test
    is not the model-level one, which a combined method needs. Both need the victim's siblings in the kit
    (else a ConfigError asks for ``--method``).

    Decided on the families benchmark's development half (docs/method.md), by the rule written when the
    method was first chosen: the most copies detected at alpha 0.01 over both victims and both answer modes,
    honest models flagged near the level. Against the default null that spans recipes, ``errors+siblings``
    detected 49 of 132 copy tests (``siblings`` 39, ``siblings+sac`` 42), flagging 1 of 312 honest tests (of
    the benchmark's honest models, the nulls' own, and ones trained for twice and half the epochs; ``siblings``
    2). Until 2026-12-07 it was ``siblings``, chosen the same way against nulls of one recipe."""
    ref = kit.references.get("errors")
    if ref is None or ref.siblings.shape[0] < 2:
        raise ConfigError(
            "a family null tests by the siblings method (with errors, where the kit's test allows), and this kit "
            "holds no siblings of the victim (its zoo has none); name another method with --method (uap was "
            "measured less honest against such a null: docs/method.md), or rebuild the zoo with siblings"
        )
    return "errors+siblings" if test == "models" else "siblings"


def query_plan(method: Method) -> dict[str, Method]:
    """Query-set name -> a channel that sends it, once each, in the channels' order."""
    plan: dict[str, Method] = {}
    for ch in method.channels:
        plan.setdefault(ch.query_key, ch)
    return plan


def verify(
    kit: Kit,
    suspect: Suspect,
    *,
    method: Method | str | None = None,
    fingerprints: int | None = None,
    alpha: float | None = None,
    test: StatTest | str | None = None,
    calibration: Calibration | str | None = None,
    query_log: str | os.PathLike[str] | None = None,
    sequential: bool | None = None,
    family_null: FamilyNull | None = None,
) -> Verdict:
    """Query ``suspect`` with the method's sets and test it against the kit's honest null.

    The victim's stored answers and the null are truncated to the suspect's output mode, so a
    label-only suspect is compared label to label. ``method``, ``test`` and ``calibration``
    (objects or names) replace the kit's own. With ``sequential`` (None: the kit's setting, True
    by default) querying stops once the verdict is settled (:mod:`uapfp.sequential`); with False,
    every requested set is sent and tested at alpha. Where the kit holds the class-order check's images
    (:mod:`uapfp.classorder`), they are sent first (unless ``max_queries`` cannot cover them and every set), and
    a suspect found to number the classes otherwise, where its other answers bear that out, has every answer read
    in the victim's order (``Verdict.class_order`` says what was found). When the suspect's
    query budget runs out or a remote suspect stops answering, the sets measured so far are reported and the
    verdict is ``inconclusive``. With
    ``family_null`` (:class:`~uapfp.family_null.FamilyNull`), the suspect is tested against those honest models
    of its own architecture instead of the kit's calibration models.
    """
    from .querylog import QueryLog

    start = time.perf_counter()
    scoring = Scoring.of(kit, method=method, test=test, calibration=calibration, alpha=alpha, family_null=family_null)
    n_req = fingerprint_count(kit, fingerprints, scoring.method)
    sequential = kit.config.sequential if sequential is None else sequential
    if tuple(suspect.input_shape) != kit.input_shape:
        raise SuspectError(
            f"{suspect.name} takes inputs {suspect.input_shape}, the kit's victim takes {kit.input_shape}"
        )
    if suspect.num_classes != kit.num_classes:
        raise SuspectError(f"suspect returns {suspect.num_classes} classes, the kit expects {kit.num_classes}")
    checked = family_architecture(family_null, suspect, kit)
    mode = suspect.output
    q0 = suspect.queries
    plan = query_plan(scoring.method)
    sets_of = {key: channel.sets(kit) for key, channel in plan.items()}  # once: uap's adds the UAP to every probe
    check = kit.references.get(CLASSES_KEY)
    said: torch.Tensor | None = None if check is None else torch.zeros(0, kit.num_classes)  # empty: not answered
    if check is not None and suspect.max_queries is not None:  # a budget sized for the sets keeps them all
        needed = check.queries.shape[1] + sum(n_req * sets.shape[1] for sets in sets_of.values())
        if suspect.max_queries - suspect.queries < needed:
            check = None
    logger = (
        QueryLog(query_log, kit=kit, suspect=suspect, fingerprints=n_req, alpha=scoring.alpha,
                 method=scoring.method.name, sequential=sequential, family_null=scoring.family,
                 suspect_architecture=checked, class_order_check=check is not None)
        if query_log else None
    )  # fmt: skip
    answers: dict[str, list[torch.Tensor]] = {key: [] for key in plan}
    message = ""
    settled: Verdict | None = None  # the sequential test's verdict at the look that settled it
    try:
        if check is not None:  # first the class-order check's images (uapfp.classorder), as given
            said = suspect(check.queries[0])
            if logger:
                logger.write(CLASSES_KEY, 0, check.queries[0], said)
        for k in looks(n_req) if sequential else [n_req]:
            for key, sets in sets_of.items():  # every channel up to the look, then the test
                for s in range(len(answers[key]), k):
                    out = suspect(sets[s])
                    if logger:
                        logger.write(key, s, sets[s], out)
                    answers[key].append(out)
            if sequential:
                v = score_answers(
                    kit, _stacked(answers), mode=mode, scoring=scoring, n_req=n_req, name=suspect.name, queries=0,
                    start=start, sequential=True, classes=said,
                )  # fmt: skip
                if v.verdict != INCONCLUSIVE:
                    settled = v
                    break
    except BudgetExhaustedError as exc:
        message = f"query budget exhausted after {_measured(answers)} of {n_req} sets per query kind ({exc})"
    except SuspectUnavailableError as exc:
        message = f"the suspect stopped answering after {_measured(answers)} of {n_req} sets per query kind ({exc})"
    finally:
        if logger:
            logger.close()
    if settled is not None:  # the answers are those it was scored on: only the counts are new
        verdict = replace(settled, queries=suspect.queries - q0, seconds=time.perf_counter() - start)
    else:
        verdict = score_answers(
            kit, _stacked(answers), mode=mode, scoring=scoring, n_req=n_req, name=suspect.name,
            queries=suspect.queries - q0, start=start, message=message, sequential=sequential, classes=said,
        )  # fmt: skip
    return with_suspect_architecture(with_floor(verdict, kit, scoring, mode), checked)


def victim_answers(kit: Kit) -> dict[str, torch.Tensor]:
    """The victim's answers (S, n, K) to every query set of the kit, by name (``uap``: its fingerprints)."""
    victim = {key: ref.victim for key, ref in kit.references.items()}
    victim["uap"] = kit.victim_fingerprints.reshape(kit.victim_fingerprints.shape[0], -1, kit.num_classes)
    return victim


def read_in_order(
    kit: Kit, answers: dict[str, torch.Tensor], classes: torch.Tensor | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The answers (query-set name -> (S', n, K)) in the victim's class order, and what the class-order check
    found, as a verdict records it (:mod:`uapfp.classorder`): ``classes`` is the suspect's answers to the kit's
    class-order images (None: not checked; empty: not answered). An order they suggest is taken only where the
    answers to the other sets agree with the victim's labels more in it (:func:`~uapfp.classorder.confirms`)."""
    check = kit.references.get(CLASSES_KEY)
    if check is None:
        return answers, {}
    if classes is None:
        return answers, {"note": CLASS_ORDER_STORED}
    if len(classes) == 0:
        return answers, {"note": CLASS_ORDER_UNANSWERED}
    order = find_order(classes, check.labels[0])
    if order.order is not None:
        victim = victim_answers(kit)
        keys = [key for key, a in answers.items() if len(a)]
        if not keys:
            order = order.refuted(evidence=False)
        elif not confirms(order, [answers[k] for k in keys], [victim[k][: len(answers[k])] for k in keys]):
            order = order.refuted()
    return {key: order.apply(a) if len(a) else a for key, a in answers.items()}, order.to_dict(kit.info.get("classes"))


def exact_copy_p(kit: Kit, scoring: Scoring, mode: OutputMode | str, n_sets: int) -> float:
    """The p-value of a suspect that answers exactly as the victim (the kit holds the victim's answers to every
    query set), scored as ``scoring`` scores a suspect in ``mode`` on ``n_sets`` sets, at once: what the most
    faithful copy gets. For ``uap``, ``uap-raw``, ``sac`` and ``ipguard``, and ``errors`` with labels, the victim's
    own similarity is the largest there is, so no suspect gets a smaller p-value; for ``siblings`` (a cosine of
    deviations), and ``errors`` with probabilities, a suspect can score above the victim itself."""
    victim = victim_answers(kit)
    answers = {ch.query_key: victim[ch.query_key][:n_sets] for ch in scoring.method.channels}
    return float(score_answers(kit, answers, mode=OutputMode.parse(mode), scoring=scoring, n_req=n_sets,
                               name="the victim", queries=0, start=time.perf_counter()).p_value)  # fmt: skip


def with_floor(verdict: Verdict, kit: Kit, scoring: Scoring, mode: OutputMode | str) -> Verdict:
    """``verdict`` with its test's floor (:func:`exact_copy_p` on the sets it asked for), and where that is not
    below the level a verdict on all of them is tested at (alpha, or the last look's of the sequential test the
    verdict ran, as its ``sequential`` record says), a ``not shown`` says that even an exact copy would not be
    shown by this test."""
    n = verdict.fingerprints_requested
    if n < 2:
        return verdict
    floor = exact_copy_p(kit, scoring, mode, n)
    verdict = replace(verdict, p_floor=floor)
    levels = verdict.sequential.get("levels")
    level = float(levels[-1]) if levels else scoring.alpha  # the rule of the log's own run, for a recheck
    if verdict.verdict != NOT_SHOWN or not floor >= level:  # a NaN floor (an undefined test) is said by its NaN
        return verdict
    more = ("a family null with more models (uapfp family-null --count)" if verdict.family_null
            else "another method (--method), or a kit of a zoo with more homologous models")  # fmt: skip
    said = (f"{NO_COPY_SHOWN}: it gets p {floor:.3g} here, not below the level {level:.3g}; {more} may "
            "give a test that can")  # fmt: skip
    return replace(verdict, message=said + (f"; {verdict.message}" if verdict.message else ""))


#: How a ``not shown`` verdict's note begins when its test could not show even the victim itself.
NO_COPY_SHOWN = "even an exact copy of the victim would not be shown by this test"


def family_architecture(family_null: FamilyNull | None, suspect: Suspect, kit: Kit) -> dict[str, Any]:
    """What a verdict against ``family_null`` records of the suspect's architecture: the name its spec gives
    (``suspect_architecture``, None for a file or a server) and whether uapfp found it to be the null's
    (``architecture_checked``). A ConfigError, before any query, where it found another: a null of another
    family flags honest models (docs/method.md). Empty without a family null."""
    if family_null is None:
        return {}
    from .family_null import same_architecture

    named = suspect.architecture
    same = None if named is None else same_architecture(
        named, family_null.arch, input_shape=kit.input_shape, num_classes=kit.num_classes
    )  # fmt: skip
    if same is False:
        raise ConfigError(
            f"{suspect.name} is of architecture {named}, and the family null {family_null.where} holds honest models of "
            f"{family_null.arch}: a null of another architecture flags honest models. Build one of the suspect's with "
            f"uapfp family-null --arch {named}"
        )
    return {"suspect_architecture": named, "architecture_checked": bool(same)}


def with_suspect_architecture(verdict: Verdict, architecture: dict[str, Any]) -> Verdict:
    """``verdict`` with what is known of the suspect's architecture (:func:`family_architecture`) in its family
    null's record."""
    if not verdict.family_null or not architecture:
        return verdict
    return replace(verdict, family_null={**verdict.family_null, **architecture})


def _stacked(answers: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack(a) if a else torch.zeros(0) for key, a in answers.items()}


def _measured(answers: dict[str, list[torch.Tensor]]) -> str:
    return ", ".join(f"{len(a)} {key}" for key, a in answers.items())


def score_answers(
    kit: Kit,
    answers: dict[str, torch.Tensor],
    *,
    mode: OutputMode,
    scoring: Scoring,
    n_req: int,
    name: str,
    queries: int,
    start: float,
    message: str = "",
    sequential: bool = False,
    early_share: float | None = None,
    classes: torch.Tensor | None = None,
) -> Verdict:
    """The verdict on answers (query-set name -> (S', n, K)) to the first S' sets of each kind, as the suspect
    gave them; ``classes``, its answers to the kit's class-order images, reads them in the victim's order
    where they show another (:func:`read_in_order`; None: not checked).

    Tested at alpha, or (``sequential``) at the first look of :mod:`uapfp.sequential` that the
    answers settle, its early looks at ``early_share`` of alpha each (None: today's rule); a
    sequential verdict they do not settle is ``inconclusive`` (with ``message``, or a note that
    the next look's sets are missing).
    """
    if sequential:

        def at(k: int | None, note: str = "") -> Verdict:
            got = answers if k is None else {key: a[:k] for key, a in answers.items()}
            return score_answers(
                kit, got, mode=mode, scoring=scoring, n_req=n_req, name=name, queries=queries, start=start,
                message=note, classes=classes,
            )  # fmt: skip

        return _sequential_verdict(
            at, answers, scoring=scoring, n_req=n_req, message=message, early_share=early_share
        )
    method = scoring.method
    answers, class_order = read_in_order(kit, answers, classes)
    common = {
        "suspect": name, "alpha": scoring.alpha, "fingerprints_requested": n_req, "queries": queries,
        "output_mode": str(mode), "kit_sha256": kit.sha256, "kit_signed_by": kit.signed_by,
        "test": scoring.test.name, "calibration": "family-null" if scoring.family else scoring.calibration.name,
        "method": method.name, "family_null": scoring.family.describe() if scoring.family else {},
        "class_order": class_order,
    }  # fmt: skip
    counts = [len(answers.get(ch.query_key, ())) for ch in method.channels]
    if min(counts) < 2:
        nan = float("nan")
        return Verdict(
            verdict=INCONCLUSIVE, similarity=nan, similarity_std=nan, p_value=nan, null_mean=nan, null_count=0,
            fingerprints=min(counts), seconds=time.perf_counter() - start, message=message or "too few fingerprints",
            **common,
        )  # fmt: skip
    channels = []
    for ch in method.channels:
        a = answers[ch.query_key]
        sims = ch.similarities(kit, a, mode)
        null = (
            scoring.family.similarities(kit, ch, mode, len(a)) if scoring.family
            else ch.null(kit, mode, len(a), scoring.calibration)
        )  # fmt: skip
        channels.append((ch, sims, null))
    if len(channels) == 1:
        _, sims, null = channels[0]
        p = scoring.test.p_value(sims, np.asarray(null, dtype=np.float64))
        stat, stat_std, null_mean, per_set = float(sims.mean()), float(sims.std()), float(null.mean()), sims
        null_count, null_models = int(null.shape[0]), null.mean(dim=1)
    else:
        z, z_null = standardise(
            torch.stack([s.mean() for _, s, _ in channels]), torch.stack([n.mean(dim=1) for _, _, n in channels])
        )
        p = scoring.test.p_value(z.reshape(1), z_null.reshape(-1, 1).numpy())
        stat, stat_std, null_mean, per_set = float(z), 0.0, float(z_null.mean()), torch.zeros(0)
        null_count, null_models = len(z_null), z_null
    parts = [
        {"method": ch.name, "similarity": round(float(sims.mean()), 6),
         "p_value": float(scoring.test.p_value(sims, np.asarray(null, dtype=np.float64))), "fingerprints": len(sims)}
        for ch, sims, null in channels
    ]  # fmt: skip
    verdict = INCONCLUSIVE if message else (PIRACY if p < scoring.alpha else NOT_SHOWN)
    return _noted(Verdict(
        verdict=verdict, similarity=stat, similarity_std=stat_std, p_value=p, null_mean=null_mean,
        null_count=null_count, fingerprints=min(counts), seconds=time.perf_counter() - start,
        per_fingerprint=[round(float(v), 6) for v in per_set], message=message, channels=parts,
        null_models=[round(float(v), 6) for v in null_models], **common,
    ))  # fmt: skip


def _sequential_verdict(
    at: Callable[..., Verdict],
    answers: dict[str, torch.Tensor],
    *,
    scoring: Scoring,
    n_req: int,
    message: str,
    early_share: float | None,
) -> Verdict:
    """The first look of :mod:`uapfp.sequential` that ``at(k)`` (the verdict at alpha on the first
    k sets) settles, else ``inconclusive``."""
    from . import sequential as seq

    points = seq.looks(n_req)
    lv = seq.levels(scoring.alpha, len(points), early_share=early_share)
    # ten significant digits (not decimals): a level below 1e-10 must not be stored as 0 (with_floor compares with it)
    info: dict[str, Any] = {"looks": points, "levels": [float(f"{x:.10g}") for x in lv], "settled_after": None}
    have = min((len(answers.get(ch.query_key, ())) for ch in scoring.method.channels), default=0)
    for j, k in enumerate(points):
        if k > have:
            break
        v = at(k)
        verdict = seq.decision(v.p_value, lv[j], last=j == len(points) - 1)
        if verdict is not None:
            return _noted(replace(v, verdict=verdict, sequential={**info, "settled_after": k, "level": lv[j]}))
    missing = f"the sets of the sequential test's next look are missing ({have} of {n_req} sets)"
    return replace(at(None, message or missing), sequential=info)


def _noted(v: Verdict) -> Verdict:
    """``v``, with a note when it is ``not shown`` although its p-value is below alpha (the sequential
    test's last level is lower) or the suspect outscores every honest model (too few of them)."""
    if v.verdict != NOT_SHOWN or v.message:
        return v
    if v.sequential and v.p_value < v.alpha:
        return replace(v, message=(
            f"p {v.p_value:.3g} is below alpha {v.alpha} but not below the sequential test's last level "
            f"{v.sequential.get('level', float('nan')):.3g}: the test spent the rest of alpha on its early looks "
            "(choose --all-sets before verifying, not after seeing a verdict)"
        ))  # fmt: skip
    if v.null_models and v.similarity > max(v.null_models):
        more = ("a family null with more models (uapfp family-null --count)" if v.family_null
                else "a zoo with more homologous models")  # fmt: skip
        return replace(v, message=(
            f"the suspect scores above all {len(v.null_models)} honest models of the "
            f"{'family null' if v.family_null else 'kit'}, but they are too few, or too spread, for a p-value below "
            f"the level; {more} gives the test more to compare with"
        ))  # fmt: skip
    return v


