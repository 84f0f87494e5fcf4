"""Seconds to predict 10,000 images per inference batch size: python scripts/inference-batch.py [--formats] [NAME...]

How `uapfp.training.INFERENCE_BATCH` and the channels-last format of `uapfp.archs.create_model`
were chosen: each architecture (default: the paper's A-E on 1x28x28 inputs; the CIFAR forms and
the classic families take 3x32x32) predicts 10,000 random images in eval mode without gradients,
in batches of each size; the best of 3 repeats after one warm-up pass. ``--formats`` times each
architecture with its weights in the default (contiguous) memory format too, as a model built
before `create_model` returned channels-last weights was.
"""

import sys
import time

import torch

from uapfp.archs import create_model

formats = "--formats" in sys.argv[1:]
names = [a for a in sys.argv[1:] if a != "--formats"] or ["A", "B", "C", "D", "E"]
sizes = (128, 256, 512, 1024)
torch.manual_seed(0)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per 10,000 predictions, best of 3")
print("arch, weights".ljust(30) + "".join(f"{s:>8}" for s in sizes))
for name in names:
    c, side = (1, 28) if len(name) == 1 else (3, 32)
    x = torch.rand(10000, c, side, side)
    for memory_format in (torch.channels_last, torch.contiguous_format) if formats else (torch.channels_last,):
        model = create_model(name, in_channels=c, image_size=(side, side), num_classes=10).eval()
        model.to(memory_format=memory_format)
        row = []
        with torch.no_grad():
            for size in sizes:
                best = float("inf")
                for rep in range(4):
                    start = time.perf_counter()
                    torch.cat([model(x[i : i + size]) for i in range(0, len(x), size)])
                    if rep:
                        best = min(best, time.perf_counter() - start)
                row.append(best)
        label = f"{name}, {str(memory_format).removeprefix('torch.')}"
        print(label.ljust(30) + "".join(f"{t:8.2f}" for t in row))
