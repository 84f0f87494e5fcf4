"""A null of the suspect's own family: honest models of its architecture, trained by the owner.

The kit's null is made of the zoo's honest models, whose architectures are the zoo's. A suspect of
another architecture is then compared with models that differ from it in more than lineage, and
on families the zoo never held its false-alarm rate is not the level it promises
(docs/results-fmnist.md). An owner who knows the suspect's architecture (they hold its file, or
its maker says what it is) can train honest models of that architecture themselves and test the
suspect against them instead: the question becomes "is this suspect closer to the victim than
models of its own architecture that never saw the victim?".

:func:`build_family_null` trains ``count`` such models with the zoo's data, in rounds of four kinds (on
exactly D_V with Adam and with SGD, on data overlapping D_V by half, on the attacker's pool, disjoint from
D_V), each round with the next of its epochs (by default the zoo's, half and a quarter of them: a null that
spans recipes, :func:`spanning_epochs`), asks each every query set of the kit, and writes a folder:
``models/`` (one weights file and card per model: resumable), ``answers-KIT.safetensors`` (their
probabilities, per query-set name, for the kit whose SHA-256 begins with KIT) and
``family-null.json`` (the architecture, the recipe, the models, and for each kit the answers' file
and SHA-256). :meth:`FamilyNull.load` refuses answers that do not match, and a folder that holds
none for the kit. The null's identity (:attr:`FamilyNull.sha256`) is a hash of what the verdict
depends on (architecture, recipe, models, kit, answers), so building the folder again, or for
another kit, leaves an earlier verdict's null checkable. ``uapfp verify --family-null DIR`` tests a
suspect against it. :func:`combine_nulls` joins several folders of one architecture (``--family-null``
given more than once), for a null that spans recipes or grows with more seeds.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import ConfigError, KitIntegrityError
from .storage import load_tensors, read_json, save_tensors, sha256_bytes, sha256_file, sha256_tensors, write_json

if TYPE_CHECKING:
    from .data import Dataset
    from .kit import Kit
    from .methods import Method
    from .suspects.base import OutputMode
    from .zoo import Zoo

log = logging.getLogger(__name__)

FAMILY_NULL_FORMAT = "uapfp-family-null/1"
INFO_FILE = "family-null.json"
#: The kinds of honest model, in the order each round trains them.
KINDS = ("dv-adam", "dv-sgd", "overlap", "disjoint")
#: Seeds of the null's models start here (the families benchmark's suspects use seeds below 10,000).
SEED_BASE = 10_000


def spanning_epochs(epochs: int) -> tuple[int, ...]:
    """The default epochs of a family null's rounds for a zoo trained ``epochs`` epochs: that, half and a quarter
    of it (at least 1). A null of one recipe flags honest models trained for fewer steps than its own (they sit
    closer to the victim); one that spans down to a quarter did not, on the families benchmark (docs/method.md)."""
    return tuple(dict.fromkeys((epochs, max(1, epochs // 2), max(1, epochs // 4))))  # 2 epochs: (2, 1)


def round_epochs(recipe: dict[str, Any], index: int) -> int:
    """The epochs model ``index`` of a null with ``recipe`` was trained for: one number for every model, or one
    per round of :data:`KINDS`, in turn."""
    epochs = recipe["epochs"]
    return int(epochs[(index // len(KINDS)) % len(epochs)]) if isinstance(epochs, list) else int(epochs)


def train_honest(
    arch: str, kind: str, data: Dataset, splits: dict[str, torch.Tensor], *, seed: int, epochs: int,
    batch_size: int = 128, augment: str = "none", cpu_bf16: bool = False,
) -> nn.Module:  # fmt: skip
    """One honest model of ``arch``, of ``kind`` (:data:`KINDS`): trained on exactly D_V with Adam
    (``dv-adam``) or SGD (``dv-sgd``), on D_H overlapping D_V by half (``overlap``, Adam), or on the
    attacker's pool, disjoint from D_V (``disjoint``, Adam). Deterministic for a given ``seed``."""
    from .data import homologous_indices
    from .training import TrainConfig, train_model

    if kind not in KINDS:
        raise ConfigError(f"unknown kind of honest model {kind!r}; use one of {', '.join(KINDS)}")
    v_idx = splits["victim"]
    if kind == "overlap":
        idx = torch.from_numpy(homologous_indices(len(data.x_train), v_idx.numpy(), seed=seed, overlap=0.5))
    elif kind == "disjoint":
        idx = splits["pool"]
    else:
        idx = v_idx
    torch.manual_seed(seed)
    model = _fresh(arch, data)
    config = TrainConfig(optimizer="sgd" if kind == "dv-sgd" else "adam", epochs=epochs, batch_size=batch_size,
                         seed=seed, augment=augment, cpu_bf16=cpu_bf16)  # fmt: skip
    train_model(model, data.x_train[idx], data.y_train[idx], config=config, progress=False, desc=f"{arch} {kind}")
    return model.eval()


