"""Building a kit from a zoo: split the models, profile the victim, fit the encoder and the null.

:func:`protect` runs the three steps: :func:`split_models` assigns every zoo model to the
encoder's training set, the calibration set (the null distribution) or the held-out set;
:func:`profile_zoo` computes the victim's UAP and probe points and fingerprints every model
(cached in the zoo); :func:`fit_kit` trains the encoder (and, for the leave-arch-out
calibration, one more per calibration architecture) and returns the :class:`~uapfp.kit.Kit`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .cards import attack_of, load_model_from_card
from .classorder import CLASSES_KEY, class_queries
from .config import ProtectConfig
from .encoder import FingerprintEncoder, train_encoder
from .errors import ConfigError
from .fingerprint import fingerprint
from .kit import KIT_FORMAT, Kit
from .methods import Reference, boundary_queries, error_queries
from .probes import select_probes
from .sequential import verdict_level
from .significance import get_test
from .storage import ensure_writable_dir, load_tensors, save_tensors, sha256_tensors
from .suspects.spec import card_suspect
from .uap import UAPResult, create_uap_method
from .zoo import Zoo

log = logging.getLogger(__name__)

# ``auto`` calibrates leave-arch-out when the encoder trains on this many architectures or more:
# measured good with 4 and 5 (docs/method.md), useless with 2 (an encoder that knows one
# architecture maps the other's honest models onto the victim); 3 is unmeasured.
AUTO_MIN_ARCHS = 4
PARTS = ("train", "calibration", "heldout", "excluded")


# --------------------------------------------------------------------------- the model split


def _round(x: float) -> int:
    return int(x + 0.5)


def split_models(cards: list[dict[str, Any]], config: ProtectConfig, victim_arch: str) -> dict[str, str]:
    """Assign every non-victim model to ``train``, ``calibration``, ``heldout`` or ``excluded``.

    Within each group of one role and one architecture, in a seeded random order: a share
    ``calibration_fraction`` of the homologous models calibrates the null (at least one
    when the group has three or more); of the rest, a share ``train_fraction`` (at least
    one) trains the encoder and the others are held out.
    """
    rng = np.random.default_rng([config.seed, 0x5B1])
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    assignment: dict[str, str] = {}
    for card in sorted(cards, key=lambda c: c["id"]):
        if card["role"] in ("victim", "sibling"):  # the reference and its siblings are no suspects
            continue
        if config.paper_split and card["arch"] == victim_arch:
            assignment[card["id"]] = "excluded"
            continue
        if card["arch"] in config.exclude_archs or attack_of(card) in config.exclude_attacks:
            assignment[card["id"]] = "heldout"
            continue
        groups.setdefault((card["role"], str(card.get("arch"))), []).append(card)
    for (role, _arch), group in sorted(groups.items()):
        n = len(group)
        n_cal = 0
        if role == "homologous":
            n_cal = max(1, _round(config.calibration_fraction * n)) if n >= 3 else 0
        rest = n - n_cal
        n_train = max(1, _round(config.train_fraction * rest)) if rest else 0
        for rank, i in enumerate(rng.permutation(n)):
            part = "calibration" if rank < n_cal else ("train" if rank < n_cal + n_train else "heldout")
            assignment[group[i]["id"]] = part
    return assignment


def _check_calibration(n_calibration: int, config: ProtectConfig) -> None:
    needed = get_test(config.null).min_null_models
    if n_calibration < needed:
        raise ConfigError(
            f"the zoo has too few homologous models to calibrate the test ({n_calibration} set aside, "
            f"{needed} needed): build more with uapfp zoo build --homologous N, or raise --calibration-fraction"
        )


def resolve_calibration(cards: dict[str, dict[str, Any]], assignment: dict[str, str], config: ProtectConfig) -> str:
    """The calibration a kit uses: ``config.calibration``, with ``auto`` decided by the zoo."""
    if config.calibration != "auto":
        return config.calibration
    archs = {cards[i]["arch"] for i, part in assignment.items() if part == "train"}
    if len(archs) >= AUTO_MIN_ARCHS:
        return "leave-arch-out"
    log.warning(
        "the encoder trains on %d architecture(s): the null is scored by the kit's own encoder "
        "(leave-arch-out calibration needs %d or more; see docs/method.md)", len(archs), AUTO_MIN_ARCHS,
    )  # fmt: skip
    return "kit"


def _leave_arch_out_sets(
    cards: dict[str, dict[str, Any]], assignment: dict[str, str], calibration: str
) -> dict[str, list[str]]:
    """Architecture of the calibration models -> the encoder-training models of other architectures.

    Empty for ``kit`` calibration. Refuses a split where leaving an architecture out leaves
    no homologous training model (the encoder needs both labels).
    """
    if calibration == "kit":
        return {}
    train_ids = sorted(i for i, part in assignment.items() if part == "train")
    archs = sorted({cards[i]["arch"] for i, part in assignment.items() if part == "calibration"})
    out = {}
    for arch in archs:
        out[arch] = [i for i in train_ids if cards[i]["arch"] != arch]
        if not any(cards[i]["role"] == "homologous" for i in out[arch]):
            raise ConfigError(
                f"calibration {calibration!r} needs homologous training models of an architecture "
                f"other than {arch}; build a zoo of several architectures or use --calibration kit"
            )
    return out


@dataclass(frozen=True)
class Plan:
    """The split of a zoo's models, the resolved config and the leave-arch-out training sets."""

    assignment: dict[str, str]
    config: ProtectConfig
    without: dict[str, list[str]]

    def ids(self, part: str) -> list[str]:
        return sorted(i for i, p in self.assignment.items() if p == part)


