"""Similarities, the statistical test, verdicts and AUC (METHOD.md section 5).

The similarity of a suspect to the victim on probe set j is the cosine of the encoder's
embeddings of their fingerprints on that set; the suspect's similarity is the mean over the
sets. A one-sided Welch t-test asks whether the suspect's per-fingerprint similarities exceed
those of homologous models that the encoder never saw (the kit's calibration models);
the verdict is ``piracy`` when p < alpha, else ``not shown``. A run cut short by a query
budget reports what it measured and the verdict ``inconclusive``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from .encoder import FingerprintEncoder, embed
from .errors import BudgetExhaustedError, ConfigError, SuspectError
from .fingerprint import apply_output_mode, probe_batch
from .kit import Kit
from .suspects import OutputMode, Suspect, TorchSuspect

PIRACY = "piracy"
NOT_SHOWN = "not shown"
INCONCLUSIVE = "inconclusive"


def cosine_similarities(encoder: FingerprintEncoder, f_victim: torch.Tensor, f_suspect: torch.Tensor) -> torch.Tensor:
    """Per-set cosine similarity (S,) of the embeddings of two fingerprint stacks (S, D)."""
    if f_victim.shape != f_suspect.shape:
        raise ValueError(f"fingerprint shapes differ: {tuple(f_victim.shape)} vs {tuple(f_suspect.shape)}")
    return (embed(encoder, f_victim) * embed(encoder, f_suspect)).sum(dim=-1)


def welch_greater(sample: np.ndarray | torch.Tensor, null: np.ndarray | torch.Tensor) -> float:
    """One-sided Welch t-test p-value of H0: mean(sample) <= mean(null).

    Degenerate cases (both samples constant) give 0 or 1 by comparing the means.
    """
    a = np.asarray(sample, dtype=np.float64).ravel()
    b = np.asarray(null, dtype=np.float64).ravel()
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the t-test needs at least 2 similarities on each side")
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return 0.0 if a.mean() > b.mean() else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def auc(positive: np.ndarray | list[float], negative: np.ndarray | list[float]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2."""
    p = np.asarray(positive, dtype=np.float64)
    n = np.asarray(negative, dtype=np.float64)
    if len(p) == 0 or len(n) == 0:
        return float("nan")
    greater = (p[:, None] > n[None, :]).sum()
    ties = (p[:, None] == n[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(p) * len(n)))


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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    def render(self) -> str:
        """A short human report."""
        lines = [
            f"suspect      {self.suspect}",
            f"verdict      {self.verdict.upper()}" + (f"  ({self.message})" if self.message else ""),
            f"similarity   {self.similarity:.4f} +- {self.similarity_std:.4f} "
            f"(honest null: {self.null_mean:.4f}, n={self.null_count}, calibration {self.calibration})",
            f"p-value      {self.p_value:.3g}  ({describe_test(self.test)}, alpha {self.alpha})",
            f"fingerprints {self.fingerprints} of {self.fingerprints_requested}, {self.queries} queries, "
            f"outputs {self.output_mode}, {self.seconds:.2f} s",
        ]
        return "\n".join(lines)


def prediction_greater(sample: np.ndarray | torch.Tensor, model_means: np.ndarray | torch.Tensor) -> float:
    """One-sided p-value that a suspect's mean similarity comes from the honest-model population.

    H0: the suspect is one more honest model, its mean similarity ``m`` a draw from the same
    distribution as the calibration models' mean similarities ``m_1..m_C``. Under normality
    ``(m - mean(m_c)) / (sd(m_c) * sqrt(1 + 1/C))`` follows Student's t with C - 1 degrees of
    freedom (the prediction-interval test). Unlike a two-sample test on fingerprints, it does
    not flag an honest model for being slightly above the average honest model.
    """
    m = float(np.asarray(sample, dtype=np.float64).mean())
    b = np.asarray(model_means, dtype=np.float64).ravel()
    if len(b) < 3:
        raise ValueError("the model-level test needs at least 3 calibration models")
    sd = b.std(ddof=1)
    if sd == 0:
        return 0.0 if m > b.mean() else 1.0
    t = (m - b.mean()) / (sd * math.sqrt(1 + 1 / len(b)))
    return float(stats.t.sf(t, len(b) - 1))


