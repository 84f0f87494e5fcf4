"""The model zoo: a victim, honest homologous models and piracy models, as data.

A zoo is a folder: ``zoo.json`` (the resolved configuration), ``splits.safetensors`` (D_V and
the attacker's pool) and ``models/``, one safetensors file and one JSON card per model. A
model counts as finished only when its card exists and its weights match the card's
SHA-256; both are written atomically, weights first, so an interrupted build leaves nothing
half-written that could be read as finished, and rerunning resumes where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import os
import platform
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .archs import create_model, list_archs, load_factory
from .data import (
    Dataset,
    DatasetSpec,
    SplitConfig,
    attacker_pool,
    homologous_indices,
    load_dataset,
    victim_indices,
)
from .errors import ConfigError
from .extraction import create_attack
from .storage import (
    ensure_writable_dir,
    load_state_dict,
    load_tensors,
    read_json,
    save_tensors,
    sha256_bytes,
    sha256_file,
    write_json,
)
from .suspects import TorchSuspect
from .training import BATCH_SIZES, OPTIMIZERS, TrainConfig, predict_logits, train_model

log = logging.getLogger(__name__)

ROLES = ("victim", "piracy", "homologous")
CARD_FORMAT = "uapfp-model-card/1"
ZOO_FORMAT = "uapfp-zoo/1"


@dataclass(frozen=True)
class ZooConfig:
    """What a zoo holds. Counts are per (architecture, optimizer) cell.

    ``attacks`` are assigned to piracy models round-robin, so that every architecture sees
    every attack once it has as many piracy models as there are attacks.
    ``homologous_overlaps`` (default: the split's single overlap) and ``pool_fractions`` (the
    share of the attacker's pool a thief holds) are cycled over homologous and piracy models,
    so that the zoo spans honest models trained on data from disjoint to identical to D_V,
    and thieves with small and large pools.
    Jobs are planned in rounds, each a pass over the cells: ``rounds`` gives the (piracy,
    homologous) counts per cell of the leading rounds, and a last round adds the rest up to
    the totals. Seeds, batch sizes and attacks are drawn in that order, so a zoo grown by one
    more round keeps every model it has (the ``small`` preset grew from 2 + 3 to 4 + 6, then 6 + 9 that way).
    ``include_victim_arch`` adds the victim's own architecture (a user's factory too) to
    ``archs``: thieves often reuse a public architecture, and an encoder that never saw
    honest models of the victim's architecture cannot tell them from the victim.
    """

    dataset: str = "fashion-mnist"
    archs: tuple[str, ...] = ("A", "B", "C", "D", "E")
    optimizers: tuple[str, ...] = OPTIMIZERS
    piracy_per_cell: int = 2
    homologous_per_cell: int = 2
    attacks: tuple[str, ...] = ("knockoff", "copycat", "jbda", "cloudleak")
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    victim_arch: str = "A"
    victim_optimizer: str = "adam"
    victim_batch_size: int = 128
    epochs: int = 5
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    split: SplitConfig = field(default_factory=SplitConfig)
    include_victim_arch: bool = True
    homologous_overlaps: tuple[float, ...] | None = None
    pool_fractions: tuple[float, ...] = (1.0,)
    rounds: tuple[tuple[int, int], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for a in self.archs:
            if ":" not in a and a not in list_archs():
                raise ConfigError(
                    f"unknown architecture {a!r}; choose from {', '.join(list_archs())} or package.module:factory"
                )
        for o in self.optimizers:
            TrainConfig(optimizer=o)
        for at in self.attacks:
            create_attack(at, **self.attack_options.get(at, {}))
        if not self.attacks and self.piracy_per_cell:
            raise ConfigError("piracy models need at least one extraction attack")
        if any(len(r) != 2 or min(r) < 0 for r in self.rounds):
            raise ConfigError("rounds are (piracy, homologous) counts per cell, each >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("archs", "optimizers", "attacks", "batch_sizes", "homologous_overlaps", "pool_fractions"):
            d[k] = list(d[k]) if d[k] is not None else None
        d["rounds"] = [list(r) for r in self.rounds]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZooConfig:
        d = dict(d)
        for k in ("archs", "optimizers", "attacks", "batch_sizes", "homologous_overlaps", "pool_fractions"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        d["rounds"] = tuple(tuple(r) for r in d.get("rounds", ()))
        if "split" in d:
            d["split"] = SplitConfig(**d["split"])
        return cls(**d)


# Scaled-down attack budgets for the 6,000-image slice (its pool holds 3,000 images).
_TINY_ATTACKS = {
    "jbda": {"seed_size": 1000, "rounds": 2, "round_epochs": 2},
    "cloudleak": {"natural": 2000, "adversarial": 1000},
}

PRESETS: dict[str, ZooConfig] = {
    "tiny": ZooConfig(
        dataset="fashion-mnist-slice",
        optimizers=("adam",),
        piracy_per_cell=2,
        homologous_per_cell=3,
        attack_options=_TINY_ATTACKS,
        epochs=4,
        batch_sizes=(128,),
    ),
    "small": ZooConfig(piracy_per_cell=6, homologous_per_cell=9, rounds=((2, 3), (2, 3))),
    "paper": ZooConfig(
        archs=("B", "C", "D", "E"),
        include_victim_arch=False,
        piracy_per_cell=10,
        homologous_per_cell=10,
        attacks=("cloudleak",),
    ),
}


def preset(name: str, **overrides: Any) -> ZooConfig:
    """A named preset (``tiny``, ``small``, ``paper``) with optional field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Job:
    """One model to train."""

    id: str
    role: str
    arch: str
    optimizer: str
    batch_size: int
    seed: int
    attack: str | None = None
    overlap: float | None = None
    pool_fraction: float | None = None


