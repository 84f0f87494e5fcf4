"""One training step of the fingerprint encoder (protect's default architecture, batch 512, fingerprints of
2 x 100 probes x 10 classes), float32 against bfloat16 autocast, on this machine's threads (docs/zoo.md)."""

from __future__ import annotations

import time

import torch

from uapfp.config import EncoderConfig
from uapfp.encoder import SupConLoss, build_encoder


def step_ms(*, bf16: bool, steps: int = 50) -> float:
    """Mean milliseconds of one SupCon training step of a fresh encoder on random probability fingerprints."""
    torch.manual_seed(0)
    config = EncoderConfig()
    encoder = build_encoder(config, 2000)
    opt = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = SupConLoss(temperature=config.temperature)
    f = torch.rand(config.batch_size, 2000)
    f = f / f.sum(1, keepdim=True)
    labels = torch.randint(0, 2, (config.batch_size,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = encoder(f)
        loss = loss_fn(z.float(), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1000


if __name__ == "__main__":
    for bf16 in (False, True):
        print(f"{'bfloat16' if bf16 else 'float32'}: {step_ms(bf16=bf16):.1f} ms per step ({torch.get_num_threads()} threads)")