def query_sets(kit: Kit) -> dict[str, torch.Tensor]:
    """Every query set a suspect may be asked with this kit, by name: (S, n, C, H, W) each."""
    from .methods import probe_sets

    return {"uap": probe_sets(kit), **{key: ref.queries for key, ref in kit.references.items()}}


@dataclass
class FamilyNull:
    """A loaded family null: honest models of one architecture, as their answers to one kit's queries.

    Attributes:
        path: the folder.
        info: ``family-null.json``: the architecture, the recipe, the models (kind, seed, test accuracy),
            and per kit the answers' file and SHA-256.
        kit_sha256: the kit whose queries ``answers`` answer.
        answers: query-set name -> (H, S, n, K) the models' probabilities.
        sha256: the null's identity: the SHA-256 of its architecture, recipe, models, kit and answers.
        parts: for a null :func:`combine_nulls` made, the folders' nulls it holds (``path`` is then None).
    """

    path: Path | None
    info: dict[str, Any]
    kit_sha256: str
    answers: dict[str, torch.Tensor]
    sha256: str
    parts: tuple[FamilyNull, ...] = ()

    @property
    def folders(self) -> list[str]:
        """The folder, or for a combined null each folder, whose models it holds."""
        return [str(p.path) for p in self.parts] if self.parts else [str(self.path)]

    @property
    def where(self) -> str:
        """Its folders, for a message."""
        return " + ".join(self.folders)

    @property
    def arch(self) -> str:
        return str(self.info["arch"])

    @property
    def count(self) -> int:
        return int(next(iter(self.answers.values())).shape[0])

    @property
    def models(self) -> list[dict[str, Any]]:
        """The cards (name, kind, seed, test accuracy) of the models whose answers these are."""
        return list(self.info["models"][: self.count])

    def similarities(self, kit: Kit, method: Method, mode: OutputMode | str, n_sets: int) -> torch.Tensor:
        """The models' similarities (H, n_sets) to the victim by ``method`` (one channel), in ``mode``:
        what :meth:`Method.null` gives for the kit's calibration models. Each model is scored as a suspect
        is (a learned method by the kit's own encoder: no model of the null trained it)."""
        answers = self.answers.get(method.query_key)
        if answers is None:
            raise ConfigError(f"the family null {self.where} holds no answers to the {method.query_key!r} queries")
        return method.similarities(kit, answers[:, :n_sets], mode)

    def without(self, index: int) -> FamilyNull:
        """The null without its model ``index`` (to test that model against the others)."""
        keep = [i for i in range(self.count) if i != index]
        return replace(self, answers={k: a[keep] for k, a in self.answers.items()})

    def describe(self) -> dict[str, Any]:
        """What a verdict's evidence says of the null (``recipe``: a list of them for a combined null)."""
        return {"path": self.where, "paths": self.folders, "sha256": self.sha256, "arch": self.arch,
                "models": self.count, "recipe": self.info.get("recipe")}  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str], kit: Kit) -> FamilyNull:
        """Load a family null's answers to ``kit``'s queries, refusing answers that differ from what its
        ``family-null.json`` records, and a folder that holds none for this kit."""
        path = Path(path)
        info_path = path / INFO_FILE
        if not info_path.is_file():
            raise ConfigError(
                f"{path} is not a family null (no {INFO_FILE}); make one with: uapfp family-null --kit KIT --zoo ZOO "
                f"--arch ARCH --out {path}"
            )
        info = read_json(info_path)
        entry = info.get("kits", {}).get(kit.sha256) if isinstance(info, dict) else None
        if (
            not isinstance(info, dict) or info.get("format") != FAMILY_NULL_FORMAT
            or not isinstance(info.get("arch"), str) or not isinstance(info.get("models"), list)
            or not isinstance(info.get("kits"), dict)
        ):  # fmt: skip
            raise KitIntegrityError(f"{info_path} is not a {FAMILY_NULL_FORMAT} file; rebuild it with uapfp family-null")
        if not isinstance(entry, dict):
            raise ConfigError(
                f"the family null {path} holds no answers to the queries of the kit {kit.path} (it was built for "
                f"another kit); rerun uapfp family-null with --kit {kit.path} --out {path} (its models are kept, "
                "only their answers are asked)"
            )
        file = path / str(entry.get("answers"))
        if Path(str(entry.get("answers"))).name != entry.get("answers") or not file.is_file():
            raise KitIntegrityError(f"{path} lacks the answers file {entry.get('answers')!r}; rebuild it with uapfp family-null")
        if sha256_file(file) != entry.get("answers_sha256"):
            raise KitIntegrityError(
                f"{file} does not match {info_path} (SHA-256 differs): the null was modified or damaged; rebuild it "
                "with uapfp family-null"
            )
        answers = load_tensors(file)
        counts = {int(a.shape[0]) for a in answers.values()}
        if not answers or counts != {entry.get("models")} or len(info["models"]) < min(counts):
            raise KitIntegrityError(f"{file} does not hold {entry.get('models')} models' answers; rebuild it")
        return cls(path, info, kit.sha256, answers, _identity(info, kit.sha256, entry))


