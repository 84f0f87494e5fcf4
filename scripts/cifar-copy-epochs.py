"""Recovery of one knockoff copy of the `cpu` preset's victim by epochs of the copy's training:
python scripts/cifar-copy-epochs.py ZOO ARCH EPOCHS...

ZOO is a finished `uapfp bench cifar10 --preset cpu` zoo (runs/cifar10-cpu/zoo); the copy is made
as the zoo makes its SGD knockoff copies (the victim's probabilities on the attacker's whole pool,
the zoo's batch size and augmentation, seed 0), once per EPOCHS value. How far the epochs lever moves recovery
(docs/benchmark-cifar10.md; 2-core VM, nothing else running).
"""

import sys
import time

import torch

from uapfp.archs import create_model
from uapfp.cards import load_model_from_card
from uapfp.extraction import create_attack
from uapfp.suspects.local import TorchSuspect
from uapfp.training import TrainConfig, accuracy
from uapfp.zoo import Zoo

zoo = Zoo.load(sys.argv[1])
arch, epochs_list = sys.argv[2], [int(e) for e in sys.argv[3:]]
data = zoo.load_dataset()
victim = load_model_from_card(zoo.victim)
victim_acc = accuracy(victim, data.x_test, data.y_test)
pool = data.x_train[zoo.splits()["pool"]]
for epochs in epochs_list:
    oracle = TorchSuspect(victim, input_shape=data.input_shape, num_classes=data.num_classes, name="victim")
    config = TrainConfig(optimizer="sgd", batch_size=zoo.config.batch_sizes[0], epochs=epochs,
                         augment=zoo.config.augment, seed=0)  # fmt: skip
    torch.manual_seed(0)
    start = time.perf_counter()
    result = create_attack("knockoff").run(
        oracle, pool, make_model=lambda: create_model(arch, in_channels=data.input_shape[0], image_size=data.input_shape[1:],
                                          num_classes=data.num_classes),
        train=config,
    )
    acc = accuracy(result.model, data.x_test, data.y_test)
    print(f"{arch} knockoff {epochs} epochs: {time.perf_counter() - start:.0f} s, test accuracy {acc:.4f}, "
          f"recovery {acc / victim_acc:.4f} (victim {victim_acc:.4f})", flush=True)
