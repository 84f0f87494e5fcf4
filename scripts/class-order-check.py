"""How the class-order check reads every model at hand: the zoo's, and the families benchmark's suspects.

    python scripts/class-order-check.py --zoo runs/zoo-quick --kit runs/kit-quick --models runs/families-quick
    PYTHONPATH=examples UAPFP_TRUST_CODE=owner_nets python scripts/class-order-check.py --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2

The kit's ``classes`` images, made as ``protect`` makes them (``class_queries`` on the zoo's held-out split), are
asked of each model, and ``find_order`` reads its answers twice: as the model gives them, where it should keep the
victim's order, and with its outputs in a fixed other order that moves every class, where it should put them back.
It reads only each answer's largest entry, so probabilities, top-k and labels read alike. Prints, per group of
models: how many, how many it reordered as they answer (false reorders), how many permuted ones it put back, and
the fewest of the images a model labels right in the victim's order; of the permuted ones not put back
exactly, whether the check took another order (and how many classes it left wrong) or read them as given.

Then the piracy verdicts (the zoo's held-out models and the benchmark's suspects, every set, alpha 0.01, against the
kit's calibration models) by `siblings` and `uap`, with probabilities and with labels: as the models answer; with their
outputs in the other order and read as given, as a kit without the check reads them; the same read through the
check (``verify.score_answers`` given the answers to the check's images); and with only the check's images
answered in the other order, the rest as given (a thief who turns the check against the owner), through the
check. ``--kit`` may be one made before 2026-12-07: the check's images are the ones made here. The suspects of both
halves of the families benchmark must exist (``uapfp bench families --halves dev,test`` trains them).
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from uapfp.bench.suspects_zoo import DEV_FAMILIES, KINDS, TEST_FAMILIES, build_suspects, load_suspect
from uapfp.cards import load_model_from_card
from uapfp.classorder import CLASSES_KEY, class_queries, find_order
from uapfp.kit import Kit
from uapfp.methods import Reference, truncate
from uapfp.suspects.base import OutputMode
from uapfp.suspects.spec import card_suspect
from uapfp.verify import PIRACY, Scoring, query_plan, score_answers
from uapfp.zoo import Zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--zoo", required=True)
parser.add_argument("--kit", required=True, help="a kit of that zoo, for the verdicts")
parser.add_argument("--models", required=True, help="the families benchmark's suspects (its --models folder)")
args = parser.parse_args()
logging.basicConfig(level=logging.WARNING)
zoo = Zoo.load(args.zoo)
kit = Kit.load(args.kit)
methods = ("siblings", "uap")
sets = {key: ch.sets(kit) for m in methods for key, ch in query_plan(Scoring.of(kit, method=m).method).items()}
heldout = set(kit.info["models"]["heldout"])
data = zoo.load_dataset()
victim = load_model_from_card(zoo.victim)
images, labels = class_queries(victim, data.x_test, data.y_test, num_classes=data.num_classes)
k = data.num_classes
gen = torch.Generator().manual_seed(0)
while True:  # a derangement: every class moves
    moved = torch.randperm(k, generator=gen)
    if not (moved == torch.arange(k)).any():
        break
groups: dict[str, list[tuple[str, torch.Tensor]]] = {}
scored: dict[str, list[tuple[str, torch.Tensor, dict[str, torch.Tensor]]]] = {}  # the answers to every kit set


def ask(group: str, name: str, suspect, verdicts: bool) -> None:  # type: ignore[no-untyped-def]
    said = suspect(images[0])
    groups.setdefault(group, []).append((name, said))
    if verdicts:
        scored.setdefault(group, []).append((name, said, {key: torch.stack([suspect(q) for q in s]) for key, s in sets.items()}))


for card in zoo.cards:
    ask(f"zoo: {card['role']}", card["id"], card_suspect(card), card["id"] in heldout)
for half, families in (("dev", DEV_FAMILIES), ("test", TEST_FAMILIES)):
    for rec in build_suspects(args.models, victim, data, zoo.splits(), families=families, kinds=KINDS):
        role = "copies" if rec.role == "piracy" else "honest"
        ask(f"families {half}: {role}", rec.name, load_suspect(args.models, rec, data), True)
print(f"{images.shape[1]} images; the other order: output j answers class {moved.tolist()}[j]")
print("| models | n | reordered as they answer | put back when permuted | fewest right in the victim's order (model) |")
print("|---|---|---|---|---|")
for group, answered in groups.items():
    found = [(name, find_order(a, labels[0]), find_order(a[:, moved], labels[0])) for name, a in answered]
    false = [name for name, plain, _ in found if plain.order is not None]
    back = sum(perm.order == tuple(moved.tolist()) for _, _, perm in found)
    low = min(found, key=lambda f: f[1].right)
    print(f"| {group} | {len(found)} | {len(false)}{' (' + ', '.join(false) + ')' if false else ''} | {back} | "
          f"{low[1].right} of {low[1].images} ({low[0]}) |")
    missed = [
        f"{name} ({'read as given' if perm.order is None else f'{sum(a != b for a, b in zip(perm.order, moved.tolist()))} classes wrong'};"
        f" {perm.right_reordered} right at best)"
        for name, _, perm in found if perm.order != tuple(moved.tolist())
    ]  # fmt: skip
    if missed:
        print(f"|  not put back: {', '.join(missed)} | | | | |")

print("\nPiracy verdicts at alpha 0.01 (every set, the kit's calibration models): copies detected, honest flagged")
print("| models | n | method, answers | as they answer | permuted, read as given | permuted, through the check | "
      "only the check's images permuted, through the check |")  # fmt: skip
print("|---|---|---|---|---|---|---|")
kit.references[CLASSES_KEY] = Reference(images, torch.zeros(0), labels, torch.zeros(0), torch.zeros(0))  # what it reads
for group, answered in scored.items():
    for m in methods:
        scoring = Scoring.of(kit, method=m, alpha=0.01)
        for mode in ("probs", "label"):
            counts = [0, 0, 0, 0]
            for _, said, got in answered:
                permuted = {k: a[..., moved] for k, a in got.items()}
                readings = ((got, None), (permuted, None), (permuted, said[:, moved]), (got, said[:, moved]))
                for i, (reading, check) in enumerate(readings):
                    v = score_answers(
                        kit, {k: truncate(a, mode) for k, a in reading.items()}, mode=OutputMode.parse(mode),
                        scoring=scoring, n_req=kit.config.fingerprints, name="", queries=0, start=time.perf_counter(),
                        classes=None if check is None else truncate(check, mode),
                    )  # fmt: skip
                    counts[i] += v.verdict == PIRACY
            print(f"| {group} | {len(answered)} | `{m}`, {mode} | {' | '.join(str(c) for c in counts)} |")
