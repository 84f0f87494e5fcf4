"""The kit: everything verification needs, built from a zoo by :func:`protect`.

A kit is a folder of safetensors and JSON files with a ``manifest.json`` of their SHA-256
hashes; :meth:`Kit.load` refuses a kit whose files do not match. It holds the victim's UAP,
the probe images (all views), the encoder's weights, the victim's fingerprints and
embeddings, and the fingerprints and similarities of the calibration homologous models
(the null distribution; with leave-arch-out calibration also the encoders that score them,
in ``null-encoders.safetensors``), plus the input spec, class count, hyperparameters and
versions.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .encoder import EncoderConfig, FingerprintEncoder, embed, train_encoder
from .errors import ConfigError, KitIntegrityError
from .fingerprint import apply_output_mode, fingerprint
from .modify import TRAINING_FREE, create_modification
from .probes import select_probes
from .storage import ensure_writable_dir, load_tensors, read_json, save_tensors, sha256_file, write_json
from .suspects import OutputMode
from .uap import NORMS, UAP_METHODS, UAPResult
from .zoo import Zoo, card_suspect, load_model_from_card

log = logging.getLogger(__name__)

KIT_FORMAT = "uapfp-kit/1"
NULL_RULES = ("models", "global")
STRATA = ("arch", "optimizer", "batch_size", "attack")
KIT_FILES = ("kit.json", "uap.safetensors", "probes.safetensors", "encoder.safetensors", "reference.safetensors")
NULL_ENCODERS_FILE = "null-encoders.safetensors"  # only in kits whose calibration is not "kit"
CALIBRATIONS = ("auto", "kit", "leave-arch-out", "pooled")
# ``auto`` calibrates leave-arch-out when the encoder trains on this many architectures or more:
# measured good with 4 and 5 (docs/method.md), useless with 2 (an encoder that knows one
# architecture maps the other's honest models onto the victim); 3 is unmeasured.
AUTO_MIN_ARCHS = 4


@dataclass(frozen=True)
class ProtectConfig:
    """Hyperparameters of a kit.

    UAP: ``uap_method`` (``deepfool``, the reference algorithm, or ``sgd``), ``norm`` and
    radius ``xi``, computed on ``uap_images`` images of D_V. Probes: ``n_probes`` clusters,
    ``n_views`` views from ``n_neighbors`` neighbours. Models are split per role and cell
    of ``stratify`` (card fields; default the architecture): ``train_fraction`` of the piracy
    and homologous models train the encoder, ``calibration_fraction`` of the homologous
    models form the null distribution (the kit's encoder never sees them, unless
    ``train_on_calibration``), the rest is held out for :func:`uapfp.verify.evaluate`.
    ``exclude_archs`` / ``exclude_attacks`` hold out every model of those architectures or
    attacks (leave-one-out validation); ``paper_split`` drops the victim's architecture from
    all suspects, as the paper did. ``null`` is ``global`` (every calibration model) or
    ``nearest:K`` (the K calibration models whose raw fingerprints are closest to the
    suspect's, a null calibrated per suspect) or ``upper:K`` (the K most victim-like
    calibration models), all three tested with the paper's Welch t-test on per-fingerprint
    similarities; or ``models`` (the default): the suspect's mean similarity is tested as one
    more draw from the population of honest models (a prediction t-test against the
    calibration models' mean similarities; see docs/method.md). ``augment`` lists
    modifications without training (``prune:AMOUNT``, ``quantize:BITS``) whose copies of each
    encoder-training model join the encoder's training set with the model's label.
    ``calibration`` says which encoder scores the calibration models: ``kit`` (the kit's
    own), ``leave-arch-out`` (for each, an encoder trained like the kit's but without any
    model of that model's architecture, so that the null describes honest models of a kind
    the encoder never saw) or ``pooled`` (both scores of every calibration model); ``auto``
    (the default) is ``leave-arch-out`` when the encoder's training models span at least
    ``AUTO_MIN_ARCHS`` architectures, else ``kit``. A kit records the calibration it used.
    ``train_on_calibration`` lets the calibration models train the kit's encoder too (the
    leave-arch-out encoders still never see the architecture of the models they score); only
    with leave-arch-out calibration, and off by default (measured in docs/method.md).
    """

    uap_method: str = "sgd"
    norm: str = "linf"
    xi: float = 0.3
    uap_images: int = 2000
    uap_max_passes: int = 10
    delta: float = 0.2
    n_probes: int = 100
    n_views: int = 20
    n_neighbors: int | None = None
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train_fraction: float = 0.5
    calibration_fraction: float = 1 / 3
    exclude_archs: tuple[str, ...] = ()
    exclude_attacks: tuple[str, ...] = ()
    paper_split: bool = False
    alpha: float = 0.05
    fingerprints: int = 20
    null: str = "models"
    stratify: tuple[str, ...] = ("arch",)
    augment: tuple[str, ...] = ()
    calibration: str = "auto"
    train_on_calibration: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration must be one of {', '.join(CALIBRATIONS)}, not {self.calibration!r}")
        if self.train_on_calibration and self.calibration in ("kit", "pooled"):
            raise ConfigError(
                f"train_on_calibration needs the leave-arch-out calibration: with {self.calibration!r} the null "
                "would be scored by an encoder trained on it"
            )
        if not set(self.stratify) <= set(STRATA):
            raise ConfigError(f"stratify takes card fields among {', '.join(STRATA)}, not {', '.join(self.stratify)}")
        for spec in self.augment:
            if spec.partition(":")[0] not in TRAINING_FREE:
                raise ConfigError(
                    f"augment takes modifications without training ({', '.join(TRAINING_FREE)}), not {spec!r}"
                )
            create_modification(spec)
        rule, _, k = self.null.partition(":")
        if not (self.null in NULL_RULES or (rule in ("nearest", "upper") and k.isdigit() and int(k) > 0)):
            raise ConfigError(f"null must be 'models', 'global', 'nearest:K' or 'upper:K', not {self.null!r}")
        if self.uap_method not in UAP_METHODS:
            raise ConfigError(f"unknown UAP method {self.uap_method!r}; use {', '.join(UAP_METHODS)}")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; use l2 or linf")
        if self.fingerprints > self.n_views + 1 or self.fingerprints < 2:
            raise ConfigError(f"fingerprints must be between 2 and n_views + 1 = {self.n_views + 1}")
        if not 0 < self.train_fraction < 1 or not 0 < self.calibration_fraction < 1:
            raise ConfigError("train_fraction and calibration_fraction must be in (0, 1)")
        if not 0 < self.alpha < 1:
            raise ConfigError("alpha must be in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder"] = self.encoder.to_dict()
        d["exclude_archs"] = list(self.exclude_archs)
        d["exclude_attacks"] = list(self.exclude_attacks)
        d["augment"] = list(self.augment)
        d["stratify"] = list(self.stratify)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProtectConfig:
        d = dict(d)
        d["encoder"] = EncoderConfig.from_dict(d.get("encoder", {}))
        d["exclude_archs"] = tuple(d.get("exclude_archs", ()))
        d["exclude_attacks"] = tuple(d.get("exclude_attacks", ()))
        d["augment"] = tuple(d.get("augment", ()))
        d["stratify"] = tuple(d.get("stratify", ("arch",)))
        d.setdefault("calibration", "kit")  # kits made before the field existed
        return cls(**d)


_TUPLE_SETTINGS = ("exclude_archs", "exclude_attacks", "augment", "stratify")
_ENCODER_SETTINGS = {
    "encoder_steps": "steps",
    "encoder_temperature": "temperature",
    "encoder_seed": "seed",
    "temperature_jitter": "temperature_jitter",
}
_RENAMED_SETTINGS = {"probes": "n_probes", "views": "n_views"}


def _known_settings() -> set[str]:
    return (set(asdict(ProtectConfig())) - {"encoder"}) | set(_ENCODER_SETTINGS) | set(_RENAMED_SETTINGS)


def protect_config(**settings: Any) -> ProtectConfig:
    """The default :class:`ProtectConfig` with the given settings, named as the command line names them.

    ``None`` keeps a default; the tuple fields take comma-separated text (``""`` for none);
    ``probes`` / ``views`` set ``n_probes`` / ``n_views``; ``encoder_steps``,
    ``encoder_temperature``, ``encoder_seed`` and ``temperature_jitter`` the encoder's. Other
    names are unknown.
    """
    base = ProtectConfig()
    known = _known_settings()
    over: dict[str, Any] = {}
    enc: dict[str, Any] = {}
    for name, value in settings.items():
        if value is None:
            continue
        if name in _ENCODER_SETTINGS:
            enc[_ENCODER_SETTINGS[name]] = value
        elif name in _TUPLE_SETTINGS:
            over[name] = (
                tuple(t.strip() for t in value.split(",") if t.strip()) if isinstance(value, str) else tuple(value)
            )
        elif name in known:
            over[_RENAMED_SETTINGS.get(name, name)] = value
        else:
            raise ConfigError(f"unknown kit setting {name!r}")
    if enc:
        over["encoder"] = replace(base.encoder, **enc)
    return replace(base, **over)


def protect_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The items of ``values`` (an argparse namespace's, say) that :func:`protect_config` takes."""
    known = _known_settings()
    return {k: v for k, v in values.items() if k in known}