def combine_nulls(nulls: list[FamilyNull]) -> FamilyNull:
    """One null of the models of ``nulls``: folders of one architecture, loaded for one kit, built with other
    recipes (``uapfp family-null --epochs``) or seeds (``--seed``). A null that spans recipes stays honest for
    honest suspects trained like any of them (docs/method.md). Refused: nulls of other architectures, of
    other kits, one given twice, and two whose models share seeds (their models would share initial weights
    and data order, and count as more independent models than they are). Its identity does not depend on
    the order the nulls are given in."""
    if not nulls:
        raise ConfigError("no family null to combine")
    if len(nulls) == 1:
        return nulls[0]
    if len({n.arch for n in nulls}) > 1:
        raise ConfigError(
            f"family nulls of different architectures ({', '.join(sorted({n.arch for n in nulls}))}) cannot be "
            "combined: a suspect has one architecture"
        )
    if len({n.kit_sha256 for n in nulls}) > 1 or len({frozenset(n.answers) for n in nulls}) > 1:
        raise ConfigError("family nulls built for different kits cannot be combined")
    if any(n.parts for n in nulls):
        raise ConfigError("a joined family null cannot be joined again; give each folder once")
    by_identity: dict[str, FamilyNull] = {}
    for n in nulls:
        if n.sha256 in by_identity:
            raise ConfigError(f"the family null {n.where} is given twice (as {by_identity[n.sha256].where} too); give "
                              "each folder once")  # fmt: skip
        by_identity[n.sha256] = n
    seen: dict[int, str] = {}
    for n in nulls:
        for card in n.models:
            if card.get("seed") in seen:
                raise ConfigError(
                    f"the family nulls {seen[card['seed']]} and {n.where} hold models of the same seed ({card['seed']}): "
                    "they would share initial weights and data order; build one again with another --seed"
                )
            seen[card.get("seed")] = n.where
    ordered = sorted(nulls, key=lambda n: n.sha256)
    answers = {key: torch.cat([n.answers[key] for n in ordered]) for key in ordered[0].answers}
    info = {"format": FAMILY_NULL_FORMAT, "arch": ordered[0].arch, "recipe": [n.info.get("recipe") for n in ordered],
            "models": [card for n in ordered for card in n.models]}  # fmt: skip
    identity = sha256_bytes(json.dumps({"combined": [n.sha256 for n in ordered]}).encode())
    return FamilyNull(None, info, ordered[0].kit_sha256, answers, identity, tuple(ordered))


def load_nulls(folders: Sequence[str | os.PathLike[str]], kit: Kit) -> FamilyNull | None:
    """The family null of ``folders`` for ``kit`` (``--family-null``, once per folder): one folder's, or theirs
    joined (:func:`combine_nulls`); None for no folder."""
    return combine_nulls([FamilyNull.load(p, kit) for p in folders]) if folders else None


