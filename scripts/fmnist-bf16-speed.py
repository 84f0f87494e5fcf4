"""Training step time of the Fashion-MNIST architectures A-E, float32 against bfloat16 autocast on the CPU
(what ``TrainConfig(cpu_bf16=True)`` does): python scripts/fmnist-bf16-speed.py. Batch 128 of random 1x28x28
images, Adam, channels_last as the training loop does, the mean of 10 steps after 2 warm-up steps."""

import time

import torch

from uapfp.archs import create_model

torch.manual_seed(0)
x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
for name in "ABCDE":
    out = []
    for bf in (False, True):
        m = create_model(name, in_channels=1, image_size=(28, 28), num_classes=10).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(m.parameters())
        m.train()
        for i in range(12):
            if i == 2:
                t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
                loss = torch.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append((time.perf_counter() - t) / 10 * 1000)
    print(f"{name}: fp32 {out[0]:.1f} ms, bf16 {out[1]:.1f} ms per step", flush=True)
