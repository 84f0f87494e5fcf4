"""The one training loop, shared by victims, homologous models and extraction attacks."""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .errors import ConfigError

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam", "rmsprop")
BATCH_SIZES = (64, 128, 256)
_DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "rmsprop": 1e-3}
# SGD's default rate is for this batch size and scales linearly with the batch (Goyal et al. 2017).
_SGD_REFERENCE_BATCH = 128


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run.

    ``lr`` None takes the optimizer's default: SGD (Nesterov momentum 0.9) 0.05 at batch 128,
    scaled linearly with the batch size (the linear scaling rule of Goyal et al. 2017: 0.025 at
    64, 0.1 at 256), Adam 2e-3, RMSprop 1e-3. ``schedule`` ``onecycle`` (warm-up then cosine
    decay, which reaches the paper's accuracies in few epochs) or ``step:E:G`` (the rate times
    G every E epochs). ``label_smoothing`` eps mixes every target with the uniform
    distribution, ``(1 - eps) y + eps / K``. ``augment`` is ``none`` or one or more of
    ``shift:P`` (each batch rolled by one random shift of up to P pixels in each direction),
    ``crop:P`` (each image cropped at a random offset from its copy zero-padded by P pixels, the
    standard CIFAR augmentation with ``flip``) and ``flip`` (each image mirrored left-right with
    probability 1/2), joined by ``+``: ``crop:4+flip``. ``cpu_bf16`` trains in bfloat16 autocast
    on the CPU too (on a GPU training always does): on a CPU with AMX (:func:`cpu_has_amx`) the
    CIFAR forms train 1.4-2.7 times faster, on one without it slower (docs/benchmark-cifar10.md).
    """

    optimizer: str = "adam"
    batch_size: int = 128
    epochs: int = 6
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: str = "none"
    seed: int = 0
    cpu_bf16: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("batch_size and epochs must be positive")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _parse_schedule(self.schedule)
        object.__setattr__(self, "augment", canonical_augment(self.augment))

    def matches(self, recorded: object) -> bool:
        """Whether ``recorded`` (the :meth:`to_dict` of an earlier run, perhaps from before a
        field was added, which then had its default) describes this recipe."""
        if not isinstance(recorded, dict):
            return False
        defaults = {f.name: f.default for f in fields(self)}
        return {**defaults, **recorded} == self.to_dict()

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.optimizer == "sgd":
            return _DEFAULT_LR["sgd"] * self.batch_size / _SGD_REFERENCE_BATCH
        return _DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["lr"] = self.resolved_lr
        return d


@dataclass
class TrainResult:
    """What a training run reports (``restarts``: runs restarted at half the rate after diverging)."""

    seconds: float
    final_loss: float
    samples_seen: int
    restarts: int = 0
    lr: float = 0.0


class _Diverged(Exception):
    """The loss became NaN or infinite."""


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config``."""
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd = config.resolved_lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against integer labels (N,) or probability vectors (N, K), the targets
    smoothed towards the uniform distribution by ``smoothing``."""
    if target.dim() == 1:
        return F.cross_entropy(logits, target, label_smoothing=smoothing)
    if smoothing:
        target = (1 - smoothing) * target + smoothing / target.shape[1]
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _parse_schedule(text: str) -> tuple[str, int, float]:
    if text == "onecycle":
        return "onecycle", 0, 0.0
    kind, _, rest = text.partition(":")
    every, _, gamma = rest.partition(":")
    try:
        if kind == "step" and int(every) >= 1 and 0 < float(gamma) <= 1:
            return "step", int(every), float(gamma)
    except ValueError:
        pass
    raise ConfigError(f"schedule must be onecycle or step:EPOCHS:GAMMA, not {text!r}")


@dataclass(frozen=True)
class Augment:
    """A parsed ``augment`` recipe: the batch roll, the per-image crop padding, the flip."""

    shift: int = 0
    crop: int = 0
    flip: bool = False

    def __bool__(self) -> bool:
        return bool(self.shift or self.crop or self.flip)


def _parse_augment(text: str) -> Augment:
    """``none``, or ``shift:P``, ``crop:P`` and ``flip`` joined by ``+``, each at most once."""
    if text == "none":
        return Augment()
    parts: dict[str, int] = {}
    for part in text.split("+"):
        kind, colon, pixels = part.partition(":")
        if kind == "flip" and not colon and kind not in parts:
            parts[kind] = 1
        elif kind in ("shift", "crop") and pixels.isascii() and pixels.isdigit() and int(pixels) >= 1 and kind not in parts:
            parts[kind] = int(pixels)
        else:
            raise ConfigError(f"augment must be none, or shift:P, crop:P and flip joined by +, not {text!r}")
    return Augment(shift=parts.get("shift", 0), crop=parts.get("crop", 0), flip="flip" in parts)


def canonical_augment(text: str) -> str:
    """``text``'s augmentation written one way (shift, crop, flip), so that one recipe has one name."""
    aug = _parse_augment(text)
    parts = [f"shift:{aug.shift}"] * bool(aug.shift) + [f"crop:{aug.crop}"] * bool(aug.crop) + ["flip"] * aug.flip
    return "+".join(parts) or "none"


