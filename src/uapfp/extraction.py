"""Model-extraction attacks: they see the victim only as a :class:`~uapfp.suspects.Suspect`.

An attack receives a query oracle (which returns the victim's outputs and counts every
query) and the attacker's *unlabeled* pool of images; it never receives the victim's weights
nor the pool's true labels. Attacks are registered by name; the names are the ones the CLI
and the zoo cards use.

- ``knockoff``: the pool labelled with the victim's probabilities (Orekondy et al., CVPR 2019).
- ``copycat``: the pool labelled with the victim's top-1 labels (Correia-Silva et al., IJCNN 2018).
- ``jbda``: Jacobian-based dataset augmentation from a small seed set (Papernot et al.,
  AsiaCCS 2017).
- ``cloudleak``: pool queries plus adversarial examples crafted on the attacker's substitute,
  sent as extra queries near the decision boundary (in the spirit of Yu et al., NDSS 2020).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import ConfigError
from .suspects.base import Suspect
from .training import TrainConfig, in_precision, train_model

log = logging.getLogger(__name__)

ModelMaker = Callable[[], nn.Module]


@dataclass
class ExtractionResult:
    """The piracy model and what its extraction cost."""

    model: nn.Module
    queries: int
    train_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def _query(oracle: Suspect, x: torch.Tensor, labels: str) -> torch.Tensor:
    """Ask the oracle; keep its probabilities (soft) or only its top-1 labels (hard)."""
    out = oracle(x)
    return out if labels == "soft" else out.argmax(dim=1)


class ExtractionAttack(ABC):
    """Base class: hyperparameters are keyword-only and stored as given.

    Args:
        labels: ``"soft"`` trains on the victim's returned probabilities, ``"hard"`` on its
            top-1 labels.
    """

    name: ClassVar[str]
    default_labels: ClassVar[str] = "soft"

    def __init__(self, *, labels: str | None = None) -> None:
        labels = labels or self.default_labels
        if labels not in ("soft", "hard"):
            raise ConfigError("labels must be 'soft' or 'hard'")
        self.labels = labels

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({args})"

    def hyperparameters(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def run(
        self,
        oracle: Suspect,
        pool: torch.Tensor,
        *,
        make_model: ModelMaker,
        train: TrainConfig,
        progress: bool = False,
    ) -> ExtractionResult:
        """Extract a copy of the oracle's model from the unlabeled ``pool`` (N, C, H, W)."""
        if pool.dim() != 4 or len(pool) == 0:
            raise ConfigError("the attacker's pool must be a non-empty image batch (N, C, H, W)")
        start_queries = oracle.queries
        start = time.perf_counter()
        model, details = self._run(oracle, pool, make_model=make_model, train=train, progress=progress)
        return ExtractionResult(
            model=model.eval(),
            queries=oracle.queries - start_queries,
            train_seconds=time.perf_counter() - start,
            details=details,
        )

    @abstractmethod
    def _run(
        self, oracle: Suspect, pool: torch.Tensor, *, make_model: ModelMaker, train: TrainConfig, progress: bool
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Subclass: the attack itself."""


_ATTACKS: dict[str, type[ExtractionAttack]] = {}


def register_attack(cls: type[ExtractionAttack]) -> type[ExtractionAttack]:
    """Class decorator: register an attack under ``cls.name``."""
    if cls.name in _ATTACKS:
        raise ValueError(f"attack {cls.name!r} is already registered")
    _ATTACKS[cls.name] = cls
    return cls


def list_attacks() -> list[str]:
    return sorted(_ATTACKS)


def create_attack(name: str, **hyperparameters: Any) -> ExtractionAttack:
    """Build a registered attack by name."""
    try:
        cls = _ATTACKS[name]
    except KeyError:
        raise ConfigError(f"unknown extraction attack {name!r}; choose one of {', '.join(list_attacks())}") from None
    try:
        return cls(**hyperparameters)
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameters for attack {name!r}: {exc}") from None


def _subset(pool: torch.Tensor, n: int | None, gen: torch.Generator) -> torch.Tensor:
    order = torch.randperm(len(pool), generator=gen)
    return pool[order[: n if n is not None else len(pool)]]


@register_attack
class Knockoff(ExtractionAttack):
    """Query (up to ``budget``) pool images; train on the victim's probabilities."""

    name = "knockoff"
    default_labels = "soft"

    def __init__(self, *, budget: int | None = None, labels: str | None = None) -> None:
        super().__init__(labels=labels)
        self.budget = budget

    def _run(self, oracle, pool, *, make_model, train, progress):  # type: ignore[no-untyped-def]
        gen = torch.Generator().manual_seed(train.seed)
        x = _subset(pool, self.budget, gen)
        y = _query(oracle, x, self.labels)
        model = make_model()
        train_model(model, x, y, config=train, progress=progress, desc=self.name)
        return model, {"pool_queries": len(x)}


@register_attack
class Copycat(Knockoff):
    """Query (up to ``budget``) pool images; train on the victim's top-1 labels."""

    name = "copycat"
    default_labels = "hard"


def _substitute_config(train: TrainConfig, *, epochs: int, seed: int) -> TrainConfig:
    """The recipe of an attack's substitute: the copy's optimizer, batch size, rate and precision."""
    return TrainConfig(
        optimizer=train.optimizer, batch_size=train.batch_size, epochs=epochs, lr=train.lr, seed=seed,
        cpu_bf16=train.cpu_bf16,
    )  # fmt: skip


def _input_gradient_sign(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, train: TrainConfig, batch: int = 512
) -> torch.Tensor:
    """sign(d logit_target / dx) of the attacker's own substitute, batched."""
    model.eval()
    out = torch.empty_like(x)
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].clone().requires_grad_(True)
        with in_precision(train):  # the copy's precision, as its training's
            logits = model(xb)
        grad = torch.autograd.grad(logits.gather(1, target[i : i + batch, None]).sum(), xb)[0]
        out[i : i + batch] = grad.sign()
    return out


