"""``uapfp bench outside``: verdicts on suspects no zoo holds (other architectures, other
extraction code, modified copies; docs/results-fmnist.md)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..options import option
from . import Experiment, data_dir_field, kit_field, outputs_field, verdict_counts, zoo_field

log = logging.getLogger(__name__)

ARCHS = ("mlp", "lenet5", "widebn")


@dataclass(frozen=True)
class OutsideConfig:
    kit: str = kit_field()
    zoo: str = zoo_field("the zoo the kit was built from (its victim, splits and data)")
    models: str = field(default="runs/outside", metadata=option("folder caching the outside models"))
    data_dir: str | None = data_dir_field()
    outputs: str = outputs_field()


@dataclass
class OutsideReport:
    experiment: str
    kit: str
    null: str
    outputs: str
    auc: float | None
    piracy_detected: str
    homologous_flagged: str
    rows: list[dict[str, Any]]


def outside(config: OutsideConfig) -> OutsideReport:
    """Train (once, cached) and verify suspects from outside the zoo.

    For each of three architectures no default zoo holds (``mlp``, ``lenet5``, ``widebn`` of
    :mod:`uapfp.archs.classic`): an honest model trained on exactly D_V, one on data disjoint
    from D_V, and piracy models made by a recipe no zoo model used: the victim's answers on a
    10,000 (hard labels) or 30,000-image pool (soft labels), random shifts of up to 2 pixels,
    label smoothing 0.1, SGD with a step schedule, 8 epochs. Each piracy model is also
    verified fine-tuned, pruned (50 %) and INT8-quantized.
    """
    from ..archs import create_model
    from ..cards import load_model_from_card
    from ..kit import Kit
    from ..modify import create_modification
    from ..storage import load_tensors, save_tensors
    from ..suspects.local import TorchSuspect
    from ..training import TrainConfig, accuracy, train_model
    from ..verify import verify
    from ..zoo import Zoo

    kit = Kit.load(config.kit)
    zoo = Zoo.load(config.zoo)
    data = zoo.load_dataset(config.data_dir)
    splits = zoo.splits()
    victim = load_model_from_card(zoo.victim)
    x_v, y_v = data.x_train[splits["victim"]], data.y_train[splits["victim"]]
    pool_idx = splits["pool"]
    outside_idx = pool_idx[: len(x_v)]
    folder = os.path.abspath(config.models)
    os.makedirs(folder, exist_ok=True)
    c, h, w = data.input_shape

    def fit(name: str, arch: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:
        path = os.path.join(folder, f"{name}.safetensors")
        torch.manual_seed(seed)
        model = create_model(arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
        if os.path.exists(path):
            model.load_state_dict(load_tensors(path))
            return model.eval()
        recipe = TrainConfig(
            optimizer="sgd", lr=0.05, weight_decay=5e-4, batch_size=128, epochs=8, schedule="step:3:0.3",
            label_smoothing=0.1, augment="shift:2", seed=seed,
        )  # fmt: skip
        train_model(model, x, y, config=recipe, progress=False, desc=name)
        save_tensors(path, model.state_dict())
        return model.eval()

    suspects: list[tuple[str, str, str, torch.nn.Module]] = []
    for arch in ARCHS:
        suspects.append(
            (f"honest-{arch}-same-data", "homologous", arch, fit(f"honest-{arch}-same", arch, x_v, y_v, 11))
        )
        x_o, y_o = data.x_train[outside_idx], data.y_train[outside_idx]
        suspects.append(
            (f"honest-{arch}-disjoint-data", "homologous", arch, fit(f"honest-{arch}-disjoint", arch, x_o, y_o, 12))
        )
        for budget, labels in ((10000, "hard"), (30000, "soft")):
            x_q = data.x_train[pool_idx[:budget]]
            with torch.no_grad():
                probs = torch.softmax(victim(x_q), 1)
            y_q = probs.argmax(1) if labels == "hard" else probs
            name = f"piracy-{arch}-{budget // 1000}k-{labels}"
            suspects.append((name, "piracy", arch, fit(name, arch, x_q, y_q, 13)))
    pick = pool_idx[torch.randperm(len(pool_idx), generator=torch.Generator().manual_seed(5))[:5000]]
    x_ft, y_ft = data.x_train[pick], data.y_train[pick]
    for name, role, arch, model in list(suspects):
        if role != "piracy":
            continue
        for spec in ("finetune:2", "prune:0.5", "quantize:8"):
            suspects.append(
                (f"{name}+{spec}", "piracy", arch, create_modification(spec).apply(model, x=x_ft, y=y_ft, seed=1))
            )
    rows = []
    for name, role, arch, model in suspects:
        suspect = TorchSuspect(
            model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=config.outputs, name=name
        )
        v = verify(kit, suspect, sequential=False)  # every set, as the figures were measured
        rows.append({
            "suspect": name, "role": role, "arch": arch, "accuracy": round(accuracy(model, data.x_test, data.y_test), 4),
            "similarity": round(v.similarity, 4), "p_value": v.p_value, "verdict": v.verdict,
        })  # fmt: skip
        log.info("%s: %s", name, rows[-1])
    counts = verdict_counts([(r["role"], r["similarity"], r["verdict"]) for r in rows])
    return OutsideReport("outside", str(kit.path), kit.config.null, config.outputs, rows=rows, **counts)


EXPERIMENT = Experiment(
    "outside", "verdicts on suspects no zoo holds: other architectures, other extraction code, modified copies",
    OutsideConfig, outside,
)  # fmt: skip