def plan_models(zoo: Zoo, config: ProtectConfig) -> Plan:
    """Split the zoo's models and settle the calibration, refusing a split that cannot calibrate."""
    assignment = split_models(zoo.cards, config, zoo.victim["arch"])
    _check_calibration(sum(part == "calibration" for part in assignment.values()), config)
    _check_method(zoo.cards, config)
    cards = {c["id"]: c for c in zoo.cards}
    config = replace(config, calibration=resolve_calibration(cards, assignment, config))
    return Plan(assignment, config, _leave_arch_out_sets(cards, assignment, config.calibration))


def _check_method(cards: list[dict[str, Any]], config: ProtectConfig) -> None:
    """Refuse, before the long work, a ``--method`` the zoo or the test cannot serve."""
    from .methods import get_method

    if config.method == "auto":  # it may take siblings, which read the victim's errors
        if sum(c["role"] == "sibling" for c in cards) >= 2 and config.lineage_sets < config.fingerprints:
            raise ConfigError(
                f"--method auto may take siblings, which reads lineage_sets ({config.lineage_sets}) query sets, "
                f"fewer than --fingerprints ({config.fingerprints}); give as many of each, or a --method"
            )
        return
    method = get_method(config.method)
    if any(ch.name == "siblings" for ch in method.channels) and sum(c["role"] == "sibling" for c in cards) < 2:
        raise ConfigError(
            f"--method {config.method} needs 2 or more of the victim's siblings, which this zoo lacks; build the zoo "
            "with siblings (uapfp zoo build; --victim-siblings for a victim of your own) or choose another --method"
        )
    if len(method.channels) > 1 and config.null != "models":
        raise ConfigError(f"a combined method is tested by the model-level test (--null models), not {config.null!r}")
    if any(ch.query_key != "uap" for ch in method.channels) and config.lineage_sets < config.fingerprints:
        raise ConfigError(
            f"--method {config.method} reads the victim's errors in lineage_sets ({config.lineage_sets}) query sets, "
            f"fewer than --fingerprints ({config.fingerprints}); give as many of each"
        )


# --------------------------------------------------------------------------- profiling a zoo


def zoo_fingerprints(
    zoo: Zoo, v: torch.Tensor, images: torch.Tensor, *, ids: list[str] | None = None, progress: bool = False
) -> dict[str, torch.Tensor]:
    """Full-probability fingerprints (S, D) of zoo models on probe ``images``, cached in the zoo.

    The cache file is keyed by the UAP and probe images, and each entry by the model's
    weights hash, so a rebuilt model is fingerprinted again.
    """
    from tqdm.auto import tqdm

    key = sha256_tensors(v, images)[:20]
    cache_path = zoo.path / "cache" / f"fingerprints-{key}.safetensors"
    cache = load_tensors(cache_path) if cache_path.is_file() else {}
    wanted = [c for c in zoo.cards if ids is None or c["id"] in ids]
    out, changed = {}, False
    for card in tqdm(wanted, desc="fingerprints", disable=not progress, leave=False):
        entry = f"{card['id']}@{card['weights_sha256'][:16]}"
        if entry not in cache:
            cache[entry] = fingerprint(card_suspect(card), v, images)
            changed = True
        out[card["id"]] = cache[entry]
    if changed:
        try:
            save_tensors(cache_path, cache)
        except OSError as exc:  # a read-only zoo still works, only slower next time
            log.warning("could not write the fingerprint cache %s: %s", cache_path, exc)
    return out