def augment_batch(xb: torch.Tensor, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """``xb`` (N, C, H, W) augmented by ``aug``, the random draws taken from ``gen``."""
    if aug.shift:
        dx, dy = (int(v) for v in torch.randint(-aug.shift, aug.shift + 1, (2,), generator=gen))
        xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
    n, _, h, w = xb.shape
    if aug.crop:
        p = aug.crop
        padded = F.pad(xb, (p, p, p, p))
        off = torch.randint(0, 2 * p + 1, (2, n), generator=gen).to(xb.device)  # drawn on the CPU: any device
        rows = (off[0][:, None] + torch.arange(h, device=xb.device))[:, None, :, None]  # (N, 1, H, 1)
        cols = (off[1][:, None] + torch.arange(w, device=xb.device))[:, None, None, :]  # (N, 1, 1, W)
        batch = torch.arange(n, device=xb.device)[:, None, None, None]
        chans = torch.arange(xb.shape[1], device=xb.device)[None, :, None, None]
        xb = padded[batch, chans, rows, cols]
    if aug.flip:
        flip = (torch.rand(n, generator=gen) < 0.5).to(xb.device)
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
    return xb


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    config: TrainConfig,
    progress: bool = True,
    desc: str = "train",
    max_restarts: int = 3,
) -> TrainResult:
    """Train ``model`` in place on images ``x`` (N, C, H, W) and targets ``y``.

    ``y`` holds integer labels (N,) or soft labels (N, K) (probabilities returned by a
    victim). Deterministic for a given ``config.seed``. A run whose loss becomes NaN or
    infinite is restarted from the initial weights at half the learning rate (at most
    ``max_restarts`` times); a run that never diverges is unaffected by this guard.
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} targets")
    if len(x) == 0:
        raise ValueError("no training data")
    initial = copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    lr = config.resolved_lr
    for restart in range(max_restarts + 1):
        try:
            loss, seen = _train_once(model, x, y, config=replace(config, lr=lr), progress=progress, desc=desc)
            return TrainResult(time.perf_counter() - start, loss, seen, restart, lr)
        except _Diverged:
            if restart == max_restarts:
                raise RuntimeError(
                    f"{desc}: training diverged {max_restarts + 1} times; lower the learning rate"
                ) from None
            log.warning("%s: the loss diverged at learning rate %g; restarting at %g", desc, lr, lr / 2)
            model.load_state_dict(initial)
            lr /= 2
    raise AssertionError("unreachable")


def _train_once(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, config: TrainConfig, progress: bool, desc: str
) -> tuple[float, int]:
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    device = training_device()
    if device.type != "cpu":  # the data on the device once, the model back on the CPU at the end
        model.to(device)
        x, y = x.to(device), y.to(device)
    opt = make_optimizer(model, config)
    steps_per_epoch = (len(x) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    kind, every, gamma = _parse_schedule(config.schedule)
    aug = _parse_augment(config.augment)
    if kind == "onecycle":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.resolved_lr, total_steps=total, pct_start=0.15, anneal_strategy="cos"
        )
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=every, gamma=gamma)
    # channels_last makes the small CNNs' convolutions and pooling 10-40% faster on CPU; a user's net
    # that refuses it (one that flattens an activation with view) trains in its own format.
    channels_last = x.dim() == 4 and _runs_channels_last(model, x[:2])
    model.train()
    loss_value = float("nan")
    bar = tqdm(total=total, desc=desc, leave=False, disable=not progress, unit="step")
    try:
        for _epoch in range(config.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(steps_per_epoch):
                idx = order[i * config.batch_size : (i + 1) * config.batch_size]
                xb = x[idx]
                if aug:
                    xb = augment_batch(xb, aug, gen)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with in_precision(config, device):
                    logits = model(xb)
                loss = soft_cross_entropy(logits.float(), y[idx], smoothing=config.label_smoothing)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise _Diverged
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if kind == "onecycle":
                    sched.step()
                bar.update(1)
            if kind == "step":
                sched.step()
            bar.set_postfix(loss=f"{loss_value:.3f}")
    finally:
        bar.close()
        model.eval()
        model.to("cpu")
    return loss_value, total * config.batch_size


def in_precision(config: TrainConfig, device: str | torch.device = "cpu") -> torch.autocast:
    """The forward passes of ``config``'s recipe on ``device``: bfloat16 autocast on a CUDA device, and on
    the CPU where ``config.cpu_bf16`` asks for it; float32 otherwise."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda" or config.cpu_bf16)


