"""A study: pruned copies that a thief fine-tunes before serving them, against the benchmark's pruned copies.

    python scripts/study-prune-finetune.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]
    PYTHONPATH=examples UAPFP_TRUST_CODE=owner_nets python scripts/study-prune-finetune.py --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2 [--half test]

The families benchmark's ``mod-prune60`` zeroes the 60 % smallest weights of the knockoff copy and serves it
as it is. For some families that leaves a copy no thief would serve (test accuracy 0.13 to 0.73 on the test
half, against 0.78 to 0.89 for the copy it was pruned from). The paper's pruning (after Zhu and Gupta) keeps
the model's function: a thief prunes, then trains again. Here each family's knockoff copy is pruned the same
way (the benchmark's global magnitude pruning of convolution and linear weights, 60 %), then fine-tuned as the benchmark's
``mod-finetune`` is (2 epochs, Adam at 2e-4, batch 128, 5,000 of the thief's own labelled pool images, seed 0)
with the pruned weights held at zero (``torch.nn.utils.prune``'s masks), so it stays 60 % sparse.

Each copy, the benchmark's and the fine-tuned one, is verified by `verify` with `siblings` on every set
against the kit's calibration models and against the suspect's family null (``MODELS/family-null-ARCH-span``,
``uapfp family-null``'s default), probabilities and labels: its test accuracy and p-values. The copies are
cached in ``runs/study-prune-finetune-KIT/`` (safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch
from _study import family_study_args
from torch import nn
from torch.nn.utils import prune

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES, SuspectRecord, load_suspect_model
from uapfp.family_null import FamilyNull
from uapfp.modify import create_modification
from uapfp.storage import load_tensors, read_json, save_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.training import TrainConfig, accuracy, train_model
from uapfp.verify import verify

args, zoo, kit = family_study_args(__doc__)
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
data = zoo.load_dataset()
c, h, w = data.input_shape
pool_idx = zoo.splits()["pool"]
out = Path(f"runs/study-prune-finetune-{Path(args.kit).name}")
out.mkdir(parents=True, exist_ok=True)


def record(name: str) -> SuspectRecord:
    return SuspectRecord(**read_json(Path(args.models) / f"{name}.json"))


def prune_then_finetune(base: nn.Module) -> nn.Module:
    """60 % global magnitude pruning held by masks through 2 epochs of the benchmark's fine-tuning."""
    base = create_modification("prune:0.6").apply(base)  # the benchmark's mod-prune60, weight for weight
    for m in base.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.custom_from_mask(m, "weight", mask=(m.weight != 0).to(m.weight.dtype))
    pick = pool_idx[torch.randperm(len(pool_idx), generator=torch.Generator().manual_seed(0))[:5000]]
    ft = create_modification("finetune:2")  # its recipe, trained in place (its apply copies, which masks forbid)
    config = TrainConfig(optimizer="adam", lr=ft.lr, epochs=ft.epochs, batch_size=ft.batch_size, seed=0)
    train_model(base, data.x_train[pick], data.y_train[pick], config=config, progress=False, desc="finetune")
    for m in base.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and prune.is_pruned(m):
            prune.remove(m, "weight")
    return base.eval()


print(f"{args.half} half, {Path(args.kit).name}: pruned copies as the benchmark makes them (`mod-prune60`) and "
      "fine-tuned after pruning (masks held); `siblings`, every set; p against the kit's null | the family null")  # fmt: skip
print("| family | copy | test accuracy | sparsity | probs: kit; family | label: kit; family |\n|---|---|---|---|---|---|")
for family in families:
    null = FamilyNull.load(Path(args.models) / f"family-null-{family}-span", kit)
    base_rec = record(f"{family}-copy-knockoff")
    file = out / f"{family}-prune60-finetune.safetensors"
    if not file.is_file():
        model = prune_then_finetune(load_suspect_model(args.models, base_rec, data))
        save_tensors(file.with_suffix(".partial"), model.state_dict())
        file.with_suffix(".partial").rename(file)
    tuned = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    tuned.load_state_dict(load_tensors(file))
    rows = {"knockoff (before pruning)": load_suspect_model(args.models, base_rec, data),
            "`mod-prune60` (the benchmark's)": load_suspect_model(args.models, record(f"{family}-mod-prune60"), data),
            "pruned, then fine-tuned": tuned.eval()}  # fmt: skip
    for name, model in rows.items():
        ws = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        sparsity = float(sum((x == 0).sum() for x in ws) / sum(x.numel() for x in ws))
        cells = []
        for mode in ("probs", "label"):
            ps = []
            for fn in (None, null):
                suspect = TorchSuspect(model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=mode)
                ps.append(verify(kit, suspect, method="siblings", sequential=False, family_null=fn).p_value)
            cells.append("; ".join(f"{p:.2g}" for p in ps))
        print(f"| {family} | {name} | {accuracy(model, data.x_test, data.y_test):.3f} | {sparsity:.2f} | "
              f"{cells[0]} | {cells[1]} |", flush=True)  # fmt: skip
