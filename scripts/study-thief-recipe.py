"""A study: why SAC's figures do not carry over, measured through the thief's recipe.

    python scripts/study-thief-recipe.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick [--half test]

SAC (Guan et al., NeurIPS 2022) reports AUC 0.97 to 1.0 for copies of other architectures than the
victim's; on the families benchmark `sac` and `errors` rank copies *below* the honest models
(docs/results-fmnist.md). SAC's thieves distil the victim for 200 epochs at temperature 20 (its
``model_extract_p.py``: 0.9 of the loss the KL divergence of the tempered outputs, which at such a
temperature matches the victim's logits, small classes included); the benchmark's knockoff copy is
trained for 4 epochs on the victim's probabilities at temperature 1, where a class of probability
1e-4 adds next to nothing to the loss. The hypothesis: how much of the victim a copy carries, and so
what any method can find, depends on how long and at which temperature the thief trains.

Each family's knockoff copy is trained again on the same 20,000 pool images and the victim's
answers to them, with the benchmark's optimizer, batch and schedule (Adam at its default rate, batch
128, one-cycle) and the same seed, only the epochs and the temperature changed:

- ``T1, 4 epochs``: the benchmark's `copy-knockoff` (read from the benchmark's folder), and the same
  trained again here (a check that the study's copies are the benchmark's but for what it changes);
- ``T1, 20 epochs``: the same loss, five times the training;
- ``T20, 4 epochs`` and ``T20, 20 epochs``: the cross-entropy (the KL divergence up to a constant) of the
  student's logits divided by 20 against the victim's log-probabilities divided by 20 (Hinton's
  distillation; the served model is the student without the division).

Every attack of the benchmark trained for 20 epochs, and its modified copies, are in `uapfp bench families
--epochs 20` (docs/results-fmnist.md).

A longer training may move honest models too, so the benchmark's four honest models of each family are
trained again by the benchmark's own function (``family_null.train_honest``, the same seeds) for
``--honest-epochs`` (20) and scored the same way.

Each copy: its test accuracy; its fidelity (agreement with the victim's labels on the 10,000 test
images); the share of the victim's test errors on which it gives the victim's wrong label; and for
`siblings`, `errors`, `sac` and `uap`, probabilities and labels, its similarity and its p-value by
`verify` (every set) against the kit's calibration models, and where its similarity ranks among the
half's honest models as the benchmark trained them (how many of the 12 it is above, for every row, the
retrained honest models' too; their similarities are those of the benchmark's JSON report,
``runs/bench-families-KIT-HALF.json``, which `uapfp bench families --out` writes, or ``--report``). The
models are cached in ``runs/study-thief-recipe-KIT/`` (safetensors, by family, temperature and epochs: a
kit folder's name stands for its victim). The seeds are the benchmark's where the half was built first or
alone (the development half always; the rows "retrained here" show it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from _study import family_study_args
from torch import nn

from uapfp.archs import create_model
from uapfp.bench.suspects_zoo import (
    DEV_FAMILIES,
    HONEST,
    HONEST_TRAINING,
    KINDS,
    TEST_FAMILIES,
    SuspectRecord,
    load_suspect_model,
)
from uapfp.cards import load_model_from_card
from uapfp.family_null import train_honest
from uapfp.storage import load_tensors, read_json, save_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.training import TrainConfig, predict_logits, train_model
from uapfp.verify import verify

METHODS = ("siblings", "errors", "sac", "uap")
VARIANTS = {
    "T1, 4 epochs (retrained here)": (1.0, 4),
    "T1, 20 epochs": (1.0, 20),
    "T20, 4 epochs": (20.0, 4),
    "T20, 20 epochs": (20.0, 20),
}


class Tempered(nn.Module):
    """The student's logits divided by the temperature, for training only."""

    def __init__(self, net: nn.Module, temperature: float) -> None:
        super().__init__()
        self.net, self.temperature = net, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.temperature


args, zoo, kit = family_study_args(
    __doc__,
    lambda p: (
        p.add_argument("--honest-epochs", type=int, default=20, help="epochs of the honest rows"),
        p.add_argument("--report", help="the benchmark's JSON report (default runs/bench-families-KIT-HALF.json)"),
    ),
)
families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
data = zoo.load_dataset()
c, h, w = data.input_shape
pool = data.x_train[zoo.splits()["pool"]]
victim = load_model_from_card(zoo.victim).eval()
out = Path(f"runs/study-thief-recipe-{Path(args.kit).name}")
out.mkdir(parents=True, exist_ok=True)
report_file = args.report or f"runs/bench-families-{Path(args.kit).name.removeprefix('kit-')}-{args.half}.json"
report = json.loads(Path(report_file).read_text())
honest: dict[tuple[str, str], list[float]] = {}
for s in report["suspects"]:
    # the benchmark's own honest suspects of the half (not a family null's models, kind "null-...")
    if (
        s["role"] == "homologous"
        and not s["kind"].startswith("null-")
        and s["method"] in METHODS
        and s["half"] == args.half
    ):
        honest.setdefault((s["method"], s["outputs"]), []).append(s["similarity"])

