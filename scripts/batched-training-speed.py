"""Several small models trained in one batched pass, against one after another: python scripts/batched-training-speed.py [K] [ARCH...]

The cost issue's lever "several small models in one batched pass" (docs/zoo.md): K models of one
architecture (the paper's A-E, 1x28x28 inputs, batch 128, each model its own batch of images as
a zoo's models have their own data), one SGD step each, timed two ways:

- in a row: K ordinary training steps (channels-last, as `uapfp.training` trains);
- batched: the K models' parameters stacked (`torch.func.stack_module_state`) and one step of
  `vmap(grad(loss))` over them, which runs each convolution as one grouped convolution.

The mean of 10 steps after 3 warm-up steps, with 1 torch thread (a Ray worker's) and with 2.
"""

import copy
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from uapfp.archs import create_model

args = sys.argv[1:]
k = int(args.pop(0)) if args and args[0].isdigit() else 4
archs = args or ["A", "B", "C", "D", "E"]
print(f"torch {torch.__version__}; {k} models per pass; ms per step of all {k} models (mean of 10)")
for threads in (1, 2):
    torch.set_num_threads(threads)
    for arch in archs:
        torch.manual_seed(0)
        models = [create_model(arch).train() for _ in range(k)]
        x = torch.rand(k, 128, 1, 28, 28)
        y = torch.randint(0, 10, (k, 128))

        opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]

        def in_a_row() -> None:
            for m, opt, xb, yb in zip(models, opts, x, y):
                loss = F.cross_entropy(m(xb.contiguous(memory_format=torch.channels_last)), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

        params, buffers = stack_module_state([copy.deepcopy(m) for m in models])
        base = copy.deepcopy(models[0]).to("meta")
        momentum = {n: torch.zeros_like(p) for n, p in params.items()}

        def loss_of(p, b, xb, yb):  # type: ignore[no-untyped-def]
            return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

        step_grad = vmap(grad(loss_of), randomness="different")

        def batched() -> None:
            grads = step_grad(params, buffers, x, y)
            with torch.no_grad():
                for n, g in grads.items():
                    momentum[n].mul_(0.9).add_(g)
                    params[n].sub_(0.01 * momentum[n])

        row = []
        for fn in (in_a_row, batched):
            for _ in range(3):
                fn()
            start = time.perf_counter()
            for _ in range(10):
                fn()
            row.append((time.perf_counter() - start) / 10 * 1000)
        print(f"{threads} thread(s) {arch}: in a row {row[0]:.0f} ms, batched {row[1]:.0f} ms ({row[0] / row[1]:.2f}x)")