def decide(
    sims: torch.Tensor | np.ndarray, null: torch.Tensor | np.ndarray, *, alpha: float, rule: str = "models"
) -> tuple[float, str]:
    """p-value and verdict for per-fingerprint similarities (S,) against null similarities (H, S).

    ``rule`` ``models`` tests the suspect against the calibration models' mean similarities
    (:func:`prediction_greater`); any other rule pools the null's per-fingerprint similarities
    into the paper's one-sided Welch t-test (:func:`welch_greater`).
    """
    null = np.asarray(null, dtype=np.float64)
    if rule == "models":
        p = prediction_greater(sims, null.mean(axis=1))
    else:
        p = welch_greater(sims, null)
    return p, (PIRACY if p < alpha else NOT_SHOWN)


def describe_test(rule: str) -> str:
    """How the report names the statistical test of a null rule."""
    if rule == "models":
        return "one-sided prediction t-test against honest models"
    return f"one-sided Welch t-test, null {rule}"


# --------------------------------------------------------------------------- suspects by spec


def open_suspect(
    spec: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | None = None,
    output: str | None = None,
    max_queries: int | None = None,
    **backend_options: Any,
) -> Suspect:
    """Open a suspect from a spec.

    - a zoo model card (``models/piracy-B-adam-00.json``);
    - ``package.module:factory`` with ``weights`` (safetensors, or a torch file read with
      ``weights_only=True``);
    - ``torchscript:PATH`` or a TorchScript file ``*.pt``;
    - ``onnx:PATH`` or ``*.onnx``;
    - ``http(s)://host:port/v2/models/NAME``: an Open Inference Protocol server.

    ``output`` is the answer mode (``probs``, ``topk:K``, ``label``); for ONNX it may also be
    ``logits`` (see :class:`~uapfp.suspects.OnnxSuspect`); None means the backend's default
    (probabilities; for HTTP the mode the server advertises). ``backend_options`` go to the
    HTTP or ONNX backend (``timeout``, ``retries``, ``concurrency``, ``batch_size``...).
    No spec is ever unpickled: weights are safetensors or ``torch.load(weights_only=True)``.
    """
    from .archs import create_model
    from .storage import load_state_dict
    from .zoo import card_suspect, read_card

    common: dict[str, Any] = {"input_shape": input_shape, "num_classes": num_classes, "max_queries": max_queries}
    if spec.startswith(("http://", "https://")):
        from .suspects import HttpSuspect

        if output == "logits":
            raise ConfigError("--outputs logits applies to ONNX models only; a server answers probs, topk:K or label")
        return HttpSuspect(spec, output=output, **common, **backend_options)
    if spec.startswith("onnx:") or spec.endswith(".onnx"):
        from .suspects import OnnxSuspect

        path = spec.removeprefix("onnx:")
        return OnnxSuspect(path, output=output, **common, **backend_options)
    if backend_options:
        raise ConfigError(f"options {', '.join(sorted(backend_options))} apply to HTTP or ONNX suspects only")
    if output == "logits":
        raise ConfigError(
            "--outputs logits applies to ONNX models only; local PyTorch models are read as logits already"
        )
    mode = output or "probs"
    if spec.startswith("torchscript:") or (spec.endswith((".pt", ".pth", ".ts")) and ":" not in spec):
        path = Path(spec.removeprefix("torchscript:"))
        if not path.is_file():
            raise ConfigError(f"TorchScript file {path} does not exist")
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ConfigError(
                f"{path} is not a TorchScript file ({str(exc).splitlines()[0]}); export it with torch.jit.script or torch.jit.trace"
            ) from None
        return TorchSuspect(model, output=mode, name=str(path), **common)
    if spec.endswith(".json"):
        if not Path(spec).is_file():
            raise ConfigError(f"model card {spec} does not exist")
        return card_suspect(read_card(spec), output=mode, max_queries=max_queries)
    if ":" in spec:
        if weights is None:
            raise ConfigError(f"{spec} needs --weights FILE (safetensors)")
        c, h, w = input_shape
        model = create_model(spec, in_channels=c, image_size=(h, w), num_classes=num_classes)
        try:
            model.load_state_dict(load_state_dict(weights))
        except RuntimeError as exc:
            raise ConfigError(f"{weights} does not fit {spec}: {str(exc).splitlines()[0]}") from None
        return TorchSuspect(model, output=mode, name=spec, **common)
    raise ConfigError(
        f"cannot tell what suspect {spec!r} is; give a zoo card (.json), onnx:PATH, torchscript:PATH, "
        "package.module:factory with --weights, or http(s)://host:port/v2/models/NAME"
    )


