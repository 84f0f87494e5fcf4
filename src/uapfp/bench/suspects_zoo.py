"""The suspects of the families benchmark: copies and honest models of families no zoo holds.

For a victim (a zoo's, with its D_V, attacker's pool and test set) and each family, trained
once and cached in a folder (``NAME.safetensors`` or ``NAME.onnx``, and ``NAME.json``):

- honest: two models trained on exactly D_V (the hardest negatives: the victim's own data),
  one on D_H overlapping D_V by half, one on data disjoint from D_V;
- copies by the project's attacks (``knockoff``, ``copycat``, ``jbda``, ``cloudleak``) and by
  extraction code of other authors (adversarial-robustness-toolbox's ``KnockoffNets``, random
  and adaptive sampling), each seeing the victim only through a query-counting suspect;
- modified copies of the knockoff copy: fine-tuned on the thief's own labelled images, pruned
  60 %, INT8-quantized by ONNX Runtime, adversarially trained on DeepFool examples (paper
  section 5.4), and distilled into the next family.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..storage import load_tensors, save_tensors, sha256_tensors, write_json

log = logging.getLogger(__name__)

DEV_FAMILIES = ("mlp", "lenet5", "widebn")
TEST_FAMILIES = ("resnet", "dwsep", "vgg", "allconv")
HONEST = ("honest-dv-a", "honest-dv-b", "honest-overlap", "honest-disjoint")
#: Each honest kind as :func:`uapfp.family_null.train_honest` names the way it is trained.
HONEST_TRAINING = {"honest-dv-a": "dv-adam", "honest-dv-b": "dv-sgd", "honest-overlap": "overlap",
                   "honest-disjoint": "disjoint"}  # fmt: skip
COPIES = ("copy-knockoff", "copy-copycat", "copy-jbda", "copy-cloudleak", "copy-art-random", "copy-art-adaptive")
MODIFIED = ("mod-finetune", "mod-prune60", "mod-int8", "mod-advtrain", "mod-distill")
KINDS = HONEST + COPIES + MODIFIED


@dataclass
class SuspectRecord:
    """One benchmark suspect: what it is (role, family, kind) and where its model lies."""

    name: str
    role: str
    family: str
    arch: str
    kind: str
    half: str
    weights: str
    test_accuracy: float
    queries: int
    seconds: float
    recipe: dict[str, Any] | None = None  # how it was trained (absent from cards of before it was recorded)


def half_of(family: str) -> str:
    return "dev" if family in DEV_FAMILIES else "test"


def build_suspects(
    folder: str | os.PathLike[str],
    victim: nn.Module,
    data: Any,
    splits: dict[str, torch.Tensor],
    *,
    families: tuple[str, ...],
    kinds: tuple[str, ...] = KINDS,
    epochs: int = 4,
    augment: str = "none",
    cpu_bf16: bool = False,
    art_epochs: int | None = None,
    art_schedule: str = "constant",
    budget: int | None = 20000,
    batch_size: int = 128,
    seed: int = 0,
    half: Callable[[str], str] | None = None,
) -> list[SuspectRecord]:
    """Train (or read from ``folder``) every suspect of ``families``; resumable, written atomically.

    ``augment``, ``cpu_bf16`` and ``batch_size`` are the recipe of the models this code trains (honest models
    and the project's attacks' copies; ART's KnockoffNets trains with its own loop, ``art_epochs``
    epochs, default twice ``epochs``, at a ``constant`` rate or one that decays as a cosine over the
    epochs, and with the recipe's augmentation inside the thief's model). ``budget``: the queries
    of the knockoff, CopyCat and ART random copies (None: the whole pool). ``half`` names a
    family's half (default: dev for the families benchmark's dev families, else test). A suspect
    already in ``folder`` whose card records another recipe, or another victim (by a digest of its
    weights), is refused."""
    half = half or half_of
    art_epochs = art_epochs if art_epochs is not None else 2 * epochs
    if art_schedule not in ("constant", "cosine"):
        raise ConfigError(f"art_schedule must be constant or cosine, not {art_schedule!r}")
    if budget is not None and budget < 1:
        raise ConfigError(f"budget must be a positive number of queries or None (the whole pool), not {budget}")
    victim_digest = sha256_tensors(*victim.state_dict().values())
    recipe = {"epochs": epochs, "augment": augment, "art_epochs": art_epochs, "art_schedule": art_schedule,
              "art_augment": augment != "none", "budget": budget, "batch_size": batch_size, "cpu_bf16": cpu_bf16,
              "victim": victim_digest}  # fmt: skip
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for f_index, family in enumerate(families):
        for k_index, kind in enumerate(kinds):
            name = f"{family}-{kind}"
            card = folder / f"{name}.json"
            s = seed * 1000 + f_index * 100 + k_index
            if card.is_file():
                rec = SuspectRecord(**json.loads(card.read_text()))
                # A card from before a field: float32, a victim it did not record (taken on trust), ART's
                # copies at a constant rate on 20,000 queries without augmentation (which came with the
                # schedule's field).
                before = {"cpu_bf16": False, "victim": victim_digest, "art_schedule": "constant", "budget": 20000,
                          "art_augment": "art_schedule" in (rec.recipe or {}) and rec.recipe.get("augment") != "none"}  # fmt: skip
                if rec.recipe is not None and {**before, **rec.recipe} != recipe:
                    raise ConfigError(
                        f"{card} was trained with {rec.recipe}, not {recipe} (another victim, if 'victim' differs): "
                        "use another folder"
                    )
                records.append(replace(rec, half=half(family)))
                continue
            start = time.perf_counter()
            model, queries, weights, arch = _make(folder, name, kind, family, families, victim, data, splits, s, recipe)
            acc = _accuracy(model, data)
            rec = SuspectRecord(
                name=name, role="homologous" if kind in HONEST else "piracy", family=family, arch=arch, kind=kind,
                half=half(family), weights=weights, test_accuracy=round(acc, 4), queries=queries,
                seconds=round(time.perf_counter() - start, 1), recipe=recipe,
            )  # fmt: skip
            write_json(card, asdict(rec))
            log.info("%s: accuracy %.4f, %d queries (%.0f s)", name, acc, queries, rec.seconds)
            records.append(rec)
    return records


def load_suspect_model(folder: str | os.PathLike[str], rec: SuspectRecord, data: Any) -> Any:
    """The suspect's model: an ``nn.Module`` (safetensors) or the path of an ONNX file."""
    from ..archs import create_model

    path = Path(folder) / rec.weights
    if path.suffix == ".onnx":
        return str(path)
    c, h, w = data.input_shape
    model = create_model(rec.arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    model.load_state_dict(load_tensors(path))
    return model.eval()


def load_suspect(folder: str | os.PathLike[str], rec: SuspectRecord, data: Any) -> Any:
    """The suspect as the benchmarks query it: a local model, or ONNX Runtime for an ONNX file."""
    from ..suspects.local import TorchSuspect
    from ..suspects.onnx_runtime import OnnxSuspect

    model = load_suspect_model(folder, rec, data)
    shape = {"input_shape": tuple(data.input_shape), "num_classes": data.num_classes}
    if isinstance(model, str):
        return OnnxSuspect(model, output="logits", **shape)
    return TorchSuspect(model, name=rec.name, **shape)


def _accuracy(model: Any, data: Any) -> float:
    if isinstance(model, str):
        from ..suspects.onnx_runtime import OnnxSuspect

        suspect = OnnxSuspect(model, input_shape=data.input_shape, num_classes=data.num_classes, output="logits")
        pred = suspect(data.x_test).argmax(1)
    else:
        from ..training import predict_logits

        pred = predict_logits(model, data.x_test).argmax(1)
    return float((pred == data.y_test).float().mean())


def _make(folder, name, kind, family, families, victim, data, splits, seed, recipe_of):  # type: ignore[no-untyped-def]
    """(model or ONNX path, victim queries, weights file name, architecture) of one suspect."""
    from ..archs import create_model
    from ..extraction import create_attack
    from ..suspects.local import TorchSuspect
    from ..training import TrainConfig, train_model

    c, h, w = data.input_shape
    k = data.num_classes

    def fresh(arch: str = family) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(arch, in_channels=c, image_size=(h, w), num_classes=k)

    epochs = recipe_of["epochs"]

    def recipe(optimizer: str = "adam") -> TrainConfig:
        return TrainConfig(optimizer=optimizer, epochs=epochs, batch_size=recipe_of["batch_size"], seed=seed,
                           augment=recipe_of["augment"], cpu_bf16=recipe_of["cpu_bf16"])  # fmt: skip

    def save(model: nn.Module) -> str:
        file = f"{name}.safetensors"
        save_tensors(folder / file, model.state_dict())
        return file

    pool_idx = splits["pool"]
    pool = data.x_train[pool_idx]
    budget = len(pool) if recipe_of["budget"] is None else min(recipe_of["budget"], len(pool))
    oracle = TorchSuspect(victim, input_shape=(c, h, w), num_classes=k, name="victim")
    if kind in HONEST:
        from ..family_null import train_honest

        model = train_honest(family, HONEST_TRAINING[kind], data, splits, seed=seed, epochs=epochs,
                             batch_size=recipe_of["batch_size"], augment=recipe_of["augment"],
                             cpu_bf16=recipe_of["cpu_bf16"])  # fmt: skip
        return model, 0, save(model), family
    if kind in ("copy-knockoff", "copy-copycat", "copy-jbda", "copy-cloudleak"):
        attack = create_attack(
            kind.removeprefix("copy-"), **({"budget": budget} if kind in ("copy-knockoff", "copy-copycat") else {})
        )
        result = attack.run(oracle, pool, make_model=fresh, train=recipe(), progress=False)
        return result.model, result.queries, save(result.model), family
    if kind in ("copy-art-random", "copy-art-adaptive"):
        model, queries = _art_knockoff(
            oracle, pool, data.y_train[pool_idx], fresh(), adaptive=kind.endswith("adaptive"), seed=seed,
            epochs=recipe_of["art_epochs"], schedule=recipe_of["art_schedule"], augment=recipe_of["augment"],
            budget=budget,
        )
        return model, queries, save(model), family
    base = _base_copy(folder, family, data)
    if kind == "mod-finetune":
        from ..modify import create_modification

        pick = pool_idx[torch.randperm(len(pool_idx), generator=torch.Generator().manual_seed(seed))[:5000]]
        model = create_modification("finetune:2").apply(base, x=data.x_train[pick], y=data.y_train[pick], seed=seed)
        return model, 0, save(model), family
    if kind == "mod-prune60":
        from ..modify import create_modification

        model = create_modification("prune:0.6").apply(base)
        return model, 0, save(model), family
    if kind == "mod-int8":
        return _int8_onnx(folder, name, base, (c, h, w)), 0, f"{name}.onnx", family
    if kind == "mod-advtrain":
        model = _adversarial_training(base, pool, seed=seed)
        return model, 0, save(model), family
    if kind == "mod-distill":
        student_arch = families[(families.index(family) + 1) % len(families)]
        student = fresh(student_arch)
        with torch.no_grad():
            soft = torch.cat([torch.softmax(base(pool[i : i + 1000]), 1) for i in range(0, len(pool), 1000)])
        train_model(student, pool, soft, config=recipe(), progress=False, desc=name)
        return student.eval(), 0, save(student), student_arch
    raise ValueError(f"unknown suspect kind {kind!r}")


def _base_copy(folder: Path, family: str, data: Any) -> nn.Module:
    """The knockoff copy of ``family`` (built first), which the modifications start from."""
    rec = SuspectRecord(**json.loads((folder / f"{family}-copy-knockoff.json").read_text()))
    return copy.deepcopy(load_suspect_model(folder, rec, data))


class _TrainTimeAugment(nn.Module):
    """A thief's model with its augmentation inside (random crop and flip in training mode only,
    as Keras's preprocessing layers do): how augmentation reaches a training loop such as ART's,
    which preprocesses the data once, before its epochs."""

    def __init__(self, net: nn.Module, augment: str, seed: int) -> None:
        super().__init__()
        from ..training import _parse_augment

        self.net, self.aug = net, _parse_augment(augment)
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..training import augment_batch

        return self.net(augment_batch(x, self.aug, self.gen) if self.training else x)


def _art_knockoff(oracle, pool, pool_labels, model, *, adaptive, seed, epochs, schedule="constant", augment="none",
                  budget=20000):  # type: ignore[no-untyped-def]  # fmt: skip
    """adversarial-robustness-toolbox's KnockoffNets: the victim behind ART's BlackBoxClassifier
    (which calls our query-counting oracle), the thief's model trained by ART's own loop (Adam at
    1e-3, constant or decaying as a cosine over the epochs; the augmentation inside the model)."""
    from art.attacks.extraction import KnockoffNets
    from art.estimators.classification import BlackBoxClassifier

    c, h, w = oracle.input_shape
    k = oracle.num_classes

    def predict(x: np.ndarray) -> np.ndarray:
        return oracle(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()

    class Knockoff(KnockoffNets):  # type: ignore[misc]
        @staticmethod
        def _sample_data(x: np.ndarray, y: np.ndarray, action: int) -> np.ndarray:
            # ART returns a view of a per-class copy of the pool, which keeps that copy alive: about
            # 9 MB per query here, 27 GB for 3,000. A copy of the one image keeps the same algorithm.
            return KnockoffNets._sample_data(x, y, action).copy()

    from ..training import training_device

    device = "gpu" if training_device().type == "cuda" else "cpu"
    np.random.seed(seed)
    torch.manual_seed(seed)
    victim = BlackBoxClassifier(predict, input_shape=(c, h, w), nb_classes=k, clip_values=(0.0, 1.0))
    net = _TrainTimeAugment(model, augment, seed) if augment != "none" else model
    thief = _art_thief(net, schedule, input_shape=(c, h, w), nb_classes=k, device_type=device)
    x = pool.numpy()
    attack = Knockoff(
        classifier=victim, batch_size_fit=128, batch_size_query=500, nb_epochs=epochs,
        nb_stolen=3000 if adaptive else budget, sampling_strategy="adaptive" if adaptive else "random",
        reward="all", verbose=False,
    )  # fmt: skip
    before = oracle.queries
    if adaptive:
        attack.extract(x=x, y=pool_labels.numpy(), thieved_classifier=thief)
    else:
        attack.extract(x=x, thieved_classifier=thief)
    return model.eval(), oracle.queries - before


def _art_thief(net: nn.Module, schedule: str, *, lr: float = 1e-3, **kwargs: Any) -> Any:
    """ART's PyTorchClassifier for the thief's ``net``: Adam at ``lr``, and with ``cosine`` the rate
    decaying over the epochs of each ``fit`` (ART steps a scheduler once per epoch; the adaptive
    strategy fits once per query, then on everything: each fit starts again from ``lr``)."""
    from art.estimators.classification import PyTorchClassifier

    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    class Thief(PyTorchClassifier):  # type: ignore[misc]
        def fit(self, x, y, **fit_kwargs):  # type: ignore[no-untyped-def]
            if schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = lr
                fit_kwargs["scheduler"] = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, fit_kwargs["nb_epochs"])
            return super().fit(x, y, **fit_kwargs)

    return Thief(model=net, loss=nn.CrossEntropyLoss(), optimizer=optimizer, clip_values=(0.0, 1.0), **kwargs)


def _int8_onnx(folder: Path, name: str, model: nn.Module, shape: tuple[int, int, int]) -> str:
    """The model exported to ONNX and its weights quantized to INT8 by ONNX Runtime."""
    import warnings

    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = folder / f"{name}.fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(2, *shape),), str(fp32), input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}},
                          dynamo=False)  # fmt: skip
    out = folder / f"{name}.onnx"
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8)
    fp32.unlink()
    return str(out)


def _adversarial_training(model: nn.Module, pool: torch.Tensor, *, seed: int, iterations: int = 60) -> nn.Module:
    """Fine-tune on DeepFool examples of the model itself, labelled as the clean images (paper section 5.4:
    batches of 128, a low learning rate), which moves the boundary the fingerprint reads."""
    from ..uap import deepfool

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    for _ in range(iterations):
        x = pool[torch.randint(len(pool), (128,), generator=gen)]
        model.eval()
        df = deepfool(model, x, max_iter=10)
        x_adv = (x + df.perturbation).clamp(0, 1)
        model.train()
        loss = nn.functional.cross_entropy(model(torch.cat([x, x_adv])), torch.cat([df.labels, df.labels]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
