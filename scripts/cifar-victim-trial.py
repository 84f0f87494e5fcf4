"""One candidate victim of `uapfp bench cifar10 --preset cpu`, trained on its D_V (half of CIFAR-10's
training set, the zoo's split with seed 0) and scored on the test set:
python scripts/cifar-victim-trial.py ARCH EPOCHS [OPTIMIZER [AUGMENT [WEIGHT_DECAY]]].

How the preset's victim architecture was chosen (docs/benchmark-cifar10.md; 2-core VM, nothing else running).
"""

import sys
import time

import torch

from uapfp.archs import create_model
from uapfp.data import load_dataset
from uapfp.data.splits import victim_indices
from uapfp.training import TrainConfig, accuracy, train_model

arch, epochs = sys.argv[1], int(sys.argv[2])
optimizer = sys.argv[3] if len(sys.argv) > 3 else "sgd"
augment = sys.argv[4] if len(sys.argv) > 4 else "crop:4+flip"
weight_decay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
data = load_dataset("imagefolder:../shared/data/cifar10-jpeg")
v = torch.from_numpy(victim_indices(len(data.x_train), seed=0, fraction=0.5))
torch.manual_seed(0)
model = create_model(arch, in_channels=3, image_size=(32, 32), num_classes=10)
config = TrainConfig(optimizer=optimizer, epochs=epochs, augment=augment, weight_decay=weight_decay, seed=0)
start = time.perf_counter()
train_model(model, data.x_train[v], data.y_train[v], config=config, progress=False)
print(f"{arch} {epochs} epochs {optimizer} {augment} weight decay {weight_decay}: "
      f"{time.perf_counter() - start:.0f} s, test accuracy {accuracy(model, data.x_test, data.y_test):.4f}")