# --------------------------------------------------------------------------- model splits


def _attack_of(card: dict[str, Any]) -> str | None:
    return (card.get("attack") or {}).get("name")


def _round(x: float) -> int:
    return int(x + 0.5)


def split_models(cards: list[dict[str, Any]], config: ProtectConfig, victim_arch: str) -> dict[str, str]:
    """Assign every non-victim model to ``train``, ``calibration``, ``heldout`` or ``excluded``.

    Within each group of one role and one cell of ``config.stratify`` (the cards' fields,
    ``attack`` the extraction attack's name), in a seeded random order: a share
    ``calibration_fraction`` of the homologous models calibrates the null (at least one
    when the group has three or more); of the rest, a share ``train_fraction`` (at least
    one) trains the encoder and the others are held out.
    """
    rng = np.random.default_rng([config.seed, 0x5B1])
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    assignment: dict[str, str] = {}
    for card in sorted(cards, key=lambda c: c["id"]):
        if card["role"] == "victim":
            continue
        if config.paper_split and card["arch"] == victim_arch:
            assignment[card["id"]] = "excluded"
            continue
        if card["arch"] in config.exclude_archs or _attack_of(card) in config.exclude_attacks:
            assignment[card["id"]] = "heldout"
            continue
        cell = tuple(str(_attack_of(card) if k == "attack" else card.get(k)) for k in config.stratify)
        groups.setdefault((card["role"], *cell), []).append(card)
    for (role, *_cell), group in sorted(groups.items()):
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