with torch.no_grad():
    v_test = predict_logits(victim, data.x_test).argmax(1)
wrong = v_test != data.y_test


def cached(family: str, file: Path) -> nn.Module | None:
    """The model of ``family`` trained before into ``file`` (None: not yet)."""
    if not file.is_file():
        return None
    net = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    net.load_state_dict(load_tensors(file))
    return net.eval()


def save(net: nn.Module, file: Path) -> nn.Module:
    """Write ``net``'s weights to ``file`` atomically; ``net`` in eval mode."""
    save_tensors(file.with_suffix(".partial"), net.state_dict())
    file.with_suffix(".partial").rename(file)
    return net.eval()


def copy_of(family: str, temperature: float, epochs: int) -> nn.Module:
    """The family's knockoff copy trained again at ``temperature`` for ``epochs`` (cached)."""
    rec = SuspectRecord(**read_json(Path(args.models) / f"{family}-copy-knockoff.json"))
    # the benchmark's seed where the half was built first (the dev half; the row "retrained here" shows it)
    seed = families.index(family) * 100 + KINDS.index("copy-knockoff")
    file = out / f"{family}-T{temperature:g}-e{epochs}.safetensors"
    if (net := cached(family, file)) is not None:
        return net
    # the knockoff attack's own draw of the pool (its seed is the suspect's), answered by the victim
    gen = torch.Generator().manual_seed(seed)
    x = pool[torch.randperm(len(pool), generator=gen)[: rec.recipe["budget"]]]
    with torch.no_grad():
        logp = predict_logits(victim, x).log_softmax(1)
    target = torch.softmax(logp / temperature, 1)
    torch.manual_seed(seed)
    net = create_model(family, in_channels=c, image_size=(h, w), num_classes=data.num_classes)
    config = TrainConfig(optimizer="adam", epochs=epochs, batch_size=rec.recipe["batch_size"], seed=seed)
    train_model(Tempered(net, temperature), x, target, config=config, progress=False, desc=file.stem)
    return save(net, file)


def honest_of(family: str, kind: str, epochs: int) -> nn.Module:
    """The benchmark's honest model ``kind`` of ``family`` (same function, same seed) trained for ``epochs`` (cached)."""
    file = out / f"{family}-{kind}-e{epochs}.safetensors"
    if (net := cached(family, file)) is not None:
        return net
    seed = families.index(family) * 100 + KINDS.index(kind)
    batch = read_json(Path(args.models) / f"{family}-{kind}.json")["recipe"]["batch_size"]
    return save(train_honest(family, HONEST_TRAINING[kind], data, zoo.splits(), seed=seed, epochs=epochs,
                             batch_size=batch), file)  # fmt: skip


def row(family: str, name: str, model: nn.Module) -> str:
    with torch.no_grad():
        pred = predict_logits(model, data.x_test).argmax(1)
    fidelity = float((pred == v_test).float().mean())
    inherited = float((pred[wrong] == v_test[wrong]).float().mean())
    cells = []
    for method in METHODS:
        for mode in ("probs", "label"):
            suspect = TorchSuspect(model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=mode)
            v = verify(kit, suspect, method=method, sequential=False)
            above = sum(v.similarity > s for s in honest[(method, mode)])
            cells.append(f"{v.similarity:.3f}, {v.p_value:.2g}, {above}")
    return (f"| {family} | {name} | {float((pred == data.y_test).float().mean()):.3f} | {fidelity:.3f} | "
            f"{inherited:.3f} | " + " | ".join(cells) + " |")  # fmt: skip


print(f"{args.half} half, {Path(args.kit).name}: the knockoff copy by the thief's temperature and epochs; per method and "
      f"answers: similarity, p against the kit's calibration models (every set), the benchmark's honest models of the "
      f"half (trained as the benchmark trains them) below it "
      f"(of {len(honest[('siblings', 'probs')])})")  # fmt: skip
head = " | ".join(f"{m} {mode}" for m in METHODS for mode in ("probs", "label"))
print(f"| family | copy | test accuracy | fidelity | victim's errors repeated | {head} |")
print("|---" * (5 + 2 * len(METHODS)) + "|")
for family in families:
    rec = SuspectRecord(**read_json(Path(args.models) / f"{family}-copy-knockoff.json"))
    print(row(family, "T1, 4 epochs (the benchmark's)", load_suspect_model(args.models, rec, data)), flush=True)
    for name, (temperature, epochs) in VARIANTS.items():
        print(row(family, name, copy_of(family, temperature, epochs)), flush=True)
    for kind in HONEST:
        print(
            row(family, f"{kind}, {args.honest_epochs} epochs", honest_of(family, kind, args.honest_epochs)), flush=True
        )