def zoo_answers(
    zoo: Zoo, queries: torch.Tensor, *, ids: list[str] | None = None, progress: bool = False
) -> dict[str, torch.Tensor]:
    """Full probabilities (S, n, K) of zoo models on query sets (S, n, C, H, W), cached in the zoo
    like :func:`zoo_fingerprints`."""
    from tqdm.auto import tqdm

    key = sha256_tensors(queries)[:20]
    cache_path = zoo.path / "cache" / f"answers-{key}.safetensors"
    cache = load_tensors(cache_path) if cache_path.is_file() else {}
    out, changed = {}, False
    for card in tqdm(
        [c for c in zoo.cards if ids is None or c["id"] in ids], desc="answers", disable=not progress, leave=False
    ):
        entry = f"{card['id']}@{card['weights_sha256'][:16]}"
        if entry not in cache:
            suspect = card_suspect(card)
            cache[entry] = torch.stack([suspect(q) for q in queries])
            changed = True
        out[card["id"]] = cache[entry]
    if changed:
        try:
            save_tensors(cache_path, cache)
        except OSError as exc:
            log.warning("could not write the answers cache %s: %s", cache_path, exc)
    return out


@dataclass
class Profile:
    """The victim's UAP, the probe images (S, N, C, H, W) and the zoo's fingerprints on them;
    the query sets of the methods that learn nothing and of the class-order check (``queries``: key ->
    (images, labels)) and the zoo's answers to them (``answers``: key -> model id -> (S, n, K))."""

    uap: UAPResult
    images: torch.Tensor
    fingerprints: dict[str, torch.Tensor]
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    queries: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    answers: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    def stored(self) -> dict[str, dict[str, torch.Tensor]]:
        """Query-set name -> model id -> answers (S, n, K), the UAP fingerprints' included (as ``uap``)."""
        k = len(self.classes)
        uap = {i: f.reshape(f.shape[0], -1, k) for i, f in self.fingerprints.items()}
        return {"uap": uap, **self.answers}


def _uap_extras(config: ProtectConfig) -> dict[str, Any]:
    """The kit settings the reference algorithm takes besides the radius (the SGD one takes none)."""
    return {"delta": config.delta, "max_passes": config.uap_max_passes} if config.uap_method == "deepfool" else {}


def profile_zoo(
    zoo: Zoo, config: ProtectConfig = ProtectConfig(), *, data_dir: str | None = None, progress: bool = True
) -> Profile:
    """Compute the victim's UAP and probes, and fingerprint every zoo model (cached in the zoo)."""
    victim = load_model_from_card(zoo.victim)
    data = zoo.load_dataset(data_dir)
    x_v = data.x_train[zoo.splits()["victim"]]
    gen = torch.Generator().manual_seed(config.seed)
    uap_x = x_v[torch.randperm(len(x_v), generator=gen)[: config.uap_images]]
    log.info("computing the UAP (%s, %s, xi=%g) on %d images", config.uap_method, config.norm, config.xi, len(uap_x))
    method = create_uap_method(config.uap_method, xi=config.xi, norm=config.norm, **_uap_extras(config))
    uap = method(victim, uap_x, x_val=data.x_test, seed=config.seed, progress=progress)
    log.info("UAP fooling rate %.3f on the held-out test set (%.1f s)", uap.fooling_rate_val, uap.seconds)
    probes = select_probes(
        victim, x_v, n_clusters=config.n_probes, n_views=config.n_views, n_neighbors=config.n_neighbors,
        seed=config.seed,
    )  # fmt: skip
    images = x_v[probes.sets]
    fps = zoo_fingerprints(zoo, uap.v, images, progress=progress)
    queries = lineage_queries(victim, data.x_test, data.y_test, config)
    check = class_queries(victim, data.x_test, data.y_test, num_classes=len(data.classes), seed=config.seed)
    if check[0].shape[1]:  # a victim that labels no held-out image right gets no class-order check
        queries[CLASSES_KEY] = check
    answers = {key: zoo_answers(zoo, q, progress=progress) for key, (q, _) in queries.items()}
    return Profile(uap, images, fps, data.input_shape, tuple(data.classes), queries, answers)


