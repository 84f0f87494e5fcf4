"""``uapfp bench error-agreement``: the share of the victim's test errors each zoo model repeats."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from . import Experiment, data_dir_field, zoo_field


def repeated_errors(victim_pred: torch.Tensor, pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of the images the victim labels wrongly on which ``pred`` gives the victim's wrong label."""
    wrong = victim_pred != labels
    if not bool(wrong.any()):
        raise ValueError("the victim makes no error on these images")
    return float((pred[wrong] == victim_pred[wrong]).float().mean())


@dataclass(frozen=True)
class ErrorAgreementConfig:
    zoo: str = zoo_field("the zoo")
    data_dir: str | None = data_dir_field()


@dataclass
class ErrorAgreementReport:
    experiment: str
    zoo: str
    victim_errors: int
    auc: float | None
    roles: dict[str, dict[str, float]]
    models: list[dict[str, Any]]


def error_agreement(config: ErrorAgreementConfig) -> ErrorAgreementReport:
    """Per zoo model, :func:`repeated_errors` on the test set, and the AUC it gives alone.

    A copy inherits the victim's mistakes; an honest model makes its own. Models that repeat the
    victim's mistakes as often as copies do are honest look-alikes no output-based method can
    be expected to clear.
    """
    from ..cards import load_model_from_card
    from ..evaluate import auc
    from ..training import predict_logits
    from ..zoo import Zoo

    zoo = Zoo.load(config.zoo)
    data = zoo.load_dataset(config.data_dir)
    victim_pred = predict_logits(load_model_from_card(zoo.victim), data.x_test).argmax(1)
    # Only the victim's wrong images count: the models are run on those alone.
    wrong = victim_pred != data.y_test
    x_wrong, y_wrong, victim_wrong = data.x_test[wrong], data.y_test[wrong], victim_pred[wrong]
    rows = []
    for card in zoo.cards:
        if card["role"] == "victim":
            continue
        pred = predict_logits(load_model_from_card(card), x_wrong).argmax(1)
        share = repeated_errors(victim_wrong, pred, y_wrong)
        rows.append({"id": card["id"], "role": card["role"], "arch": card["arch"], "repeated_errors": round(share, 4)})
    by_role = {role: [r["repeated_errors"] for r in rows if r["role"] == role] for role in ("piracy", "homologous")}
    return ErrorAgreementReport(
        experiment="error-agreement", zoo=str(zoo.path), victim_errors=int(wrong.sum()),
        auc=round(auc(by_role["piracy"], by_role["homologous"]), 4) if all(by_role.values()) else None,
        roles={role: {"n": len(xs), "min": min(xs), "mean": round(statistics.fmean(xs), 4), "max": max(xs)}
               for role, xs in by_role.items() if xs},
        models=sorted(rows, key=lambda r: -r["repeated_errors"]),
    )  # fmt: skip


EXPERIMENT = Experiment(
    "error-agreement",
    "share of the victim's test errors each zoo model repeats: a lineage measure the encoder never sees",
    ErrorAgreementConfig, error_agreement,
)  # fmt: skip