@register_attack
class JBDA(ExtractionAttack):
    """Jacobian-based dataset augmentation (Papernot et al., AsiaCCS 2017).

    From ``seed_size`` pool images labelled by the victim, each of ``rounds`` rounds trains
    the substitute, then adds ``x + lam * sign(J(x)[O(x)])`` for every current point
    (at most ``max_new`` per round, sampled as in the paper's reservoir variant), labelled by
    the victim. The step's sign flips every ``tau`` rounds. A fresh model is finally trained
    on the whole augmented set.
    """

    name = "jbda"

    def __init__(
        self,
        *,
        seed_size: int = 3000,
        rounds: int = 3,
        lam: float = 0.1,
        tau: int = 2,
        max_new: int | None = None,
        round_epochs: int = 2,
        labels: str | None = None,
    ) -> None:
        super().__init__(labels=labels)
        self.seed_size = seed_size
        self.rounds = rounds
        self.lam = lam
        self.tau = tau
        self.max_new = max_new
        self.round_epochs = round_epochs

    def _run(self, oracle, pool, *, make_model, train, progress):  # type: ignore[no-untyped-def]
        gen = torch.Generator().manual_seed(train.seed)
        x = _subset(pool, self.seed_size, gen)
        y = _query(oracle, x, self.labels)
        substitute = make_model()
        for rnd in range(self.rounds):
            cfg = _substitute_config(train, epochs=self.round_epochs, seed=train.seed + rnd)
            train_model(substitute, x, y, config=cfg, progress=progress, desc=f"jbda round {rnd + 1}")
            src_idx = torch.arange(len(x))
            if self.max_new is not None and len(x) > self.max_new:
                src_idx = torch.randperm(len(x), generator=gen)[: self.max_new]
            src = x[src_idx]
            labels = y[src_idx].argmax(1) if y.dim() == 2 else y[src_idx]
            step = self.lam * (-1.0 if (rnd // self.tau) % 2 else 1.0)
            new = (src + step * _input_gradient_sign(substitute, src, labels, train=train)).clamp_(0.0, 1.0)
            x = torch.cat([x, new])
            y = torch.cat([y, _query(oracle, new, self.labels)])
        model = make_model()
        train_model(model, x, y, config=train, progress=progress, desc="jbda final")
        return model, {"seed_size": self.seed_size, "final_set": len(x)}


@register_attack
class CloudLeak(ExtractionAttack):
    """Pool queries plus adversarial queries crafted on the attacker's substitute.

    ``natural`` pool images are labelled by the victim and train a substitute; ``adversarial``
    further pool images are then pushed by a targeted L-inf PGD on the substitute (radius
    ``eps``, ``steps`` steps) towards their second most likely class, stopping once they
    cross the substitute's boundary. These points near the boundary, and the clean images they
    came from, are sent as extra queries; a fresh model is trained on every answer.
    """

    name = "cloudleak"

    def __init__(
        self,
        *,
        natural: int = 10000,
        adversarial: int = 10000,
        eps: float = 0.1,
        steps: int = 5,
        substitute_epochs: int = 2,
        labels: str | None = None,
    ) -> None:
        super().__init__(labels=labels)
        self.natural = natural
        self.adversarial = adversarial
        self.eps = eps
        self.steps = steps
        self.substitute_epochs = substitute_epochs

    def _run(self, oracle, pool, *, make_model, train, progress):  # type: ignore[no-untyped-def]
        gen = torch.Generator().manual_seed(train.seed)
        order = torch.randperm(len(pool), generator=gen)
        n_nat = min(self.natural, len(pool))
        x_nat = pool[order[:n_nat]]
        rest = pool[order[n_nat : n_nat + self.adversarial]]
        clean_extra = rest
        if len(rest) == 0:  # a small pool: craft from the natural images, already queried
            rest, clean_extra = x_nat[: self.adversarial], x_nat[:0]
        y_nat = _query(oracle, x_nat, self.labels)
        substitute = make_model()
        cfg = _substitute_config(train, epochs=self.substitute_epochs, seed=train.seed)
        train_model(substitute, x_nat, y_nat, config=cfg, progress=progress, desc="cloudleak substitute")
        x_adv = self._craft(substitute, rest, train=train)
        x_extra = torch.cat([clean_extra, x_adv])
        y_extra = _query(oracle, x_extra, self.labels)
        x = torch.cat([x_nat, x_extra])
        y = torch.cat([y_nat, y_extra])
        model = make_model()
        train_model(model, x, y, config=train, progress=progress, desc="cloudleak final")
        return model, {"natural": n_nat, "adversarial": len(x_adv)}

    def _craft(self, model: nn.Module, x: torch.Tensor, *, train: TrainConfig, batch: int = 512) -> torch.Tensor:
        model.eval()
        alpha = 2.5 * self.eps / max(1, self.steps)
        out = []
        for i in range(0, len(x), batch):
            x0 = x[i : i + batch]
            with torch.no_grad():
                target = model(x0).topk(2, dim=1).indices[:, 1]
            adv = x0.clone()
            active = torch.ones(len(x0), dtype=torch.bool)
            for _ in range(self.steps):
                adv.requires_grad_(True)
                with in_precision(train):  # the copy's precision, as its training's
                    logits = model(adv)
                loss = torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")
                grad = torch.autograd.grad(loss, adv)[0]
                with torch.no_grad():
                    active &= logits.argmax(1) != target
                    step = alpha * grad.sign() * active[:, None, None, None]
                    adv = torch.min(torch.max(adv - step, x0 - self.eps), x0 + self.eps).clamp_(0.0, 1.0)
                if not active.any():
                    break
            out.append(adv.detach())
        return torch.cat(out)
