"""A kit's hyperparameters: :class:`ProtectConfig` and the encoder's :class:`EncoderConfig`.

Frozen dataclasses, validated when built, written into every kit (``kit.json``) and loadable
from a JSON file (``uapfp protect --config FILE``). Their fields carry the help text of the
command-line flags generated from them (:mod:`uapfp.options`). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError
from .options import JsonConfig, option

#: The UAP algorithms (:data:`uapfp.uap.UAP_METHODS` holds them under these names) and norms.
UAP_METHOD_NAMES = ("deepfool", "sgd")
NORMS = ("l2", "linf")
#: The statistical tests (:mod:`uapfp.significance`) and calibrations (:mod:`uapfp.calibration`).
TEST_NAMES = ("models", "global")
CALIBRATION_NAMES = ("kit", "leave-arch-out")
CALIBRATION_CHOICES = ("auto", *CALIBRATION_NAMES)
#: The fingerprint methods (:mod:`uapfp.methods`); ``A+B`` combines them.
METHOD_NAMES = ("uap", "uap-raw", "errors", "sac", "ipguard", "siblings")
OUTPUT_MODE_NAMES = ("probs", "topk:3", "label")


@dataclass(frozen=True)
class EncoderConfig(JsonConfig):
    """Encoder architecture and training hyperparameters (paper section 4.3; docs/method.md).

    ``output_modes`` lists the answer modes training fingerprints are randomly truncated to,
    so that one encoder serves suspects that return full probabilities, their top k, or only
    a label.
    """

    hidden: int = 512
    rep_dim: int = 128
    proj_dim: int = 64
    input_transform: str = "sqrt"
    dropout: float = 0.1
    temperature: float = field(
        default=0.15, metadata=option("the contrastive loss's temperature (the paper's: 0.1; docs/method.md)")
    )
    steps: int = field(default=600, metadata=option("encoder training steps"))
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    output_modes: tuple[str, ...] = OUTPUT_MODE_NAMES
    seed: int = field(default=0, metadata=option("the encoder's seed (--seed seeds the split, UAP and probes)"))

    what = "encoder"
    # measured and not adopted (docs/method.md names the commit that measured it)
    retired = {"temperature_jitter": 0.0}

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"the encoder's temperature must be positive, got {self.temperature}")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("the encoder needs at least 1 step and batches of at least 2 fingerprints")


@dataclass(frozen=True)
class ProtectConfig(JsonConfig):
    """Hyperparameters of a kit.

    UAP: ``uap_method`` (``deepfool``, the reference algorithm, or ``sgd``), ``norm`` and
    radius ``xi``, computed on ``uap_images`` images of D_V. Probes: ``n_probes`` clusters,
    ``n_views`` views from ``n_neighbors`` neighbours. Models are split per role and
    architecture: ``train_fraction`` of the piracy and homologous models train the encoder,
    ``calibration_fraction`` of the homologous models form the null distribution (the kit's
    encoder never sees them), the rest is held out for :func:`uapfp.evaluate.evaluate`.
    ``exclude_archs`` / ``exclude_attacks`` hold out every model of those architectures or
    attacks (leave-one-out validation); ``paper_split`` drops the victim's architecture from
    all suspects, as the paper did. ``null`` names the test (:mod:`uapfp.significance`):
    ``models``, the default, tests the suspect's mean similarity as one more draw from the
    population of honest models; ``global`` is the paper's Welch t-test on per-fingerprint
    similarities. ``calibration`` says which encoder scores the calibration models
    (:mod:`uapfp.calibration`): ``kit`` (the kit's own) or ``leave-arch-out`` (for each, an
    encoder trained like the kit's but without that model's architecture); ``auto`` (the
    default) is ``leave-arch-out`` when the encoder's training models span at least
    ``AUTO_MIN_ARCHS`` architectures, else ``kit``. A kit records the calibration it used.
    """

    uap_method: str = field(default="sgd", metadata=option("UAP algorithm", choices=UAP_METHOD_NAMES))
    norm: str = field(default="linf", metadata=option("UAP norm", choices=NORMS))
    xi: float = field(default=0.3, metadata=option("UAP radius"))
    uap_images: int = field(default=2000, metadata=option("D_V images the UAP is computed on"))
    uap_max_passes: int = 10
    delta: float = 0.2
    n_probes: int = field(default=100, metadata=option("probe points N (K-means clusters)", flag="--probes"))
    n_views: int = field(default=20, metadata=option("views m of the probe points", flag="--views"))
    n_neighbors: int | None = None
    encoder: EncoderConfig = field(
        default_factory=EncoderConfig, metadata=option(prefix="encoder-", only=("steps", "temperature", "seed"))
    )
    train_fraction: float = field(
        default=0.5, metadata=option("share of the non-calibration models that train the encoder")
    )
    calibration_fraction: float = field(
        default=1 / 3, metadata=option("share of the homologous models set aside for the null")
    )
    exclude_archs: tuple[str, ...] = field(default=(), metadata=option("hold out every model of these architectures"))
    exclude_attacks: tuple[str, ...] = field(
        default=(), metadata=option("hold out every piracy model of these attacks")
    )
    paper_split: bool = field(default=False, metadata=option("drop the victim's architecture from all suspects"))
    alpha: float = field(
        default=0.01,
        metadata=option("significance level (0.01: at 0.05 honest models of architectures the zoo never held are "
                        "flagged far above the level; docs/method.md)"),
    )  # fmt: skip
    fingerprints: int = field(default=20, metadata=option("fingerprints per verification"))
    null: str = field(
        default="models",
        metadata=option("the test: models (prediction t-test against honest models) or global (the paper's "
                        "Welch t-test)", choices=TEST_NAMES),
    )  # fmt: skip
    calibration: str = field(
        default="auto",
        metadata=option("which encoder scores the null's models; auto: leave-arch-out on a zoo of 4 or more "
                        "architectures, else kit (docs/method.md)", choices=CALIBRATION_CHOICES),
    )  # fmt: skip
    method: str = field(
        default="auto",
        metadata=option("the fingerprint method verify uses by default: " + ", ".join(METHOD_NAMES) + ", A+B, "
                        "or auto: siblings when the zoo trained the victim and its siblings, else uap (a victim of your own "
                        "keeps uap, unless its p-values cannot reach the level and you handed in 2 or more siblings with "
                        "--victim-siblings; docs/method.md)"),
    )  # fmt: skip
    sequential: bool = True
    """verify stops querying once the sequential test settles the verdict (docs/method.md); False: every set, at alpha."""
    lineage_sets: int = field(default=20, metadata=option("query sets of the methods that read the victim's errors"))
    lineage_per_set: int = field(default=50, metadata=option("held-out images per such set"))
    seed: int = field(default=0, metadata=option("seed of the split, the UAP and the probes"))

    what = "kit"
    # measured and not adopted (docs/method.md names the commit that measured them)
    retired = {"augment": (), "stratify": ("arch",), "train_on_calibration": False}

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_CHOICES:
            raise ConfigError(f"calibration must be one of {', '.join(CALIBRATION_CHOICES)}, not {self.calibration!r}")
        if self.null not in TEST_NAMES:
            raise ConfigError(f"null must be one of {', '.join(TEST_NAMES)}, not {self.null!r}")
        if self.uap_method not in UAP_METHOD_NAMES:
            raise ConfigError(f"unknown UAP method {self.uap_method!r}; use {', '.join(UAP_METHOD_NAMES)}")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; use l2 or linf")
        if not self.xi > 0:
            raise ConfigError(f"the UAP radius xi must be positive, got {self.xi}")
        if self.n_probes < 1 or self.n_views < 1 or self.uap_images < 1:
            raise ConfigError("probes, views and uap_images must be positive")
        if self.fingerprints > self.n_views + 1 or self.fingerprints < 2:
            raise ConfigError(f"fingerprints must be between 2 and n_views + 1 = {self.n_views + 1}")
        if not 0 < self.train_fraction < 1 or not 0 < self.calibration_fraction < 1:
            raise ConfigError("train_fraction and calibration_fraction must be in (0, 1)")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.method != "auto":
            check_method_name(self.method)
        if self.lineage_sets < 2 or self.lineage_per_set < 5:
            raise ConfigError("lineage_sets must be >= 2 and lineage_per_set >= 5")


def check_method_name(name: str) -> str:
    """``name`` if it names a method or a combination of distinct methods, else a ConfigError."""
    parts = name.split("+") if isinstance(name, str) else []
    if not parts or not all(p in METHOD_NAMES for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError(f"unknown method {name!r}; use one of {', '.join(METHOD_NAMES)}, or A+B to combine them")
    return name