# --------------------------------------------------------------------------- verification


def _fingerprint_count(kit: Kit, fingerprints: int | None) -> int:
    """The number of fingerprints to use (the kit's default when None), checked against the kit."""
    n = fingerprints or kit.config.fingerprints
    if not 2 <= n <= kit.n_sets:
        raise ConfigError(f"--fingerprints must be between 2 and {kit.n_sets} for this kit")
    return n


def verify(
    kit: Kit,
    suspect: Suspect,
    *,
    fingerprints: int | None = None,
    alpha: float | None = None,
    query_log: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Fingerprint ``suspect`` with the kit and test it against the kit's homologous null.

    The victim's stored fingerprints and the null are truncated to the suspect's output mode,
    so a label-only suspect is compared label to label. When the suspect's query budget runs
    out, the fingerprints measured so far are reported and the verdict is ``inconclusive``.
    """
    start = time.perf_counter()
    n_req = _fingerprint_count(kit, fingerprints)
    alpha = alpha if alpha is not None else kit.config.alpha
    if tuple(suspect.input_shape) != kit.input_shape:
        raise SuspectError(
            f"{suspect.name} takes inputs {suspect.input_shape}, the kit's victim takes {kit.input_shape}"
        )
    if suspect.num_classes != kit.num_classes:
        raise SuspectError(f"suspect returns {suspect.num_classes} classes, the kit expects {kit.num_classes}")
    mode = suspect.output
    q0 = suspect.queries
    logger = QueryLog(query_log, kit=kit, suspect=suspect, fingerprints=n_req, alpha=alpha) if query_log else None
    got: list[torch.Tensor] = []
    message = ""
    try:
        for s in range(n_req):
            batch = probe_batch(kit.probe_images[s], kit.v)
            out = suspect(batch)
            if logger:
                logger.write(s, batch, out)
            got.append(out.reshape(-1))
    except BudgetExhaustedError as exc:
        message = f"query budget exhausted after {len(got)} of {n_req} fingerprints ({exc})"
    finally:
        if logger:
            logger.close()
    return _score(
        kit, got, mode=mode, alpha=alpha, n_req=n_req, name=suspect.name, queries=suspect.queries - q0,
        start=start, message=message,
    )  # fmt: skip


def _score(
    kit: Kit,
    got: list[torch.Tensor],
    *,
    mode: OutputMode,
    alpha: float,
    n_req: int,
    name: str,
    queries: int,
    start: float,
    message: str,
) -> Verdict:
    """The verdict on fingerprints ``got`` (each (2 N K,)) of the first ``len(got)`` probe sets."""
    n = len(got)
    if n < 2:
        return Verdict(
            suspect=name, verdict=INCONCLUSIVE, similarity=float("nan"), similarity_std=float("nan"),
            p_value=float("nan"), alpha=alpha, fingerprints=n, fingerprints_requested=n_req,
            queries=queries, output_mode=str(mode), null_mean=float("nan"), null_count=0,
            seconds=time.perf_counter() - start, kit_sha256=kit.sha256, message=message or "too few fingerprints",
            test=kit.config.null, calibration=kit.config.calibration,
        )  # fmt: skip
    f_s = torch.stack(got)
    f_v = apply_output_mode(kit.victim_fingerprints[:n], mode, kit.num_classes)
    sims = cosine_similarities(kit.encoder, f_v, f_s)
    null = kit.null_for(f_s, mode)
    p, verdict = decide(sims, null, alpha=alpha, rule=kit.config.null)
    if message:
        verdict = INCONCLUSIVE
    return Verdict(
        suspect=name, verdict=verdict, similarity=float(sims.mean()),
        similarity_std=float(sims.std()) if n > 1 else 0.0, p_value=p, alpha=alpha, fingerprints=n,
        fingerprints_requested=n_req, queries=queries, output_mode=str(mode),
        null_mean=float(null.mean()), null_count=int(null.shape[0]), seconds=time.perf_counter() - start,
        kit_sha256=kit.sha256, per_fingerprint=[round(float(v), 6) for v in sims], message=message,
        test=kit.config.null, calibration=kit.config.calibration,
    )  # fmt: skip


class QueryLog:
    """JSON Lines evidence: a header (kit hash, suspect), then one line per query.

    Header: ``{"type": "header", "format", "kit_sha256", "suspect", "output_mode", "uap_sha256",
    "fingerprints", "alpha", "started"}``. Query lines: ``{"set", "point", "uap", "input_sha256",
    "output"}``; ``input_sha256`` is the SHA-256 of the query's float32 bytes (little-endian,
    C order) and ``output`` the answer row exactly as received (floats round-trip float32).
    """

    FORMAT = "uapfp-query-log/1"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kit: Kit,
        suspect: Suspect,
        fingerprints: int | None = None,
        alpha: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._handle.write(
            json.dumps(
                {
                    "type": "header",
                    "format": self.FORMAT,
                    "kit_sha256": kit.sha256,
                    "suspect": suspect.name,
                    "output_mode": str(suspect.output),
                    "uap_sha256": hashlib.sha256(kit.v.numpy().tobytes()).hexdigest(),
                    "fingerprints": fingerprints,
                    "alpha": alpha,
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                }
            )
            + "\n"
        )

    def write(self, fingerprint_set: int, inputs: torch.Tensor, outputs: torch.Tensor) -> None:
        for i in range(len(inputs)):
            row = {
                "set": fingerprint_set,
                "point": i // 2,
                "uap": bool(i % 2),
                "input_sha256": _input_digest(inputs[i]),
                "output": [float(v) for v in outputs[i]],
            }
            self._handle.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def _input_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().astype("<f4").tobytes()).hexdigest()


def recheck_query_log(kit: Kit, path: str | os.PathLike[str], *, alpha: float | None = None) -> Verdict:
    """Recompute a verdict from a query log: check that every logged query is the kit's probe
    (by its SHA-256), rebuild the fingerprints from the logged answers and score them again.

    The result equals the original verdict (bit for bit in its similarities) when the log is
    intact; a log from another kit, a reordered or edited query is refused with a ConfigError.
    """
    start = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"query log {path} does not exist; write one with uapfp verify --query-log")
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    try:
        header = json.loads(lines[0]) if lines else None
        rows = [json.loads(line) for line in lines[1:]]
    except ValueError as exc:
        raise ConfigError(f"{path} is not a JSON Lines query log ({exc})") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise ConfigError(f"{path} does not start with a query log header")
    if header.get("kit_sha256") != kit.sha256:
        raise ConfigError(f"{path} was written with another kit (kit SHA-256 {header.get('kit_sha256')}); use that kit")
    mode = OutputMode.parse(header.get("output_mode"))
    alpha = alpha if alpha is not None else (header.get("alpha") or kit.config.alpha)
    got: list[torch.Tensor] = []
    i = 0
    while i < len(rows):
        s = len(got)
        if s >= kit.n_sets:
            raise ConfigError(f"{path} holds more probe sets than the kit ({kit.n_sets})")
        batch = probe_batch(kit.probe_images[s], kit.v)
        chunk = rows[i : i + len(batch)]
        if len(chunk) < len(batch):
            raise ConfigError(
                f"{path} ends inside probe set {s} ({len(chunk)} of {len(batch)} queries); it is truncated"
            )
        outs = []
        for j, row in enumerate(chunk):
            if not isinstance(row, dict) or row.get("set") != s or row.get("input_sha256") != _input_digest(batch[j]):
                raise ConfigError(
                    f"{path} line {i + j + 2}: the query is not probe {j} of set {s} of this kit; the log was edited"
                )
            out = row.get("output")
            if not isinstance(out, list) or len(out) != kit.num_classes:
                raise ConfigError(f"{path} line {i + j + 2}: the answer does not hold {kit.num_classes} numbers")
            outs.append(out)
        got.append(torch.tensor(outs, dtype=torch.float32).reshape(-1))
        i += len(batch)
    n_req = int(header.get("fingerprints") or len(got))
    message = "" if len(got) >= n_req else f"the log holds {len(got)} of {n_req} fingerprints (budget exhausted)"
    return _score(
        kit, got, mode=mode, alpha=float(alpha), n_req=n_req, name=str(header.get("suspect")),
        queries=len(rows), start=start, message=message,
    )  # fmt: skip


# --------------------------------------------------------------------------- evaluation on a zoo


@dataclass
class ModelScore:
    """One held-out zoo model's result."""

    id: str
    role: str
    arch: str
    optimizer: str | None
    attack: str | None
    similarity: float
    similarity_std: float
    p_value: float
    verdict: str