def same_architecture(a: str, b: str, *, input_shape: tuple[int, int, int], num_classes: int) -> bool | None:
    """Whether architectures ``a`` and ``b`` (registered names or ``package.module:factory``) are the same:
    the same name, or models built by both with the same parameters and buffers (names and shapes), for
    inputs ``input_shape`` and ``num_classes`` classes. None where one cannot be built without importing code
    this run was not allowed to import (a factory whose module is neither imported nor trusted)."""
    if a == b:
        return True
    one, other = (_signature(x, input_shape, num_classes) for x in (a, b))
    return None if one is None or other is None else one == other


def _signature(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> tuple | None:
    """The names and shapes of a fresh ``arch`` model's state, or None where it cannot be built here."""
    import sys

    from .archs import create_model, is_trusted, module_of, trusting

    user = ":" in arch
    if user and not (is_trusted(module_of(arch)) or module_of(arch) in sys.modules):
        return None
    c, h, w = input_shape
    try:
        with trusting([module_of(arch)] if user else []):  # imported already, by opening the suspect
            model = create_model(arch, in_channels=c, image_size=(h, w), num_classes=num_classes)
    except Exception:  # not a registered name, no factory of that module, or one that fails for this input:
        return None  # then the two cannot be compared, which the verdict records (not a refusal)
    return tuple((name, tuple(t.shape)) for name, t in model.state_dict().items())


def _identity(info: dict[str, Any], kit_sha256: str, entry: dict[str, Any]) -> str:
    """The null's SHA-256: of what a verdict against it depends on, not of when the folder was written."""
    what = {"format": info["format"], "arch": info["arch"], "recipe": info.get("recipe"),
            "models": info["models"][: entry["models"]], "kit_sha256": kit_sha256,
            "answers_sha256": entry["answers_sha256"]}  # fmt: skip
    return sha256_bytes(json.dumps(what, sort_keys=True).encode())


def build_family_null(
    kit: Kit, zoo: Zoo, arch: str, out: str | os.PathLike[str], *, count: int = 12, seed: int = 0,
    epochs: int | Sequence[int] | None = None, augment: str | None = None, data_dir: str | None = None,
) -> FamilyNull:  # fmt: skip
    """Train ``count`` honest models of ``arch`` (a registered name or ``package.module:factory``, whose
    module must be trusted: :func:`uapfp.archs.trusting`, as ``uapfp family-null --arch`` does for the module it
    names) on the zoo's data, in rounds of :data:`KINDS`; ask each every query set of ``kit``; write the folder
    ``out``. ``epochs``: one number for every model, or one per round in turn (default
    :func:`spanning_epochs` of the zoo's); ``augment``: the zoo's by default. Resumable: a model already in
    ``out`` with the same recipe is kept, one with another is refused. The answers to this kit's queries are
    asked again on every run (those of other kits are kept), so a null's models serve a rebuilt kit of the
    same zoo."""
    from .suspects.local import TorchSuspect
    from .training import accuracy

    if count < 4:  # the benchmark tests each model against the others: 3 at least for the t-test
        raise ConfigError(f"--count must be at least 4 honest models (12 or more are advised), got {count}")
    if zoo.victim["weights_sha256"] != kit.info["victim"].get("weights_sha256"):
        raise ConfigError(f"the kit {kit.path} was not made from the zoo {zoo.path} (another victim); give its own zoo")
    data = zoo.load_dataset(data_dir)
    if tuple(data.input_shape) != kit.input_shape or data.num_classes != kit.num_classes:
        raise ConfigError(f"the zoo's data ({data.input_shape}, {data.num_classes} classes) does not fit the kit")
    splits = zoo.splits()
    rounds = spanning_epochs(int(zoo.config.epochs)) if epochs is None else epochs
    rounds = [int(rounds)] if isinstance(rounds, int) else [int(e) for e in rounds]
    if not rounds or min(rounds) < 1:
        raise ConfigError(f"--epochs must be at least 1 (one number, or one per round), got {epochs}")
    recipe = {"arch": arch, "epochs": rounds[0] if len(rounds) == 1 else rounds, "batch_size": 128,
              "augment": zoo.config.augment if augment is None else augment, "seed": seed,
              "data": sha256_tensors(splits["victim"], splits["pool"])}  # fmt: skip
    if len(rounds) > 1 and count % (len(KINDS) * len(rounds)):
        per = {e: sum(round_epochs(recipe, i) == e for i in range(count)) for e in dict.fromkeys(rounds)}
        log.warning("family null %s: its %d models are not as many at each recipe (%s; a round is %d models, one of "
                    "each kind: a --count that is a multiple of %d trains as many of each)", arch, count,
                    ", ".join(f"{n} at {e} epochs" for e, n in per.items()), len(KINDS), len(KINDS) * len(rounds))  # fmt: skip
    out = Path(out)
    before = read_json(out / INFO_FILE) if (out / INFO_FILE).is_file() else None
    if before is not None and (not isinstance(before, dict) or before.get("format") != FAMILY_NULL_FORMAT
                               or before.get("recipe") != recipe):  # fmt: skip
        old = before.get("recipe") if isinstance(before, dict) else None
        if epochs is None and isinstance(old, dict) and isinstance(old.get("epochs"), int) and (
            {**old, "epochs": recipe["epochs"]} == recipe
        ):  # only the epochs differ: the folder was made by the default of before
            raise ConfigError(
                f"{out} holds a family null of one recipe ({old['epochs']} epochs for every model), made before "
                f"uapfp family-null spanned recipes by default; rerun with --epochs {old['epochs']} to resume it, or "
                "use another --out folder for a null that spans recipes"
            )
        raise ConfigError(f"{out} holds a family null of another recipe or format; use another --out folder")
    (out / "models").mkdir(parents=True, exist_ok=True)
    # a null of one recipe lists its models as it always did, so that its identity (and earlier verdicts) hold
    listed = ("name", "kind", "seed", *(("epochs",) if isinstance(recipe["epochs"], list) else ()), "test_accuracy")
    models, cards = [], []
    for i in range(count):
        kind, s = KINDS[i % len(KINDS)], SEED_BASE + 1000 * seed + i
        name = f"{i:03d}-{kind}"
        card_path, weights = out / "models" / f"{name}.json", out / "models" / f"{name}.safetensors"
        if card_path.is_file() and weights.is_file():
            card = read_json(card_path)
            if not isinstance(card, dict) or card.get("recipe") != recipe:
                raise ConfigError(
                    f"{card_path} was trained with another recipe ({card.get('recipe') if isinstance(card, dict) else card}) "
                    f"than {recipe}; use another --out folder"
                )
            model = _fresh(arch, data)
            model.load_state_dict(load_tensors(weights))
            model.eval()
        else:
            start, epochs_i = time.perf_counter(), round_epochs(recipe, i)
            model = train_honest(arch, kind, data, splits, seed=s, epochs=epochs_i,
                                 batch_size=recipe["batch_size"], augment=recipe["augment"])  # fmt: skip
            save_tensors(weights, model.state_dict())
            card = {"name": name, "kind": kind, "seed": s, "recipe": recipe, "epochs": epochs_i,
                    "test_accuracy": round(accuracy(model, data.x_test, data.y_test), 4),
                    "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            write_json(card_path, card)
            log.info("family null %s: model %d of %d (%s, epochs %d), test accuracy %.4f, %.0f s", arch, i + 1, count,
                     kind, card["epochs"], card["test_accuracy"], card["seconds"])  # fmt: skip
        models.append(model)
        cards.append({k: card[k] for k in listed})  # a card of a recipe that spans was written with its epochs
    suspects = [TorchSuspect(m, input_shape=kit.input_shape, num_classes=kit.num_classes, name=arch) for m in models]
    answers = {
        key: torch.stack([torch.stack([suspect(s) for s in q]) for suspect in suspects])
        for key, q in query_sets(kit).items()
    }
    from . import __version__

    file = f"answers-{kit.sha256[:16]}.safetensors"
    entry = {"answers": file, "answers_sha256": save_tensors(out / file, answers), "models": count}
    known = list(before["models"]) if before else []  # models of earlier runs beyond this count stay listed
    info = {"format": FAMILY_NULL_FORMAT, "arch": arch, "recipe": recipe, "models": cards + known[count:],
            "kits": {**(before or {}).get("kits", {}), kit.sha256: entry}, "zoo": str(zoo.path),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "uapfp": __version__}  # fmt: skip
    write_json(out / INFO_FILE, info)
    info = json.loads(json.dumps(info))
    return FamilyNull(out, info, kit.sha256, answers, _identity(info, kit.sha256, entry))


def _fresh(arch: str, data: Dataset) -> nn.Module:
    from .archs import create_model

    c, h, w = data.input_shape
    return create_model(arch, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
