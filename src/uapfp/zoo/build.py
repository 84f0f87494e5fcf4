"""Building (and resuming) a zoo: the victim, homologous models and piracy models.

A model counts as finished only when its card exists and its weights match the card's
SHA-256; both are written atomically, weights first, so an interrupted build leaves nothing
half-written that could be read as finished, and rerunning resumes where it stopped.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..archs import create_model, load_factory, module_of, trusting
from ..cards import CARD_FORMAT, card_is_finished, card_path, load_model_from_card, read_card
from ..data import Dataset, DatasetSpec, attacker_pool, homologous_indices, load_dataset, victim_indices
from ..errors import ConfigError, UapfpError
from ..extraction import create_attack
from ..modelfiles import is_torchscript, load_torchscript, model_with_weights
from ..storage import ensure_writable_dir, read_json, save_tensors, sha256_bytes, sha256_file, write_json
from ..suspects.local import TorchSuspect
from ..training import TrainConfig, predict_logits, train_model, training_device
from .config import Job, ZooConfig, job_train_config, plan_jobs, plan_siblings, victim_epochs
from .folder import ZOO_FORMAT, Zoo

log = logging.getLogger(__name__)


@dataclass
class VictimSource:
    """A user's own victim: an architecture factory, weights, and its training data spec.

    ``siblings``: weights files of the victim's siblings, trained by the owner as the victim was
    (its architecture, recipe and exact training data, other seeds), in the victim's format; the
    zoo then holds these instead of training siblings with its own recipe (docs/method.md).
    """

    factory: str | None = None
    weights: str | None = None
    data: str | None = None
    siblings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.siblings, (str, os.PathLike)):
            raise ConfigError("siblings are a list of weights files, not one path")
        self.siblings = tuple(os.fspath(p) for p in self.siblings)


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
        "training_device": str(training_device()),
    }


def _write_model(
    out: Path,
    model_id: str,
    model: nn.Module | dict[str, torch.Tensor] | None,
    card: dict[str, Any],
    *,
    weights_file: Path | None = None,
) -> dict[str, Any]:
    """Write weights (a model's or a state dict, atomically), then the card (atomically): the card marks completion."""
    models = out / "models"
    if weights_file is None:
        assert model is not None
        target = models / f"{model_id}.safetensors"
        sha = save_tensors(target, model if isinstance(model, dict) else model.state_dict())
    else:
        models.mkdir(parents=True, exist_ok=True)
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
    ray_address: str | None = None,
) -> Zoo:
    """Train (or resume) a zoo into ``out`` and return it.

    Finished models are skipped; a model interrupted mid-training is trained again, and the
    temporary files a killed build left behind are removed. The architectures ``config`` and
    ``victim`` name are the caller's: their code may run (:func:`uapfp.archs.trusting`).
    With ``ray_address`` (``"local"`` for a Ray instance on this machine, or a cluster's
    address), the models after the victim train as Ray tasks, one CPU and one torch thread
    each, and this process writes their weights and cards as they finish
    (:mod:`uapfp.zoo.distributed`).
    """
    out = Path(out)
    new = not out.exists()
    ensure_writable_dir(out)
    victim = victim or VictimSource()
    named = [a for a in (*config.archs, victim.factory) if a and ":" in a]
    try:
        with trusting(module_of(a) for a in named):
            return _build_zoo(
                out, config, victim, data_dir=data_dir, progress=progress, dataset=dataset, ray_address=ray_address
            )
    except UapfpError:
        if new and not any(out.iterdir()):  # refused before anything was written: leave no empty folder behind
            out.rmdir()
        raise