def _safe_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plan_rounds(config: ZooConfig) -> list[tuple[int, int]]:
    """The (piracy, homologous) counts per cell of each planning round, summing to the totals."""
    rounds, left = [], [config.piracy_per_cell, config.homologous_per_cell]
    for r in config.rounds:
        take = [min(n, k) for n, k in zip(r, left)]
        rounds.append((take[0], take[1]))
        left = [k - t for k, t in zip(left, take)]
    if any(left):
        rounds.append((left[0], left[1]))
    return rounds


def plan_jobs(config: ZooConfig) -> list[Job]:
    """The deterministic list of homologous and piracy models of ``config``, round by round."""
    rng = np.random.default_rng([config.seed, 0x200])
    jobs: list[Job] = []
    piracy_index = homologous_index = 0
    overlaps = config.homologous_overlaps or (config.split.homologous_overlap,)
    done: dict[tuple[str, str, str], int] = {}  # models planned so far per (arch, optimizer, role)
    for counts in plan_rounds(config):
        for arch, opt in itertools.product(config.archs, config.optimizers):
            for role, count in zip(("piracy", "homologous"), counts):
                first = done.get((arch, opt, role), 0)
                done[(arch, opt, role)] = first + count
                for i in range(first, first + count):
                    attack = overlap = fraction = None
                    if role == "piracy":
                        attack = config.attacks[piracy_index % len(config.attacks)]
                        # Cycled at a different period than the attacks, so that they mix.
                        fraction = config.pool_fractions[
                            (piracy_index // len(config.attacks)) % len(config.pool_fractions)
                        ]
                        piracy_index += 1
                    else:
                        overlap = overlaps[homologous_index % len(overlaps)]
                        homologous_index += 1
                    jobs.append(
                        Job(
                            id=f"{role}-{_safe_id(arch)}-{opt}-{i:02d}",
                            role=role,
                            arch=arch,
                            optimizer=opt,
                            batch_size=int(rng.choice(config.batch_sizes)),
                            seed=int(rng.integers(0, 2**31 - 1)),
                            attack=attack,
                            overlap=overlap,
                            pool_fraction=fraction,
                        )
                    )
    return jobs


@dataclass
class VictimSource:
    """A user's own victim: an architecture factory, weights, and its training data spec."""

    factory: str | None = None
    weights: str | None = None
    data: str | None = None


# --------------------------------------------------------------------------- cards and loading


def job_train_config(config: ZooConfig, job: Job) -> TrainConfig:
    """The training recipe of one zoo model; a finished model with another recipe is trained again."""
    return TrainConfig(optimizer=job.optimizer, batch_size=job.batch_size, epochs=config.epochs, seed=job.seed)


def card_path(zoo_dir: Path, model_id: str) -> Path:
    return zoo_dir / "models" / f"{model_id}.json"


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model card."""
    card = read_json(path)
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ConfigError(f"{path} is not a uapfp model card")
    card["_path"] = str(path)
    return card


def card_is_finished(path: Path) -> bool:
    """A card exists and its weights file matches the card's SHA-256."""
    if not path.is_file():
        return False
    try:
        card = read_card(path)
    except ConfigError:
        return False
    weights = path.parent / card["weights"]
    return weights.is_file() and sha256_file(weights) == card.get("weights_sha256")


def load_model_from_card(card: dict[str, Any] | str | os.PathLike[str], *, verify_hash: bool = True) -> nn.Module:
    """Rebuild a zoo model from its card (safetensors or TorchScript weights, never a pickle)."""
    if not isinstance(card, dict):
        card = read_card(card)
    weights = Path(card["_path"]).parent / card["weights"]
    if verify_hash and sha256_file(weights) != card["weights_sha256"]:
        raise ConfigError(f"{weights} does not match the SHA-256 in its card; rebuild this model")
    if card.get("weights_format") == "torchscript":
        return torch.jit.load(str(weights), map_location="cpu").eval()
    c, h, w = card["input_shape"]
    model = create_model(card["arch"], in_channels=c, image_size=(h, w), num_classes=card["num_classes"])
    model.load_state_dict(load_state_dict(weights))
    return model.eval()


def card_suspect(card: dict[str, Any], **kwargs: Any) -> TorchSuspect:
    """A :class:`TorchSuspect` of a zoo model."""
    return TorchSuspect(
        load_model_from_card(card),
        input_shape=tuple(card["input_shape"]),
        num_classes=card["num_classes"],
        name=card["id"],
        **kwargs,
    )


@dataclass
class Zoo:
    """A built zoo folder: its configuration, splits and model cards."""

    path: Path
    config: ZooConfig
    cards: list[dict[str, Any]]
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Zoo:
        path = Path(path)
        meta_path = path / "zoo.json"
        if not meta_path.is_file():
            raise ConfigError(f"{path} is not a zoo (no zoo.json); build one with: uapfp zoo build --out {path}")
        meta = read_json(meta_path)
        cards = []
        for card_file in sorted((path / "models").glob("*.json")):
            if card_is_finished(card_file):
                cards.append(read_card(card_file))
        return cls(path=path, config=ZooConfig.from_dict(meta["config"]), cards=cards, info=meta)

    @property
    def victim(self) -> dict[str, Any]:
        for c in self.cards:
            if c["role"] == "victim":
                return c
        raise ConfigError(f"zoo {self.path} has no finished victim; rerun uapfp zoo build")

    def select(self, role: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.cards if role is None or c["role"] == role]

    def splits(self) -> dict[str, torch.Tensor]:
        return load_tensors(self.path / "splits.safetensors")

    def load_dataset(self, data_dir: str | None = None) -> Dataset:
        return load_dataset(self.config.dataset, data_dir=data_dir)


# --------------------------------------------------------------------------- building


def _metrics(
    model: nn.Module, data: Dataset, victim_pred: torch.Tensor | None, victim_acc: float | None
) -> dict[str, float]:
    pred = predict_logits(model, data.x_test).argmax(1)
    acc = float((pred == data.y_test).float().mean())
    out = {"test_accuracy": round(acc, 5)}
    if victim_pred is not None:
        out["fidelity"] = round(float((pred == victim_pred).float().mean()), 5)
    if victim_acc:
        out["recovery_rate"] = round(acc / victim_acc, 5)
    return out


def _environment() -> dict[str, Any]:
    return {
        "uapfp": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
    }


def _write_model(
    out: Path, model_id: str, model: nn.Module | None, card: dict[str, Any], *, weights_file: Path | None = None
) -> dict[str, Any]:
    """Write weights (atomically), then the card (atomically): the card marks completion."""
    models = out / "models"
    if weights_file is None:
        assert model is not None
        target = models / f"{model_id}.safetensors"
        sha = save_tensors(target, model.state_dict())
    else:
        target = models / f"{model_id}{weights_file.suffix}"
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(weights_file, tmp)
        os.replace(tmp, target)
        sha = sha256_file(target)
    card = {"format": CARD_FORMAT, "id": model_id, **card, "weights": target.name, "weights_sha256": sha}
    write_json(card_path(out, model_id), card)
    card["_path"] = str(card_path(out, model_id))
    return card


def _resolve_victim_data(spec: str | None, n_train: int, config: ZooConfig) -> np.ndarray:
    if spec is None:
        return victim_indices(n_train, seed=config.seed, fraction=config.split.victim_fraction)
    idx = DatasetSpec.parse(spec).indices(n_train)
    if idx is None:
        return victim_indices(n_train, seed=config.seed, fraction=config.split.victim_fraction)
    return np.unique(idx)


def build_zoo(
    out: str | os.PathLike[str],
    config: ZooConfig,
    *,
    victim: VictimSource | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    dataset: Dataset | None = None,
) -> Zoo:
    """Train (or resume) a zoo into ``out`` and return it.

    Finished models are skipped; a model interrupted mid-training is trained again.
    """
    out = Path(out)
    ensure_writable_dir(out)
    victim = victim or VictimSource()
    if victim.factory:
        load_factory(victim.factory)  # fail early with a clear message
    if config.include_victim_arch:
        own = victim.factory if victim.factory else (None if victim.weights else config.victim_arch)
        if own is not None and own not in config.archs:
            config = replace(config, archs=(*config.archs, own))
        elif own is None:
            log.warning("a TorchScript victim has no architecture to rebuild: the zoo holds none of its kind")
    data = dataset or load_dataset(config.dataset, data_dir=data_dir)
    meta_path = out / "zoo.json"
    identity = {"dataset": config.dataset, "seed": config.seed, "split": asdict(config.split), "victim": asdict(victim)}
    if meta_path.is_file():
        old = read_json(meta_path)
        if old.get("identity") != identity:
            raise ConfigError(
                f"{out} holds a zoo built with other settings ({old.get('identity')}); "
                "use a new --out folder or the same dataset, seed, split and victim"
            )
    n_train = len(data.x_train)
    v_idx = _resolve_victim_data(victim.data, n_train, config)
    pool_idx = attacker_pool(n_train, v_idx, disjoint=config.split.pool_disjoint)
    splits_path = out / "splits.safetensors"
    save_tensors(splits_path, {"victim": torch.from_numpy(v_idx), "pool": torch.from_numpy(pool_idx)})
    jobs = plan_jobs(config)
    write_json(
        meta_path,
        {
            "format": ZOO_FORMAT,
            "identity": identity,
            "config": config.to_dict(),
            "dataset": data.describe(),
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "jobs": [asdict(j) for j in jobs],
            "environment": _environment(),
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    c, h, w = data.input_shape
    common = {"input_shape": [c, h, w], "num_classes": data.num_classes, "dataset": config.dataset}
    x_v, y_v = data.x_train[torch.from_numpy(v_idx)], data.y_train[torch.from_numpy(v_idx)]
    pool = data.x_train[torch.from_numpy(pool_idx)]

    bar = tqdm(total=len(jobs) + 1, desc="zoo", unit="model", disable=not progress)
    try:
        # ---- the victim
        vpath = card_path(out, "victim")
        if card_is_finished(vpath):
            vcard = read_card(vpath)
        else:
            vcard = _train_victim(out, config, victim, data, x_v, y_v, v_idx, common, progress)
        bar.update(1)
        victim_model = load_model_from_card(vcard)
        victim_pred = predict_logits(victim_model, data.x_test).argmax(1)
        victim_acc = vcard["test_accuracy"]
        log.info("victim: test accuracy %.4f", victim_acc)

        # ---- homologous and piracy models
        for job in jobs:
            path = card_path(out, job.id)
            if card_is_finished(path):
                card = read_card(path)
                attack_name = (card.get("attack") or {}).get("name")
                same = card["job"] == asdict(job) if "job" in card else (
                    (card["role"], card["arch"], card["optimizer"], attack_name, card["seed"])
                    == (job.role, job.arch, job.optimizer, job.attack, job.seed)
                )  # fmt: skip
                if not same:
                    raise ConfigError(f"{path} was trained with other settings than this plan; use a new --out folder")
                if card.get("train") == job_train_config(config, job).to_dict():
                    bar.update(1)
                    continue
                log.warning("%s was trained with an older recipe (%s); training it again", job.id, card.get("train"))
            bar.set_postfix_str(job.id)
            _train_job(
                out, config, job, data, x_v, v_idx, pool, victim_model, victim_pred, victim_acc, common, progress
            )
            bar.update(1)
    finally:
        bar.close()
    return Zoo.load(out)


def _train_victim(
    out: Path, config: ZooConfig, victim: VictimSource, data: Dataset, x_v: torch.Tensor, y_v: torch.Tensor,
    v_idx: np.ndarray, common: dict[str, Any], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    data_info = {"split": "victim", "size": len(v_idx), "indices_sha256": sha256_bytes(v_idx.astype("<i8").tobytes())}
    if victim.factory or victim.weights:
        if not (victim.factory and victim.weights) and not (victim.weights and _is_torchscript(victim.weights)):
            raise ConfigError("a victim of your own needs --victim package.module:factory and --victim-weights FILE")
        start = time.perf_counter()
        weights = Path(victim.weights)  # type: ignore[arg-type]
        if _is_torchscript(weights):
            model = torch.jit.load(str(weights), map_location="cpu").eval()
            fmt, arch = "torchscript", "torchscript"
        else:
            c, h, w = data.input_shape
            model = create_model(victim.factory, in_channels=c, image_size=(h, w), num_classes=data.num_classes)  # type: ignore[arg-type]
            try:
                model.load_state_dict(load_state_dict(weights))
            except RuntimeError as exc:
                raise ConfigError(f"{weights} does not fit {victim.factory}: {str(exc).splitlines()[0]}") from None
            fmt, arch = "safetensors", victim.factory
        model.eval()
        card = {
            "role": "victim", "arch": arch, "optimizer": None, "batch_size": None, "seed": None, **common,
            "data": data_info, "attack": None, "queries": 0, "train": None, "source": str(weights),
            **_metrics(model, data, None, None), "fidelity": 1.0, "recovery_rate": 1.0,
            "train_seconds": 0.0, "wall_seconds": round(time.perf_counter() - start, 2), "weights_format": fmt,
        }  # fmt: skip
        if fmt == "torchscript":
            return _write_model(out, "victim", None, card, weights_file=weights)
        return _write_model(out, "victim", model, card)
    start = time.perf_counter()
    tc = TrainConfig(
        optimizer=config.victim_optimizer, batch_size=config.victim_batch_size, epochs=config.epochs, seed=config.seed
    )
    c, h, w = data.input_shape
    torch.manual_seed(config.seed)
    model = create_model(config.victim_arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    result = train_model(model, x_v, y_v, config=tc, progress=progress, desc="victim")
    card = {
        "role": "victim", "arch": config.victim_arch, "optimizer": tc.optimizer, "batch_size": tc.batch_size,
        "seed": tc.seed, **common, "data": data_info, "attack": None, "queries": 0, "train": tc.to_dict(),
        **_metrics(model, data, None, None), "fidelity": 1.0, "recovery_rate": 1.0,
        "train_seconds": round(result.seconds, 2), "wall_seconds": round(time.perf_counter() - start, 2),
        "weights_format": "safetensors",
    }  # fmt: skip
    return _write_model(out, "victim", model, card)


def _is_torchscript(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.suffix in (".pt", ".pth", ".ts", ".torchscript") and p.is_file() and _zip_has_constants(p)


def _zip_has_constants(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def _train_job(
    out: Path, config: ZooConfig, job: Job, data: Dataset, x_v: torch.Tensor, v_idx: np.ndarray, pool: torch.Tensor,
    victim_model: nn.Module, victim_pred: torch.Tensor, victim_acc: float, common: dict[str, Any], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    start = time.perf_counter()
    c, h, w = data.input_shape
    tc = job_train_config(config, job)
    torch.manual_seed(job.seed)

    def make_model() -> nn.Module:
        return create_model(job.arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)

    if job.role == "homologous":
        n_train = len(data.x_train)
        overlap = job.overlap  # plan_jobs gives every homologous job its overlap
        assert overlap is not None
        h_idx = homologous_indices(n_train, v_idx, seed=job.seed, overlap=overlap)
        model = make_model()
        sel = torch.from_numpy(h_idx)
        result = train_model(model, data.x_train[sel], data.y_train[sel], config=tc, progress=progress, desc=job.id)
        train_seconds, queries, attack_card = result.seconds, 0, None
        data_info = {
            "split": "homologous", "size": len(h_idx), "overlap": overlap,
            "split_seed": job.seed, "indices_sha256": sha256_bytes(h_idx.astype("<i8").tobytes()),
        }  # fmt: skip
    else:
        assert job.attack is not None
        attack = create_attack(job.attack, **config.attack_options.get(job.attack, {}))
        oracle = TorchSuspect(victim_model, input_shape=(c, h, w), num_classes=data.num_classes, name="victim")
        fraction = job.pool_fraction  # plan_jobs gives every piracy job its pool fraction
        assert fraction is not None
        if fraction < 1.0:  # a thief with a smaller pool: a seeded subset of it
            keep = torch.randperm(len(pool), generator=torch.Generator().manual_seed(job.seed))
            pool = pool[keep[: max(1, round(fraction * len(pool)))]]
        result_x = attack.run(oracle, pool, make_model=make_model, train=tc, progress=progress)
        model, train_seconds, queries = result_x.model, result_x.train_seconds, result_x.queries
        attack_card = {"name": attack.name, "hyperparameters": attack.hyperparameters(), **result_x.details}
        data_info = {
            "split": "pool", "size": len(pool), "fraction": fraction, "disjoint_from_victim": config.split.pool_disjoint,
        }  # fmt: skip
    card = {
        "role": job.role, "arch": job.arch, "optimizer": job.optimizer, "batch_size": job.batch_size,
        "seed": job.seed, "job": asdict(job), **common, "data": data_info, "attack": attack_card, "queries": queries,
        "train": tc.to_dict(), **_metrics(model, data, victim_pred, victim_acc),
        "train_seconds": round(train_seconds, 2), "wall_seconds": round(time.perf_counter() - start, 2),
        "weights_format": "safetensors",
    }  # fmt: skip
    card = _write_model(out, job.id, model, card)
    log.info(
        "%s: accuracy %.4f fidelity %.4f queries %d (%.1f s)",
        job.id, card["test_accuracy"], card.get("fidelity", float("nan")), queries, card["wall_seconds"],
    )  # fmt: skip
    return card


def zoo_table(zoo: Zoo, *, roles: Iterable[str] = ROLES) -> list[dict[str, Any]]:
    """One row per finished model, for ``uapfp zoo list`` and docs."""
    rows = []
    order = {r: i for i, r in enumerate(ROLES)}
    for card in sorted(zoo.cards, key=lambda c: (order.get(c["role"], 9), c["id"])):
        if card["role"] not in roles:
            continue
        rows.append(
            {
                "id": card["id"],
                "role": card["role"],
                "arch": card["arch"],
                "opt": card.get("optimizer") or "-",
                "batch": card.get("batch_size") or "-",
                "attack": (card.get("attack") or {}).get("name", "-"),
                "queries": card.get("queries", 0),
                "accuracy": card.get("test_accuracy"),
                "fidelity": card.get("fidelity"),
                "recovery": card.get("recovery_rate"),
                "train_s": card.get("train_seconds"),
                "wall_s": card.get("wall_seconds"),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]], *, markdown: bool = False) -> str:
    """Rows of dicts as an aligned plain-text (or Markdown) table."""
    if not rows:
        return "(empty)"
    cols = list(rows[0])

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return "-" if v is None else str(v)

    cells = [[fmt(r[c]) for c in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