# --------------------------------------------------------------------------- fingerprints of a zoo


def _tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def zoo_fingerprints(
    zoo: Zoo,
    v: torch.Tensor,
    images: torch.Tensor,
    *,
    ids: list[str] | None = None,
    modification: str | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Full-probability fingerprints (S, D) of zoo models on probe ``images``, cached in the zoo.

    With ``modification`` (a :func:`uapfp.modify.create_modification` spec without training,
    e.g. ``prune:0.4``), the fingerprints are those of the modified copies. The cache file is
    keyed by the UAP and probe images, and each entry by the model's weights hash (and the
    modification), so a rebuilt model is fingerprinted again.
    """
    from tqdm.auto import tqdm

    key = _tensor_digest(v, images)[:20]
    cache_path = zoo.path / "cache" / f"fingerprints-{key}.safetensors"
    cache = load_tensors(cache_path) if cache_path.is_file() else {}
    wanted = [c for c in zoo.cards if ids is None or c["id"] in ids]
    mod = create_modification(modification) if modification else None
    out, changed = {}, False
    for card in tqdm(wanted, desc="fingerprints", disable=not progress, leave=False):
        entry = f"{card['id']}@{card['weights_sha256'][:16]}" + (f"+{modification}" if mod else "")
        if entry not in cache:
            suspect = card_suspect(card)
            if mod is not None:
                suspect.model = mod.apply(suspect.model, seed=0)
            cache[entry] = fingerprint(suspect, v, images)
            changed = True
        out[card["id"]] = cache[entry]
    if changed:
        try:
            save_tensors(cache_path, cache)
        except OSError as exc:  # a read-only zoo still works, only slower next time
            log.warning("could not write the fingerprint cache %s: %s", cache_path, exc)
    return out


# --------------------------------------------------------------------------- the kit


@dataclass
class Kit:
    """A loaded (hash-checked) kit."""

    path: Path | None
    info: dict[str, Any]
    v: torch.Tensor
    probe_images: torch.Tensor
    encoder: FingerprintEncoder
    victim_fingerprints: torch.Tensor
    null_fingerprints: torch.Tensor
    sha256: str
    null_encoders: dict[str, FingerprintEncoder] = field(default_factory=dict)
    """Architecture -> the encoder trained without it (``leave-arch-out`` and ``pooled`` kits)."""

    @property
    def config(self) -> ProtectConfig:
        return ProtectConfig.from_dict(self.info["config"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.info["input_shape"]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def n_sets(self) -> int:
        return int(self.probe_images.shape[0])

    def victim_embeddings(self, mode: OutputMode | str = "probs") -> torch.Tensor:
        return embed(self.encoder, apply_output_mode(self.victim_fingerprints, mode, self.num_classes))

    @property
    def null_archs(self) -> list[str]:
        """The architecture of each calibration model, in the order of ``null_fingerprints``."""
        return list(self.info.get("calibration_archs", []))

    def _similarities(self, encoder: FingerprintEncoder, f: torch.Tensor, mode: OutputMode | str) -> torch.Tensor:
        """Similarities (..., S) of fingerprints (..., S, D) to the victim's, scored by ``encoder``."""
        n = f.shape[-2]
        ref = embed(encoder, apply_output_mode(self.victim_fingerprints[:n], mode, self.num_classes))
        return (embed(encoder, apply_output_mode(f, mode, self.num_classes)) * ref).sum(-1)

    def null_similarities(self, mode: OutputMode | str = "probs", n_sets: int | None = None) -> torch.Tensor:
        """Similarities (H', S) of the calibration homologous models to the victim, in ``mode``.

        One row per calibration model scored by the kit's encoder (``kit``), or by the
        encoder trained without the model's architecture (``leave-arch-out``), or both
        (``pooled``: the kit's rows, then the leave-arch-out rows).
        """
        n = n_sets or self.n_sets
        f = self.null_fingerprints[:, :n]
        calibration = self.config.calibration
        if calibration == "auto":
            raise ConfigError("a kit's calibration is decided when it is built: kit, leave-arch-out or pooled")
        rows = []
        if calibration in ("kit", "pooled"):
            rows.append(self._similarities(self.encoder, f, mode))
        if calibration in ("leave-arch-out", "pooled"):
            archs = self.null_archs
            missing = sorted(set(archs) - set(self.null_encoders))
            if len(archs) != f.shape[0] or missing:
                raise KitIntegrityError(
                    f"this kit lacks the leave-arch-out encoders its calibration {calibration!r} needs "
                    f"({', '.join(missing) or 'architectures unknown'}); rebuild it with uapfp protect"
                )
            out = torch.empty(f.shape[0], n)
            for arch in sorted(set(archs)):
                rows_a = torch.tensor([i for i, a in enumerate(archs) if a == arch])
                out[rows_a] = self._similarities(self.null_encoders[arch], f[rows_a], mode)
            rows.append(out)
        return torch.cat(rows)

    def null_for(self, f_suspect: torch.Tensor, mode: OutputMode | str = "probs") -> torch.Tensor:
        """The null similarities (H', S') a suspect with raw fingerprints (S', D) is tested against.

        ``models`` and ``global``: every calibration model. ``nearest:K``: the K calibration models whose raw
        fingerprints (in the suspect's answer mode) have the highest mean cosine with the
        suspect's. ``upper:K``: the K calibration models most similar to the victim, so that
        a suspect is called a piracy only when it is significantly closer to the victim than
        the most victim-like honest models.
        """
        n = f_suspect.shape[0]
        null = self.null_similarities(mode, n)
        rule, _, k_text = self.config.null.partition(":")
        if rule in NULL_RULES:
            return null
        k = min(int(k_text), null.shape[0])
        if rule == "upper":
            return null[null.mean(dim=1).topk(k).indices]
        raw = apply_output_mode(self.null_fingerprints[:, :n], mode, self.num_classes)
        closeness = torch.nn.functional.cosine_similarity(raw, f_suspect[None], dim=-1).mean(dim=1)
        # a pooled null holds each calibration model twice: both of its rows are equally close
        closeness = closeness.repeat(null.shape[0] // closeness.shape[0])
        return null[closeness.topk(k).indices]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Kit:
        """Load a kit, refusing it when any file differs from its manifest."""
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise KitIntegrityError(
                f"{path} is not a kit (no manifest.json); make one with: uapfp protect --zoo ZOO --out {path}"
            )
        manifest = read_json(manifest_path)
        files = manifest.get("files", {})
        if manifest.get("format") != KIT_FORMAT or set(files) - {NULL_ENCODERS_FILE} != set(KIT_FILES):
            raise KitIntegrityError(
                f"{manifest_path} is not a {KIT_FORMAT} manifest; rebuild the kit with uapfp protect"
            )
        for name, expected in files.items():
            f = path / name
            if not f.is_file():
                raise KitIntegrityError(
                    f"kit file {f} is missing; the kit is incomplete, rebuild it with uapfp protect"
                )
            if sha256_file(f) != expected:
                raise KitIntegrityError(
                    f"kit file {f} does not match its manifest (SHA-256 differs): the kit was modified "
                    "or damaged; use the original kit or rebuild it with uapfp protect"
                )
        info = read_json(path / "kit.json")
        enc_cfg = EncoderConfig.from_dict(info["config"]["encoder"])
        ref = load_tensors(path / "reference.safetensors")
        encoder = enc_cfg.build(int(ref["victim_fingerprints"].shape[-1]))
        encoder.load_state_dict(load_tensors(path / "encoder.safetensors"))
        encoder.eval()
        null_encoders: dict[str, FingerprintEncoder] = {}
        if NULL_ENCODERS_FILE in files:
            state = load_tensors(path / NULL_ENCODERS_FILE)
            # keys are "ARCH/PARAM": parameter names hold no "/", an architecture name may
            for arch in sorted({key.rpartition("/")[0] for key in state}):
                sub = enc_cfg.build(int(ref["victim_fingerprints"].shape[-1]))
                sub.load_state_dict({k.rpartition("/")[2]: t for k, t in state.items() if k.rpartition("/")[0] == arch})
                null_encoders[arch] = sub.eval()
        return cls(
            path=path,
            info=info,
            v=load_tensors(path / "uap.safetensors")["v"],
            probe_images=load_tensors(path / "probes.safetensors")["images"],
            encoder=encoder,
            victim_fingerprints=ref["victim_fingerprints"],
            null_fingerprints=ref["null_fingerprints"],
            sha256=sha256_file(manifest_path),
            null_encoders=null_encoders,
        )

    def save(self, path: str | os.PathLike[str]) -> Kit:
        """Write the kit's files and its manifest (each atomically; the manifest last)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        null_sims = self.null_similarities("probs")
        hashes = {
            "uap.safetensors": save_tensors(path / "uap.safetensors", {"v": self.v}),
            "probes.safetensors": save_tensors(path / "probes.safetensors", {"images": self.probe_images}),
            "encoder.safetensors": save_tensors(path / "encoder.safetensors", self.encoder.state_dict()),
            "reference.safetensors": save_tensors(
                path / "reference.safetensors",
                {
                    "victim_fingerprints": self.victim_fingerprints,
                    "victim_embeddings": self.victim_embeddings("probs"),
                    "null_fingerprints": self.null_fingerprints,
                    "null_similarities": null_sims,
                },
            ),
        }
        if self.null_encoders:
            hashes[NULL_ENCODERS_FILE] = save_tensors(
                path / NULL_ENCODERS_FILE,
                {f"{arch}/{k}": t for arch, enc in self.null_encoders.items() for k, t in enc.state_dict().items()},
            )
        elif (path / NULL_ENCODERS_FILE).exists():  # left by an earlier kit in the same folder
            (path / NULL_ENCODERS_FILE).unlink()
        write_json(path / "kit.json", self.info)
        hashes["kit.json"] = sha256_file(path / "kit.json")
        write_json(
            path / "manifest.json",
            {"format": KIT_FORMAT, "files": {k: hashes[k] for k in (*KIT_FILES, NULL_ENCODERS_FILE) if k in hashes}},
        )
        self.path = path
        self.sha256 = sha256_file(path / "manifest.json")
        return self


def _versions() -> dict[str, str]:
    import safetensors

    return {
        "uapfp": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


@dataclass
class Profile:
    """The victim's UAP, the probe images (S, N, C, H, W) and the zoo's fingerprints on them."""

    uap: UAPResult
    images: torch.Tensor
    fingerprints: dict[str, torch.Tensor]
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]


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
    if config.uap_method == "deepfool":
        uap: UAPResult = UAP_METHODS["deepfool"](
            victim, uap_x, xi=config.xi, norm=config.norm, delta=config.delta,
            max_passes=config.uap_max_passes, x_val=data.x_test, seed=config.seed, progress=progress,
        )  # fmt: skip
    else:
        uap = UAP_METHODS["sgd"](
            victim, uap_x, xi=config.xi, norm=config.norm, x_val=data.x_test, seed=config.seed, progress=progress
        )
    log.info("UAP fooling rate %.3f on the held-out test set (%.1f s)", uap.fooling_rate_val, uap.seconds)
    probes = select_probes(
        victim,
        x_v,
        n_clusters=config.n_probes,
        n_views=config.n_views,
        n_neighbors=config.n_neighbors,
        seed=config.seed,
    )
    images = x_v[probes.sets]
    fps = zoo_fingerprints(zoo, uap.v, images, progress=progress)
    return Profile(uap, images, fps, data.input_shape, tuple(data.classes))


def _check_calibration(n_calibration: int, config: ProtectConfig) -> None:
    needed = 3 if config.null == "models" else 2
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
    if config.train_on_calibration:
        raise ConfigError(
            f"the encoder trains on {len(archs)} architecture(s), too few for the leave-arch-out calibration "
            f"({AUTO_MIN_ARCHS} or more) that train_on_calibration needs"
        )
    log.warning(
        "the encoder trains on %d architecture(s): the null is scored by the kit's own encoder "
        "(leave-arch-out calibration needs %d or more; see docs/method.md)", len(archs), AUTO_MIN_ARCHS,
    )  # fmt: skip
    return "kit"


def _encoder_ids(assignment: dict[str, str], train_on_calibration: bool) -> list[str]:
    """The models that train the kit's encoder (besides the victim)."""
    parts = ("train", "calibration") if train_on_calibration else ("train",)
    return sorted(i for i, part in assignment.items() if part in parts)


def _leave_arch_out_sets(
    cards: dict[str, dict[str, Any]], assignment: dict[str, str], calibration: str, train_on_calibration: bool
) -> dict[str, list[str]]:
    """Architecture of the calibration models -> the encoder-training models of other architectures.

    Empty for ``kit`` calibration. Refuses a split where leaving an architecture out leaves
    no homologous training model (the encoder needs both labels).
    """
    if calibration == "kit":
        return {}
    train_ids = _encoder_ids(assignment, train_on_calibration)
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


def _plan_models(zoo: Zoo, config: ProtectConfig) -> tuple[dict[str, str], ProtectConfig, dict[str, list[str]]]:
    """Split the zoo's models and settle the calibration, refusing a split that cannot calibrate.

    Returns the assignment of :func:`split_models`, ``config`` with its calibration resolved,
    and the leave-arch-out training sets of :func:`_leave_arch_out_sets`.
    """
    assignment = split_models(zoo.cards, config, zoo.victim["arch"])
    _check_calibration(sum(part == "calibration" for part in assignment.values()), config)
    cards = {c["id"]: c for c in zoo.cards}
    config = replace(config, calibration=resolve_calibration(cards, assignment, config))
    return assignment, config, _leave_arch_out_sets(cards, assignment, config.calibration, config.train_on_calibration)


def fit_kit(zoo: Zoo, profile: Profile, config: ProtectConfig = ProtectConfig(), *, progress: bool = True) -> Kit:
    """Split the zoo's models, train the encoder (and the leave-arch-out ones) and calibrate the null."""
    start = time.perf_counter()
    vcard = zoo.victim
    fps = profile.fingerprints
    assignment, config, without = _plan_models(zoo, config)
    cal_ids = sorted(i for i, part in assignment.items() if part == "calibration")
    cards = {c["id"]: c for c in zoo.cards}
    train_ids = _encoder_ids(assignment, config.train_on_calibration)
    num_classes = len(profile.classes)
    augmented = {
        spec: zoo_fingerprints(zoo, profile.uap.v, profile.images, ids=[vcard["id"], *train_ids],
                               modification=spec, progress=progress)
        for spec in config.augment
    }  # fmt: skip

    def train_on(ids: list[str]) -> FingerprintEncoder:
        ids = [vcard["id"], *ids]  # the victim is always known: it is the reference
        train_fps = [fps[i] for i in ids] + [extra[i] for extra in augmented.values() for i in ids]
        # Each modified copy keeps its model's label: the label list repeats once per augmentation.
        labels = [0 if cards[i]["role"] in ("victim", "piracy") else 1 for i in ids] * (1 + len(augmented))
        return train_encoder(
            torch.stack(train_fps), torch.tensor(labels), num_classes=num_classes, config=config.encoder,
            progress=progress,
        )  # fmt: skip

    cal_archs = [cards[i]["arch"] for i in cal_ids]
    encoder = train_on(train_ids)
    null_encoders = {}
    for k, (arch, rest) in enumerate(without.items()):
        log.info("leave-arch-out calibration: encoder %d of %d, without architecture %s", k + 1, len(without), arch)
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
        "config": config.to_dict(),
        "uap": profile.uap.summary(),
        "models": {
            part: sorted(i for i, p in assignment.items() if p == part)
            for part in ("train", "calibration", "heldout", "excluded")
        },
        "calibration_archs": cal_archs,
        "versions": _versions(),
    }
    kit = Kit(
        path=None,
        info=info,
        v=profile.uap.v,
        probe_images=profile.images,
        encoder=encoder,
        victim_fingerprints=fps[vcard["id"]],
        null_fingerprints=torch.stack([fps[i] for i in cal_ids]),
        sha256="",
        null_encoders=null_encoders,
    )
    null = kit.null_similarities()
    info["null"] = {"mean": round(float(null.mean()), 4), "std": round(float(null.std()), 4), "models": len(cal_ids)}
    info["encoder_seconds"] = round(time.perf_counter() - start, 1)
    return kit


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
    config = _plan_models(zoo, config)[1]  # refuses an impossible split before the long work
    if out is not None:
        ensure_writable_dir(Path(out))
    start = time.perf_counter()
    kit = fit_kit(zoo, profile_zoo(zoo, config, data_dir=data_dir, progress=progress), config, progress=progress)
    kit.info["build_seconds"] = round(time.perf_counter() - start, 1)
    if out is not None:
        kit.save(out)
    return kit


def kit_summary(kit: Kit) -> str:
    """A few lines describing a kit."""
    u = kit.info["uap"]
    m = kit.info["models"]
    n_train = len(m["train"]) + (len(m["calibration"]) if kit.config.train_on_calibration else 0)
    return (
        f"kit {kit.path} (sha256 {kit.sha256[:12]})\n"
        f"  victim {kit.info['victim']['id']} ({kit.info['victim']['arch']}), {kit.num_classes} classes, input {kit.input_shape}\n"
        f"  UAP {u['method']} {u['norm']} xi={u['xi']}: fooling rate {u['fooling_rate_val']} on held-out data\n"
        f"  {kit.n_sets} probe sets of {kit.probe_images.shape[1]} points; encoder trained on {n_train} models, "
        f"null from {len(m['calibration'])} homologous models (mean similarity {kit.info['null']['mean']}, "
        f"calibration {kit.config.calibration})"
    )