def remove_orphans(out: Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``) an interrupted build left in ``out``; return them."""
    orphans = [p for sub in ("models", "cache", ".") for p in (out / sub).glob(".*.tmp") if p.is_file()]
    for p in orphans:
        p.unlink(missing_ok=True)
    if orphans:
        log.info("removed %d temporary files left by an interrupted build", len(orphans))
    return orphans


def _build_zoo(
    out: Path, config: ZooConfig, victim: VictimSource, *, data_dir: str | None, progress: bool,
    dataset: Dataset | None, ray_address: str | None,
) -> Zoo:  # fmt: skip
    remove_orphans(out)
    if victim.factory:
        load_factory(victim.factory)  # fail early with a clear message
    if config.include_victim_arch:
        own = victim.factory if victim.factory else (None if victim.weights else config.victim_arch)
        if own is not None and own not in config.archs:
            config = replace(config, archs=(*config.archs, own))
        elif own is None:
            log.warning("a TorchScript victim has no architecture to rebuild: the zoo holds none of its kind")
    data = dataset or load_dataset(config.dataset, data_dir=data_dir)
    sibling_digests = _check_handed_in(victim, data) if victim.siblings else []  # before anything is written
    meta_path = out / "zoo.json"
    # as JSON reads it back; a zoo built before siblings could be handed in has no "siblings" key, and
    # a sibling's file changed at the same path is another zoo
    given = {**asdict(victim), "siblings": list(victim.siblings)}
    if victim.siblings:
        given["siblings_sha256"] = sibling_digests
    else:
        del given["siblings"]
    identity = {"dataset": config.dataset, "seed": config.seed, "split": asdict(config.split), "victim": given}
    if meta_path.is_file():
        old = read_json(meta_path)
        if not isinstance(old, dict) or old.get("identity") != identity:
            raise ConfigError(
                f"{out} holds a zoo built with other settings ({old.get('identity') if isinstance(old, dict) else old!r:.200}); "
                "use a new --out folder or the same dataset, seed, split and victim"
            )
    _check_victim_unchanged(out, victim)
    n_train = len(data.x_train)
    v_idx = _resolve_victim_data(victim.data, n_train, config)
    pool_idx = attacker_pool(n_train, v_idx, disjoint=config.split.pool_disjoint)
    splits_path = out / "splits.safetensors"
    save_tensors(splits_path, {"victim": torch.from_numpy(v_idx), "pool": torch.from_numpy(pool_idx)})
    jobs = plan_jobs(config)
    own = victim.factory or (None if victim.weights else config.victim_arch)
    if victim.siblings:
        log.info("%d siblings handed in: the zoo trains none of its own", len(victim.siblings))
        config = replace(config, siblings=0)
    elif own is not None:
        jobs += plan_siblings(config, own)
    elif config.siblings:
        log.warning("a TorchScript victim has no architecture to rebuild: the zoo holds no siblings of it")
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

    bar = tqdm(total=len(jobs) + 1 + len(victim.siblings), desc="zoo", unit="model", disable=not progress)
    try:
        # ---- the victim
        vpath = card_path(out, "victim")
        if card_is_finished(vpath):
            vcard = read_card(vpath)
            if vcard.get("train") is not None and not _victim_train_config(config).matches(vcard["train"]):
                hint = ""
                if bool(vcard["train"].get("cpu_bf16", False)) != config.cpu_bf16:
                    hint = (f" (it was trained in {'float32' if config.cpu_bf16 else 'bfloat16'}: a preset trains in"
                            " bfloat16 only on a CPU with AMX, so resume on a machine of the kind that began it)")  # fmt: skip
                raise ConfigError(
                    f"{vpath} was trained with another recipe ({vcard['train']}) than this zoo's{hint}; every model "
                    "is measured against the victim: use a new --out folder"
                )
        else:
            vcard = _train_victim(out, config, victim, data, x_v, y_v, v_idx, common, progress)
        bar.update(1)
        victim_model = load_model_from_card(vcard)
        victim_pred = predict_logits(victim_model, data.x_test).argmax(1)
        victim_acc = vcard["test_accuracy"]
        log.info("victim: test accuracy %.4f", victim_acc)
        for i, weights in enumerate(victim.siblings):
            if not card_is_finished(card_path(out, f"sibling-{i:02d}")):
                _write_handed_in_sibling(out, i, weights, victim, data, victim_pred, victim_acc, common, vcard["data"])
            bar.update(1)

        # ---- homologous and piracy models
        pending = []
        for job in jobs:
            if _is_done(out, config, job):
                bar.update(1)
            else:
                pending.append(job)
        if ray_address is not None:
            from .distributed import run_on_ray

            run_on_ray(out, config, pending, data, v_idx, pool_idx, vcard, common, address=ray_address, bar=bar)
            pending = []
        for job in pending:
            bar.set_postfix_str(job.id)
            _train_job(out, config, job, data, v_idx, pool, victim_model, victim_pred, victim_acc, common, progress)
            bar.update(1)
    finally:
        bar.close()
    return Zoo.load(out)


def _is_done(out: Path, config: ZooConfig, job: Job) -> bool:
    """Whether ``job``'s model is finished with the current recipe (refusing a card of another plan)."""
    path = card_path(out, job.id)
    if not card_is_finished(path):
        return False
    card = read_card(path)
    attack_name = (card.get("attack") or {}).get("name")
    same = card["job"] == asdict(job) if "job" in card else (
        (card["role"], card["arch"], card["optimizer"], attack_name, card["seed"])
        == (job.role, job.arch, job.optimizer, job.attack, job.seed)
    )  # fmt: skip
    if not same:
        raise ConfigError(f"{path} was trained with other settings than this plan; use a new --out folder")
    if job_train_config(config, job).matches(card.get("train")):
        return True
    log.warning("%s was trained with an older recipe (%s); training it again", job.id, card.get("train"))
    return False