def _runs_channels_last(model: nn.Module, sample: torch.Tensor) -> bool:
    """Turn ``model`` channels-last if it computes in that format (one forward of ``sample`` in
    eval mode, which changes no state and draws no random numbers); else leave it as it was."""
    model.to(memory_format=torch.channels_last)
    model.eval()
    try:
        with torch.no_grad():
            model(sample.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        model.to(memory_format=torch.contiguous_format)
        return False
    return True


def cpuinfo(field: str) -> str | None:
    """The first value of ``field`` (``model name``, ``flags``...) in ``/proc/cpuinfo``; None where
    the file or the field is missing (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                name, sep, value = line.partition(":")
                if sep and name.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX bfloat16 tiles (Intel Sapphire Rapids and later: ``amx_bf16`` in
    ``/proc/cpuinfo``), where bfloat16 autocast makes convolutions several times faster."""
    return "amx_bf16" in (cpuinfo("flags") or "").split()


def training_device() -> torch.device:
    """Where :func:`train_model` trains: ``$UAPFP_DEVICE`` (``cpu`` or ``cuda``) when set, else the
    first CUDA device when there is one (data on the device, bfloat16 autocast), else the CPU.
    The model comes back on the CPU either way."""
    wanted = os.environ.get("UAPFP_DEVICE", "").strip().lower()
    if wanted not in ("", "cpu", "cuda"):
        raise ConfigError(f"UAPFP_DEVICE must be cpu or cuda, not {wanted!r}")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("UAPFP_DEVICE=cuda but torch sees no CUDA device")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


#: Images per forward pass when predicting: on a 2-core CPU, batches of 256 took the CIFAR forms
#: and the classic families half the time that batches of 1,024 did, and the paper's small CNNs
#: about the same (channels-last weights; ``scripts/inference-batch.py``; docs/zoo.md).
INFERENCE_BATCH = 256


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Logits of ``model`` on ``x``, in eval mode, batched."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on (x, y)."""
    return float((predict_logits(model, x).argmax(1) == y).float().mean())
