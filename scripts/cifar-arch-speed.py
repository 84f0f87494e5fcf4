"""Seconds per training step of the CIFAR forms at a width: python scripts/cifar-arch-speed.py [--bf16] NAME...

How the CPU preset of `uapfp bench cifar10` chose its widths (src/uapfp/bench/cifar10.py): a batch
of 128 random 3x32x32 images, SGD, channels_last as the training loop does, the mean of 5 steps
after 2 warm-up steps, and the inference time of 1,000 images (2-core VM, nothing else running).
``--bf16`` trains in bfloat16 autocast as ``TrainConfig(cpu_bf16=True)`` does (fast on a CPU with AMX);
``--fmnist`` times 1x28x28 inputs instead (the Fashion-MNIST architectures A-E); ``--compile`` runs the
model through ``torch.compile`` (its compilation is in the warm-up steps, timed apart); ``--one-thread``
uses one torch thread, as a Ray worker of the zoo does.
"""

import sys
import time

import torch

from uapfp.archs import create_model

flags = ("--bf16", "--fmnist", "--compile", "--one-thread")
bf16 = "--bf16" in sys.argv[1:]
c, side = (1, 28) if "--fmnist" in sys.argv[1:] else (3, 32)
names = [a for a in sys.argv[1:] if a not in flags]
if "--one-thread" in sys.argv[1:]:
    torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(128, c, side, side).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
for name in names:
    m = create_model(name, in_channels=c, image_size=(side, side), num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    m.train()
    forward = torch.compile(m) if "--compile" in sys.argv[1:] else m
    warm = time.perf_counter()
    for i in range(7):
        if i == 2:
            start = time.perf_counter()
            warm = start - warm
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    step = (time.perf_counter() - start) / 5
    m.eval()
    with torch.no_grad():
        start = time.perf_counter()
        m(torch.randn(1000, c, side, side).contiguous(memory_format=torch.channels_last))
        infer = time.perf_counter() - start
    params = sum(p.numel() for p in m.parameters()) / 1e6
    print(f"{name:22s} {params:.3f}M parameters, {step * 1000:.0f} ms per step, "
          f"{step * 25000 / 128:.0f} s per epoch of 25,000 images, {infer:.2f} s per 1,000 predictions, "
          f"{warm:.1f} s of warm-up")