def _train_victim(
    out: Path, config: ZooConfig, victim: VictimSource, data: Dataset, x_v: torch.Tensor, y_v: torch.Tensor,
    v_idx: np.ndarray, common: dict[str, Any], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    data_info = {"split": "victim", "size": len(v_idx), "indices_sha256": sha256_bytes(v_idx.astype("<i8").tobytes())}
    if victim.factory or victim.weights:
        if not (victim.factory and victim.weights) and not (victim.weights and is_torchscript(victim.weights)):
            raise ConfigError("a victim of your own needs --victim package.module:factory and --victim-weights FILE")
        start = time.perf_counter()
        weights = Path(victim.weights)  # type: ignore[arg-type]
        model, fmt, arch = _handed_in_model(weights, victim.factory, data)
        card = {
            "role": "victim", "arch": arch, "optimizer": None, "batch_size": None, "seed": None, **common,
            "data": data_info, "attack": None, "queries": 0, "train": None, "source": str(weights),
            "source_sha256": sha256_file(weights), **_metrics(model, data, None, None), "fidelity": 1.0, "recovery_rate": 1.0,
            "train_seconds": 0.0, "wall_seconds": round(time.perf_counter() - start, 2), "weights_format": fmt,
        }  # fmt: skip
        if fmt == "torchscript":
            return _write_model(out, "victim", None, card, weights_file=weights)
        return _write_model(out, "victim", model, card)
    start = time.perf_counter()
    tc = _victim_train_config(config)
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


def _check_victim_unchanged(out: Path, victim: VictimSource) -> None:
    """Refuse to resume a zoo whose owner's victim file changed since the zoo took it in: every model
    of the zoo was measured against the victim it holds, not against the new file. The digest is read
    from the victim's card even where the zoo's copy of the weights is damaged (the victim would then be
    taken in again, beside models measured against the old one)."""
    vpath = card_path(out, "victim")
    if not victim.weights or not vpath.is_file():
        return
    try:
        card = read_json(vpath)
    except ConfigError:  # a damaged card: nothing to check against
        return
    if not isinstance(card, dict):
        return
    recorded = card.get("source_sha256")
    if not Path(victim.weights).is_file():
        log.warning("victim weights %s are gone: resuming with the zoo's copy of the victim, unchecked", victim.weights)
        return
    if recorded is None:  # a zoo of before the file's digest was recorded
        log.warning("the zoo's victim card records no digest of %s: cannot check that it is unchanged", victim.weights)
    elif recorded != sha256_file(victim.weights):
        raise ConfigError(
            f"{victim.weights} changed since this zoo took it in as its victim (SHA-256 {recorded[:16]}...): every "
            "model of the zoo was measured against the old one; use a new --out folder for the new victim"
        )


def _handed_in_model(weights: Path, factory: str | None, data: Dataset) -> tuple[nn.Module, str, str]:
    """A model the owner hands in (a TorchScript file, or weights for ``factory``): (model, format, arch)."""
    if is_torchscript(weights):
        return load_torchscript(weights), "torchscript", "torchscript"
    if not factory:
        raise ConfigError(
            f"{weights} is no TorchScript file, and weights need the architecture (--victim module:factory)"
        )
    model = model_with_weights(factory, weights, input_shape=data.input_shape, num_classes=data.num_classes)
    return model.eval(), "safetensors", factory


def _check_handed_in(victim: VictimSource, data: Dataset) -> list[str]:
    """Refuse siblings an owner hands in that cannot be the victim's, before any work; their SHA-256."""
    if not victim.weights:
        raise ConfigError(
            "siblings handed in (--victim-siblings) need your own victim (--victim and --victim-weights): "
            "a victim the zoo trains gets siblings trained the same way"
        )
    if len(victim.siblings) < 2:
        raise ConfigError("give 2 or more siblings (they are split in two halves); 8 is the zoo's default")
    if not Path(victim.weights).is_file():
        raise ConfigError(f"victim weights {victim.weights} do not exist")
    victim_ts = is_torchscript(victim.weights)
    seen = {sha256_file(victim.weights): "the victim's weights"}
    x = data.x_test[:256]
    victim_logits = predict_logits(_handed_in_model(Path(victim.weights), victim.factory, data)[0], x)
    for weights in victim.siblings:
        path = Path(weights)
        if not path.is_file():
            raise ConfigError(f"sibling weights {path} do not exist")
        digest = sha256_file(path)
        if digest in seen:
            raise ConfigError(
                f"sibling weights {path} are the same file as {seen[digest]}: each sibling is another seed"
            )
        seen[digest] = str(path)
        if is_torchscript(path) != victim_ts:
            raise ConfigError(
                f"sibling {path} is {'' if is_torchscript(path) else 'not '}a TorchScript file and the victim is"
                f"{'' if victim_ts else ' not'}: hand in the siblings as the victim is given"
            )
        model, _, _ = _handed_in_model(path, victim.factory, data)  # refuses weights of another architecture
        try:
            logits = predict_logits(model, x)
        except Exception as exc:  # a TorchScript model may raise anything on an input it was not made for
            raise ConfigError(f"sibling {path} cannot answer the dataset's images ({type(exc).__name__})") from None
        if tuple(logits.shape) != (len(x), data.num_classes):
            raise ConfigError(f"sibling {path} does not answer {data.num_classes} classes")
        if torch.equal(logits, victim_logits):
            raise ConfigError(f"sibling {path} answers exactly as the victim does: each sibling is another seed")
    return list(seen)[1:]  # the victim's first, then the siblings' in their order


def _write_handed_in_sibling(
    out: Path, i: int, weights: str, victim: VictimSource, data: Dataset, victim_pred: torch.Tensor,
    victim_acc: float, common: dict[str, Any], data_info: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The card (and a copy of the weights) of the owner's ``i``-th sibling, trained by the owner."""
    start = time.perf_counter()
    model, fmt, arch = _handed_in_model(Path(weights), victim.factory, data)
    card = {
        "role": "sibling", "arch": arch, "optimizer": None, "batch_size": None, "seed": None, **common,
        "data": data_info, "attack": None, "queries": 0, "train": None, "source": str(weights),
        "handed_in": True, **_metrics(model, data, victim_pred, victim_acc), "train_seconds": 0.0,
        "wall_seconds": round(time.perf_counter() - start, 2), "weights_format": fmt,
    }  # fmt: skip
    if card["test_accuracy"] < victim_acc - 0.05:
        log.warning(
            "sibling %s: test accuracy %.4f against the victim's %.4f; a sibling should be trained as the victim was",
            weights, card["test_accuracy"], victim_acc,
        )  # fmt: skip
    model_id = f"sibling-{i:02d}"
    if fmt == "torchscript":
        return _write_model(out, model_id, None, card, weights_file=Path(weights))
    return _write_model(out, model_id, model, card)


def _victim_train_config(config: ZooConfig) -> TrainConfig:
    """The victim's recipe (its siblings' too)."""
    return TrainConfig(
        optimizer=config.victim_optimizer, batch_size=config.victim_batch_size, epochs=victim_epochs(config),
        seed=config.seed, augment=config.augment, cpu_bf16=config.cpu_bf16,
    )


def fit_job(
    config: ZooConfig, job: Job, data: Dataset, v_idx: np.ndarray, pool: torch.Tensor, victim_model: nn.Module,
    victim_pred: torch.Tensor, victim_acc: float, common: dict[str, Any], progress: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """Train one homologous, sibling or piracy model: the model and its card (without weights)."""
    start = time.perf_counter()
    c, h, w = data.input_shape
    tc = job_train_config(config, job)
    torch.manual_seed(job.seed)

    def make_model() -> nn.Module:
        return create_model(job.arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)

    if job.role in ("homologous", "sibling"):
        n_train = len(data.x_train)
        overlap = job.overlap  # plan_jobs gives every homologous job its overlap, siblings 1
        assert overlap is not None
        h_idx = v_idx if job.role == "sibling" else homologous_indices(n_train, v_idx, seed=job.seed, overlap=overlap)
        model = make_model()
        sel = torch.from_numpy(h_idx)
        result = train_model(model, data.x_train[sel], data.y_train[sel], config=tc, progress=progress, desc=job.id)
        train_seconds, queries, attack_card = result.seconds, 0, None
        data_info = {
            "split": job.role, "size": len(h_idx), "overlap": overlap,
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
    return model, card


def _train_job(
    out: Path, config: ZooConfig, job: Job, data: Dataset, v_idx: np.ndarray, pool: torch.Tensor,
    victim_model: nn.Module, victim_pred: torch.Tensor, victim_acc: float, common: dict[str, Any], progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """Train one job in this process and write it (the sequential build)."""
    model, card = fit_job(config, job, data, v_idx, pool, victim_model, victim_pred, victim_acc, common, progress)
    return write_job(out, job, model, card)


def write_job(out: Path, job: Job, model: nn.Module | dict[str, torch.Tensor], card: dict[str, Any]) -> dict[str, Any]:
    """Write a trained job's weights and card (atomically, weights first) and log it."""
    card = _write_model(out, job.id, model, card)
    log.info(
        "%s: accuracy %.4f fidelity %.4f queries %d (%.1f s)",
        job.id, card["test_accuracy"], card.get("fidelity", float("nan")), card["queries"], card["wall_seconds"],
    )  # fmt: skip
    return card