@dataclass
class Evaluation:
    """Held-out models' scores and their summary (the layout of the paper's table 2)."""

    scores: list[ModelScore]
    auc: float
    fingerprints: int
    output_mode: str
    alpha: float
    kit_sha256: str
    groups: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        pir = [s for s in self.scores if s.role == "piracy"]
        hom = [s for s in self.scores if s.role == "homologous"]
        return {
            "auc": None if math.isnan(self.auc) else self.auc,
            "piracy_models": len(pir),
            "homologous_models": len(hom),
            "piracy_mean_similarity": float(np.mean([s.similarity for s in pir])) if pir else None,
            "homologous_mean_similarity": float(np.mean([s.similarity for s in hom])) if hom else None,
            "piracy_detected": sum(s.verdict == PIRACY for s in pir),
            "piracy_max_p": max((s.p_value for s in pir), default=None),
            "homologous_flagged": sum(s.verdict == PIRACY for s in hom),
            "homologous_flag_rate": (sum(s.verdict == PIRACY for s in hom) / len(hom)) if hom else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kit_sha256": self.kit_sha256,
            "fingerprints": self.fingerprints,
            "output_mode": self.output_mode,
            "alpha": self.alpha,
            "summary": self.summary(),
            "groups": self.groups,
            "models": [asdict(s) for s in self.scores],
        }

    def render(self) -> str:
        lines = [
            f"{'arch':<6}{'optimizer':<10}{'role':<12}{'n':>3}{'mean sim':>10}{'std':>8}{'max p (pir) / min p (hom)':>28}",
        ]
        for g in self.groups:
            p = g["max_p"] if g["role"] == "piracy" else g["min_p"]
            lines.append(
                f"{g['arch']:<6}{g['optimizer'] or '-':<10}{g['role']:<12}{g['n']:>3}{g['mean']:>10.4f}{g['std']:>8.4f}{p:>28.3g}"
            )
        s = self.summary()

        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.4f}"

        lines.append("")
        lines.append(
            f"AUC {f(s['auc'])}; piracy mean similarity {f(s['piracy_mean_similarity'])}, detected "
            f"{s['piracy_detected']}/{s['piracy_models']}; homologous mean similarity "
            f"{f(s['homologous_mean_similarity'])}, flagged {s['homologous_flagged']}/{s['homologous_models']} "
            f"(alpha {self.alpha}, {self.fingerprints} fingerprints, outputs {self.output_mode})"
        )
        return "\n".join(lines)


