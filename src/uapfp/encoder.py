"""The fingerprint encoder and the supervised contrastive loss (paper section 4.3).

An encoder (a base network and a projection head, as in SimCLR) maps a fingerprint to an
L2-normalised embedding. It is trained with the supervised contrastive loss of Khosla et al.
(NeurIPS 2020) on fingerprints of the victim and piracy models (label 0) and of homologous
models (label 1); every view of a model is a positive of the model's other views and of every
fingerprint with the same label.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import EncoderConfig
from .errors import ConfigError
from .suspects.base import OutputMode

log = logging.getLogger(__name__)


class SupConLoss(nn.Module):
    """Supervised contrastive loss, the L_out variant (Khosla et al., NeurIPS 2020, eq. 2).

    For embeddings ``z`` (B, D), L2-normalised, and labels (B,)::

        L = mean_i  -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a != i} exp(z_i.z_a / tau) )

    where P(i) are the other samples with i's label. Anchors without any positive are left
    out of the mean (they have no term); a batch without any positive pair gives 0.

    Args:
        temperature: tau > 0.
    """

    def __init__(self, *, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.temperature = temperature

    def __repr__(self) -> str:
        return f"SupConLoss(temperature={self.temperature})"

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or labels.shape != (z.shape[0],):
            raise ValueError(f"expected z (B, D) and labels (B,), got {tuple(z.shape)} and {tuple(labels.shape)}")
        b = z.shape[0]
        sim = z @ z.T / self.temperature
        self_mask = torch.eye(b, dtype=torch.bool, device=z.device)
        # log of exp(s_ip) / sum_{a != i} exp(s_ia), stable through logsumexp.
        log_denominator = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
        log_prob = sim - log_denominator
        positives = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = positives.sum(dim=1)
        has_pos = n_pos > 0
        if not has_pos.any():
            return z.sum() * 0.0
        mean_log_prob = (log_prob * positives).sum(dim=1)[has_pos] / n_pos[has_pos]
        return -mean_log_prob.mean()


INPUT_TRANSFORMS = ("none", "sqrt", "log")


class FingerprintEncoder(nn.Module):
    """Base MLP plus projection head; returns L2-normalised embeddings (B, proj_dim).

    Args:
        in_dim: fingerprint length, 2 N K.
        hidden, rep_dim: widths of the base network (the representation has rep_dim).
        proj_dim: width of the projection head's output, the embedding.
        input_transform: applied to the probabilities first: ``none``, ``sqrt`` (Hellinger
            coordinates) or ``log`` (log(p + 1e-4)).
        dropout: dropout in the base network while training.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        hidden: int = 512,
        rep_dim: int = 128,
        proj_dim: int = 64,
        input_transform: str = "sqrt",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if input_transform not in INPUT_TRANSFORMS:
            raise ConfigError(f"input_transform must be one of {INPUT_TRANSFORMS}")
        self.in_dim = in_dim
        self.input_transform = input_transform
        self.base = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, rep_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(rep_dim, rep_dim), nn.ReLU(), nn.Linear(rep_dim, proj_dim))

    def transform(self, f: torch.Tensor) -> torch.Tensor:
        if self.input_transform == "sqrt":
            return f.clamp_min(0).sqrt()
        if self.input_transform == "log":
            return torch.log(f.clamp_min(0) + 1e-4)
        return f

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Fingerprints (B, 2 N K) -> embeddings (B, proj_dim), unit norm."""
        if f.shape[-1] != self.in_dim:
            raise ValueError(f"fingerprints of length {f.shape[-1]}, the encoder expects {self.in_dim}")
        return F.normalize(self.head(self.base(self.transform(f))), dim=-1)


def build_encoder(config: EncoderConfig, in_dim: int) -> FingerprintEncoder:
    """An untrained encoder of ``config``'s architecture for fingerprints of length ``in_dim``."""
    return FingerprintEncoder(
        in_dim, hidden=config.hidden, rep_dim=config.rep_dim, proj_dim=config.proj_dim,
        input_transform=config.input_transform, dropout=config.dropout,
    )  # fmt: skip


def train_encoder(
    fingerprints: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    config: EncoderConfig = EncoderConfig(),
    progress: bool = False,
) -> FingerprintEncoder:
    """Train an encoder on fingerprints (M, S, D) of M models with labels (M,).

    Label 0: the victim and piracy models; label 1: homologous models. Each step draws a
    batch balanced between the two labels, every fingerprint a random (model, view) pair
    truncated to a random answer mode (see :func:`augment`).
    """
    if fingerprints.dim() != 3 or labels.shape != (fingerprints.shape[0],):
        raise ValueError("fingerprints must be (M, S, D) with labels (M,)")
    if set(labels.tolist()) != {0, 1}:
        raise ConfigError("encoder training needs both piracy (or victim) and homologous models")
    modes = [OutputMode.parse(m) for m in config.output_modes]
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    m_models, s_sets, dim = fingerprints.shape
    encoder = build_encoder(config, dim)
    opt = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)
    loss_fn = SupConLoss(temperature=config.temperature)
    by_label = [(labels == c).nonzero().squeeze(1) for c in (0, 1)]
    half = config.batch_size // 2
    start = time.perf_counter()
    encoder.train()
    bar = tqdm(range(config.steps), desc="encoder", disable=not progress, leave=False)
    for _step in bar:
        models = torch.cat([
            grp[torch.randint(len(grp), (n,), generator=gen)]
            for grp, n in zip(by_label, (half, config.batch_size - half))
        ])  # fmt: skip
        views = torch.randint(s_sets, (len(models),), generator=gen)
        batch = augment(fingerprints[models, views], modes, num_classes, gen)
        loss = loss_fn(encoder(batch), labels[models])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if _step % 50 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    encoder.eval()
    log.info("encoder trained in %.1f s (final loss %.4f)", time.perf_counter() - start, float(loss.detach()))
    return encoder


def augment(batch: torch.Tensor, modes: list[OutputMode], num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Training augmentation of fingerprints (B, D): each truncated to a random answer mode."""
    out = batch.reshape(len(batch), -1, num_classes)
    pick = torch.randint(len(modes), (len(batch),), generator=gen)
    result = out.clone()
    for i, mode in enumerate(modes):
        rows = pick == i
        if rows.any() and mode.kind != "probs":
            result[rows] = mode.apply(out[rows].reshape(-1, num_classes)).reshape(out[rows].shape)
    return result.reshape(len(batch), -1)


@torch.no_grad()
def embed(encoder: FingerprintEncoder, fingerprints: torch.Tensor) -> torch.Tensor:
    """Embeddings (..., P) of fingerprints (..., D), in eval mode."""
    encoder.eval()
    shape = fingerprints.shape
    return encoder(fingerprints.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)