def lineage_queries(
    victim: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, config: ProtectConfig
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The query sets of the methods that learn nothing, from held-out data (x, y) the victim never
    trained on: its errors (``errors``, ``sac``, ``siblings``) and points just inside its boundary (``ipguard``)."""
    n_sets, per_set = config.lineage_sets, config.lineage_per_set
    errors, labels = error_queries(victim, x, y, n_sets=n_sets, per_set=per_set, seed=config.seed)
    boundary = boundary_queries(victim, x, y, n_sets=n_sets, per_set=per_set, seed=config.seed)
    return {"errors": (errors, labels), "ipguard": (boundary, torch.full(boundary.shape[:2], -1))}


# --------------------------------------------------------------------------- fitting the kit


def _versions() -> dict[str, str]:
    import safetensors

    return {
        "uapfp": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def fit_kit(zoo: Zoo, profile: Profile, config: ProtectConfig = ProtectConfig(), *, progress: bool = True) -> Kit:
    """Split the zoo's models, train the encoder (and the leave-arch-out ones) and calibrate the null."""
    start = time.perf_counter()
    vcard = zoo.victim
    fps = profile.fingerprints
    plan = plan_models(zoo, config)
    config = plan.config
    cal_ids = plan.ids("calibration")
    cards = {c["id"]: c for c in zoo.cards}
    num_classes = len(profile.classes)

    def train_on(ids: list[str]) -> FingerprintEncoder:
        ids = [vcard["id"], *ids]  # the victim is always known: it is the reference
        labels = [0 if cards[i]["role"] in ("victim", "piracy") else 1 for i in ids]
        return train_encoder(
            torch.stack([fps[i] for i in ids]), torch.tensor(labels), num_classes=num_classes,
            config=config.encoder, progress=progress,
        )  # fmt: skip

    encoder = train_on(plan.ids("train"))
    null_encoders = {}
    for k, (arch, rest) in enumerate(plan.without.items()):
        log.info(
            "leave-arch-out calibration: encoder %d of %d, without architecture %s", k + 1, len(plan.without), arch
        )
        null_encoders[arch] = train_on(rest)
    info = {
        "format": KIT_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input_shape": list(profile.input_shape),
        "num_classes": num_classes,
        "classes": list(profile.classes),
        "dataset": zoo.config.dataset,
        "victim": {k: vcard.get(k) for k in ("id", "arch", "test_accuracy", "weights_sha256")},
        "zoo": str(zoo.path),
        "uap": profile.uap.summary(),
        "models": {part: plan.ids(part) for part in PARTS},
        "calibration_archs": [cards[i]["arch"] for i in cal_ids],
        "versions": _versions(),
    }
    sibling_ids = sorted(c["id"] for c in zoo.cards if c["role"] == "sibling")
    references = {
        key: Reference(
            queries=q, victim=profile.answers[key][vcard["id"]], labels=labels,
            null=torch.stack([profile.answers[key][i] for i in cal_ids]),
            siblings=torch.stack([profile.answers[key][i] for i in sibling_ids]) if sibling_ids
            else torch.zeros(0, *profile.answers[key][vcard["id"]].shape),
        )
        for key, (q, labels) in profile.queries.items()
    }  # fmt: skip
    info["siblings"] = sibling_ids
    auto, own_victim = config.method == "auto", vcard.get("train") is None
    if auto:
        config = replace(config, method=choose_method(len(sibling_ids), own_victim=own_victim))
    kit = Kit(
        path=None,
        info=info,
        config=config,
        v=profile.uap.v,
        probe_images=profile.images,
        encoder=encoder,
        victim_fingerprints=fps[vcard["id"]],
        null_fingerprints=torch.stack([fps[i] for i in cal_ids]),
        sha256="",
        null_encoders=null_encoders,
        references=references,
    )
    floor = p_floor(kit)
    level = verdict_level(config.alpha, config.fingerprints, sequential=config.sequential)
    handed_in = sum(bool(cards[i].get("handed_in")) for i in sibling_ids)
    if auto and config.method != choose_method(len(sibling_ids), own_victim=own_victim, handed_in=handed_in,
                                               floor=_worst(floor), alpha=level):  # fmt: skip
        other = p_floor(replace(kit, config=replace(config, method="siblings")))
        if _worst(other) < _worst(floor):  # a method that cannot reach the level gives way to one that does better
            log.warning(
                "fingerprint method: siblings, not %s: with this zoo %s gives an exact copy p %.4g (probabilities) "
                "and %.4g (labels), so it could not show every copy at %s", config.method, config.method,
                floor["probs"], floor["label"], _level_said(config, level),
            )  # fmt: skip
            kit.config = config = replace(config, method="siblings")
            floor = other
    if auto:
        log.info("fingerprint method: %s (the zoo has %d siblings of the victim)", config.method, len(sibling_ids))
    for mode, p in floor.items():
        if not p < level:  # a floor that is not a number cannot reach it either
            log.warning(
                "with %s answers (%s) this kit's p-values cannot fall below %.4g (an exact copy gets that): no "
                "such verdict at %s can be piracy; choose another --method, or a larger --alpha", mode,
                config.method, p, _level_said(config, level),
            )  # fmt: skip
    info["p_floor"] = {mode: float(f"{p:.6g}") for mode, p in floor.items() if math.isfinite(p)}
    null = kit.null_similarities()
    info["null"] = {"mean": round(float(null.mean()), 4), "std": round(float(null.std()), 4), "models": len(cal_ids)}
    info["encoder_seconds"] = round(time.perf_counter() - start, 1)
    return kit


def _worst(floor: dict[str, float]) -> float:
    """The larger floor of the answer modes (a floor that is not a number counts as 1)."""
    return max(p if math.isfinite(p) else 1.0 for p in floor.values())


def _level_said(config: ProtectConfig, level: float) -> str:
    """The level a verdict is tested at, as a message says it."""
    return f"alpha {config.alpha:g}" + (f" (the sequential test's last look: {level:.4g})" if level != config.alpha else "")


def p_floor(kit: Kit) -> dict[str, float]:
    """What an exact copy gets from the kit, per answer mode (``probs``, ``label``): the p-value of a suspect
    that answers exactly as the victim (the kit holds the victim's answers to every query set) on the kit's
    sets. A kit whose floor is at or above its alpha can show no copy in that mode (docs/method.md)."""
    from .verify import Scoring, exact_copy_p

    scoring = Scoring.of(kit)
    return {mode: exact_copy_p(kit, scoring, mode, kit.config.fingerprints) for mode in ("probs", "label")}


def choose_method(
    siblings: int, *, own_victim: bool = False, handed_in: int = 0, floor: float = 0.0, alpha: float = 1.0
) -> str:  # fmt: skip
    """The method of ``--method auto``: ``siblings`` when the zoo has two or more of the victim's
    siblings and trained the victim itself, else the paper's ``uap`` (decided on the families
    benchmark's dev half). A user's own victim keeps uap: siblings the zoo trains get its recipe,
    not the user's, and with siblings the user trained (``--victim-siblings``, ``handed_in``) ``siblings``
    ranked the one such victim measured 0.010 below ``uap`` on its dev half (docs/method.md). Unless
    ``uap``'s ``floor`` (:func:`p_floor`: what an exact copy gets; the larger of the two answer modes') is not
    below ``alpha`` (the level a verdict is tested at: with the sequential test, its last look's): it could
    then not show every copy, and two or more siblings the user handed in are taken (zoo-trained ones flagged
    honest models of that victim)."""
    if siblings >= 2 and not own_victim:
        return "siblings"
    return "siblings" if own_victim and handed_in >= 2 and floor >= alpha else "uap"


def protect(
    zoo: Zoo | str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    config: ProtectConfig = ProtectConfig(),
    data_dir: str | None = None,
    progress: bool = True,
) -> Kit:
    """Build a kit from a zoo (UAP, probes, fingerprints, encoder, null) and save it to ``out``."""
    zoo = zoo if isinstance(zoo, Zoo) else Zoo.load(zoo)
    config = plan_models(zoo, config).config  # refuses an impossible split before the long work
    if out is not None:
        ensure_writable_dir(Path(out))
    start = time.perf_counter()
    kit = fit_kit(zoo, profile_zoo(zoo, config, data_dir=data_dir, progress=progress), config, progress=progress)
    kit.info["build_seconds"] = round(time.perf_counter() - start, 1)
    if out is not None:
        kit.save(out)
    return kit
