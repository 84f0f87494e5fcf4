"""DeepFool and universal adversarial perturbations of the white-box victim.

- :func:`deepfool`: batched DeepFool (Moosavi-Dezfooli et al., CVPR 2016) for the L2 and
  L-inf norms, over the top ``num_candidates`` classes of the clean image.
- :class:`DeepFoolUAP`: the reference UAP algorithm (Moosavi-Dezfooli et al., CVPR 2017),
  driven by the batched DeepFool. With ``batch_size=1`` it is exactly the original
  sequential algorithm; with larger batches the DeepFool steps of a batch's still-unfooled
  points, computed at the same ``v``, are summed before one projection.
- :class:`SgdUAP`: the batched SGD variant (Shafahi et al., AAAI 2020): sign steps on a
  clamped cross-entropy, projected after each step.

Both are registered in :data:`UAP_METHODS` under the names the kit's config uses.

Inputs are in [0, 1]; ``x + v`` is clipped to [0, 1] wherever the model sees it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import NORMS
from .errors import ConfigError
from .training import INFERENCE_BATCH, predict_logits

log = logging.getLogger(__name__)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use l2 or linf")


def project(v: torch.Tensor, xi: float, norm: str) -> torch.Tensor:
    """Project ``v`` onto the ``norm`` ball of radius ``xi``.

    L2 scales by ``min(1, xi / ||v||_2)``; L-inf clips every coordinate to [-xi, xi].
    A batch (B, ...) is projected row by row.
    """
    _check_norm(norm)
    if norm == "linf":
        return v.clamp(-xi, xi)
    flat = v.reshape(v.shape[0], -1) if v.dim() > 3 else v.reshape(1, -1)
    scale = (xi / flat.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (flat * scale[:, None]).reshape(v.shape)


@dataclass
class DeepFoolResult:
    """Per-image DeepFool output.

    Attributes:
        perturbation: (N, C, H, W), ``(1 + overshoot) * r_tot`` as in the reference code.
        converged: (N,) whether the label changed within ``max_iter`` iterations.
        iterations: (N,) iterations used.
        labels: (N,) the clean predictions.
    """

    perturbation: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    labels: torch.Tensor


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    *,
    num_candidates: int = 10,
    overshoot: float = 0.02,
    max_iter: int = 50,
    norm: str = "l2",
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> DeepFoolResult:
    """Batched DeepFool: the minimal perturbation moving each image across its nearest boundary.

    At each iteration, for every candidate class k among the clean image's top
    ``num_candidates``, the boundary with the current label l is linearised
    (``f_k = z_k - z_l``, ``w_k = grad f_k``) and the closest one is taken: for L2,
    ``r = (|f|/||w||_2 + 1e-4) w / ||w||_2``; for L-inf (dual norm L1),
    ``r = (|f|/||w||_1 + 1e-4) sign(w)``. Images already fooled stop iterating.

    Args:
        model: returns logits; used in eval mode.
        x: (N, C, H, W).
        bounds: clip the perturbed image to these bounds when evaluating it (None: no clip).
    """
    _check_norm(norm)
    model.eval()
    x = x.detach()
    with torch.no_grad():
        logits0 = model(x)
    k = min(num_candidates, logits0.shape[1])
    candidates = logits0.argsort(dim=1, descending=True)[:, :k]
    labels = candidates[:, 0]
    r_tot = torch.zeros_like(x)
    iterations = torch.zeros(len(x), dtype=torch.long)
    active = torch.ones(len(x), dtype=torch.bool)

    def perturbed(idx: torch.Tensor) -> torch.Tensor:
        xp = x[idx] + (1 + overshoot) * r_tot[idx]
        return xp.clamp(*bounds) if bounds is not None else xp

    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        xp = perturbed(idx).requires_grad_(True)
        logits = model(xp)
        still = logits.argmax(1) == labels[idx]
        active[idx[~still]] = False
        if not still.any():
            break
        rows = still.nonzero().squeeze(1)
        idx = idx[rows]
        cand = candidates[idx]
        z = logits[rows].gather(1, cand)  # (n, k): candidate logits, column 0 = current label
        # One backward pass per candidate rank; samples are independent, so the gradient of
        # the batch sum is each sample's own gradient.
        grads = [torch.autograd.grad(z[:, j].sum(), xp, retain_graph=j < k - 1)[0][rows] for j in range(k)]
        grad = torch.stack(grads, dim=1)  # (n, k, C, H, W)
        f = (z - z[:, :1]).detach()  # (n, k)
        w = grad - grad[:, :1]
        wflat = w.flatten(2)
        dual = wflat.norm(dim=2) if norm == "l2" else wflat.abs().sum(dim=2)
        pert = f.abs() / dual.clamp_min(1e-12)
        pert[:, 0] = float("inf")
        best = pert.argmin(dim=1)
        take = torch.arange(len(rows))
        w_best, p_best = w[take, best], pert[take, best]
        if norm == "l2":
            step = (
                (p_best + 1e-4)[:, None, None, None]
                * w_best
                / wflat[take, best].norm(dim=1).clamp_min(1e-12)[:, None, None, None]
            )
        else:
            step = (p_best + 1e-4)[:, None, None, None] * w_best.sign()
        r_tot[idx] += step.detach()
        iterations[idx] += 1
    with torch.no_grad():
        converged = predict_logits(model, perturbed(torch.arange(len(x)))).argmax(1) != labels
    return DeepFoolResult((1 + overshoot) * r_tot, converged, iterations, labels)


@torch.no_grad()
def fooling_rate(model: nn.Module, x: torch.Tensor, v: torch.Tensor, *, batch_size: int = INFERENCE_BATCH) -> float:
    """P[argmax M(clip(x + v)) != argmax M(x)] over ``x``."""
    clean = predict_logits(model, x, batch_size=batch_size).argmax(1)
    adv = predict_logits(model, (x + v).clamp(0, 1), batch_size=batch_size).argmax(1)
    return float((clean != adv).float().mean())


@dataclass
class UAPResult:
    """A universal perturbation and how it was obtained."""

    v: torch.Tensor
    method: str
    norm: str
    xi: float
    fooling_rate_train: float
    fooling_rate_val: float | None
    seconds: float
    passes: int
    history: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "method": self.method,
            "norm": self.norm,
            "xi": self.xi,
            "fooling_rate_train": round(self.fooling_rate_train, 4),
            "fooling_rate_val": None if self.fooling_rate_val is None else round(self.fooling_rate_val, 4),
            "seconds": round(self.seconds, 2),
            "passes": self.passes,
            "l2": round(float(self.v.norm()), 4),
            "linf": round(float(self.v.abs().max()), 4),
        }


@dataclass(frozen=True, kw_only=True)
class UAPMethod(ABC):
    """A UAP algorithm: its hyperparameters (keyword-only, frozen) and ``__call__``, which runs it.

    Args:
        xi: the radius of the ``norm`` ball ``v`` is projected onto.
        norm: ``l2`` or ``linf``.
    """

    name: ClassVar[str]
    xi: float
    norm: str = "linf"

    def __post_init__(self) -> None:
        _check_norm(self.norm)
        if not self.xi > 0:
            raise ConfigError("the UAP radius xi must be positive")

    def __call__(
        self, model: nn.Module, x: torch.Tensor, *, x_val: torch.Tensor | None = None, seed: int = 0,
        progress: bool = False,
    ) -> UAPResult:  # fmt: skip
        """A UAP of ``model`` computed on images ``x``; its fooling rate on ``x_val`` (held-out data) is reported."""
        model.eval()
        start = time.perf_counter()
        v, rate, passes, history = self._run(model, x, gen=torch.Generator().manual_seed(seed), progress=progress)
        val = fooling_rate(model, x_val, v) if x_val is not None else None
        return UAPResult(v, self.name, self.norm, self.xi, rate, val, time.perf_counter() - start, passes, history)

    @abstractmethod
    def _run(
        self, model: nn.Module, x: torch.Tensor, *, gen: torch.Generator, progress: bool
    ) -> tuple[torch.Tensor, float, int, list[float]]:
        """Subclass: (v, fooling rate on ``x``, passes, fooling rate after each pass)."""


@dataclass(frozen=True, kw_only=True)
class DeepFoolUAP(UAPMethod):
    """The reference UAP algorithm (Moosavi-Dezfooli et al., CVPR 2017), batched.

    Passes over ``x`` in a seeded random order; where ``clip(x_i + v)`` keeps the clean
    label, DeepFool finds the extra perturbation, which is added only where DeepFool
    converged (within ``max_iter_df - 1`` iterations, as in the reference code), and ``v``
    is projected onto the ball of radius ``xi``. Stops once the fooling rate on ``x``
    reaches ``1 - delta`` or after ``max_passes`` passes. With ``batch_size=1`` it is
    exactly the sequential original; larger batches ``aggregate`` (``sum`` or ``mean``) the
    DeepFool steps of a batch's unfooled points before one projection.
    """

    name = "deepfool"
    delta: float = 0.2
    max_passes: int = 10
    overshoot: float = 0.02
    num_candidates: int = 10
    max_iter_df: int = 50
    batch_size: int = 32
    aggregate: str = "sum"

    def _run(self, model, x, *, gen, progress):  # type: ignore[no-untyped-def]
        xi, norm = self.xi, self.norm
        v = torch.zeros(x.shape[1:])
        clean = predict_logits(model, x).argmax(1)
        rate, passes, history = 0.0, 0, []
        best_v, best_rate = v, 0.0
        bar = tqdm(total=self.max_passes, desc=f"UAP (DeepFool, {norm} {xi:g})", disable=not progress, leave=False)
        while rate < 1 - self.delta and passes < self.max_passes:
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), self.batch_size):
                idx = order[i : i + self.batch_size]
                with torch.no_grad():
                    keep = model((x[idx] + v).clamp(0, 1)).argmax(1) == clean[idx]
                if not keep.any():
                    continue
                df = deepfool(
                    model, (x[idx[keep]] + v).clamp(0, 1), num_candidates=self.num_candidates,
                    overshoot=self.overshoot, max_iter=self.max_iter_df, norm=norm,
                )  # fmt: skip
                ok = df.converged & (df.iterations < self.max_iter_df - 1)
                if ok.any():
                    dr = df.perturbation[ok]
                    v = project(v + (dr.sum(dim=0) if self.aggregate == "sum" else dr.mean(dim=0)), xi, norm)
            passes += 1
            rate = fooling_rate(model, x, v)
            history.append(rate)
            if rate >= best_rate:
                best_v, best_rate = v, rate
            bar.update(1)
            bar.set_postfix(fooling=f"{rate:.3f}")
            log.debug("UAP pass %d: fooling rate %.4f", passes, rate)
        bar.close()
        # The fooling rate oscillates from pass to pass: keep the best perturbation seen.
        return best_v, best_rate, passes, history


@dataclass(frozen=True, kw_only=True)
class SgdUAP(UAPMethod):
    """Batched SGD UAP (Shafahi et al., AAAI 2020).

    Maximises ``mean(min(CE(M(clip(x + v)), y_clean), beta))`` over mini-batches for
    ``epochs`` passes with sign steps (L-inf) or normalised-gradient steps (L2) of size ``lr``
    (default ``xi/10``), projecting onto the ball of radius ``xi`` after each step.
    """

    name = "sgd"
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None
    beta: float = 9.0

    def _run(self, model, x, *, gen, progress):  # type: ignore[no-untyped-def]
        xi, norm = self.xi, self.norm
        step = self.lr if self.lr is not None else xi / 10
        clean = predict_logits(model, x).argmax(1)
        v = torch.zeros(x.shape[1:])
        history = []
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for _epoch in tqdm(range(self.epochs), desc=f"UAP (SGD, {norm} {xi:g})", disable=not progress, leave=False):
                order = torch.randperm(len(x), generator=gen)
                for i in range(0, len(x), self.batch_size):
                    idx = order[i : i + self.batch_size]
                    vv = v.clone().requires_grad_(True)
                    loss = (
                        F.cross_entropy(model((x[idx] + vv).clamp(0, 1)), clean[idx], reduction="none")
                        .clamp(max=self.beta)
                        .mean()
                    )
                    (grad,) = torch.autograd.grad(loss, vv)
                    if norm == "linf":
                        v = v + step * grad.sign()
                    else:
                        v = v + step * grad / grad.norm().clamp_min(1e-12)
                    v = project(v, xi, norm)
                history.append(fooling_rate(model, x, v))
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        return v, history[-1] if history else 0.0, self.epochs, history


#: The UAP methods by name, in the order of :data:`uapfp.config.UAP_METHOD_NAMES`.
UAP_METHODS: dict[str, type[UAPMethod]] = {"deepfool": DeepFoolUAP, "sgd": SgdUAP}


def create_uap_method(name: str, **hyperparameters: Any) -> UAPMethod:
    """Build a registered UAP method by name (``xi``, ``norm`` and its own hyperparameters)."""
    if name not in UAP_METHODS:
        raise ConfigError(f"unknown UAP method {name!r}; use {', '.join(UAP_METHODS)}")
    try:
        return UAP_METHODS[name](**hyperparameters)
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameters for UAP method {name!r}: {exc}") from None