def evaluate(
    kit: Kit,
    zoo: Any,
    *,
    fingerprints: int | None = None,
    alpha: float | None = None,
    output: str = "probs",
    ids: list[str] | None = None,
    stored: dict[str, torch.Tensor] | None = None,
    progress: bool = False,
) -> Evaluation:
    """Verify every held-out model of ``zoo`` (or the models ``ids``) with ``kit``.

    Each model goes through the same :func:`verify` as any suspect (a local
    :class:`TorchSuspect` in answer mode ``output``). ``stored`` (model id -> full-probability
    fingerprints (S, D) on this kit's UAP and probe sets, e.g. a :class:`uapfp.kit.Profile`'s)
    skips the queries: each model is scored from its stored fingerprints, truncated to
    ``output`` as the suspect would have answered, with the same result.
    """
    from tqdm.auto import tqdm

    from .zoo import Zoo, card_suspect

    zoo = zoo if isinstance(zoo, Zoo) else Zoo.load(zoo)
    if zoo.victim["weights_sha256"] != kit.info["victim"]["weights_sha256"]:
        raise ConfigError("this zoo's victim is not the kit's victim; evaluate a kit on the zoo it was built from")
    wanted = set(ids) if ids is not None else set(kit.info["models"]["heldout"])
    cards = [c for c in zoo.cards if c["id"] in wanted and c["role"] in ("piracy", "homologous")]
    if not cards:
        raise ConfigError("no held-out piracy or homologous models to evaluate; rebuild the kit with a held-out share")
    n = _fingerprint_count(kit, fingerprints)
    alpha = alpha if alpha is not None else kit.config.alpha
    scores = []
    mode = OutputMode.parse(output)
    queries = n * 2 * kit.probe_images.shape[1]  # what querying the n probe sets would cost
    for card in tqdm(cards, desc="evaluate", disable=not progress, leave=False):
        if stored is None:
            v = verify(kit, card_suspect(card, output=output), fingerprints=n, alpha=alpha)
        else:
            f = apply_output_mode(stored[card["id"]][:n], mode, kit.num_classes)
            v = _score(kit, list(f), mode=mode, alpha=alpha, n_req=n, name=card["id"], queries=queries,
                       start=time.perf_counter(), message="")  # fmt: skip
        scores.append(
            ModelScore(
                id=card["id"], role=card["role"], arch=card["arch"], optimizer=card.get("optimizer"),
                attack=(card.get("attack") or {}).get("name"), similarity=v.similarity,
                similarity_std=v.similarity_std, p_value=v.p_value, verdict=v.verdict,
            )
        )  # fmt: skip
    pos = [s.similarity for s in scores if s.role == "piracy"]
    neg = [s.similarity for s in scores if s.role == "homologous"]
    groups = []
    keyf = lambda s: (s.arch, s.optimizer or "", s.role)  # noqa: E731
    for key in sorted({keyf(s) for s in scores}):
        grp = [s for s in scores if keyf(s) == key]
        sims = np.array([s.similarity for s in grp])
        ps = [s.p_value for s in grp]
        groups.append(
            {
                "arch": key[0], "optimizer": key[1] or None, "role": key[2], "n": len(grp),
                "mean": float(sims.mean()), "std": float(sims.std(ddof=1)) if len(grp) > 1 else 0.0,
                "max_p": float(max(ps)), "min_p": float(min(ps)),
            }
        )  # fmt: skip
    return Evaluation(scores, auc(pos, neg), n, output, alpha, kit.sha256, groups)
