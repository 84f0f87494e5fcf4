"""Train the owner's own victim as an owner would, outside uapfp: a ConvMixer (owner_nets.py) on
the first 30,000 Fashion-MNIST training images with the owner's recipe (AdamW, one-cycle learning
rate, label smoothing, 10 epochs, float32), saved as safetensors. The lineage benchmark's second
victim (docs/results-fmnist.md):

    PYTHONPATH=examples python examples/train_owner_victim.py --out runs/victim2/convmixer.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from owner_nets import convmixer
from safetensors.torch import save_file
from torch import nn

from uapfp.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = load_dataset("fashion-mnist")
    x, y = data.x_train[:30000], data.y_train[:30000]
    torch.manual_seed(args.seed)
    model = convmixer()
    steps = args.epochs * ((len(x) + 127) // 128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():
            acc = torch.cat([model(b).argmax(1) for b in data.x_test.split(1000)]).eq(data.y_test).float().mean()
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)


if __name__ == "__main__":
    main()
