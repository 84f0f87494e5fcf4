"""Study: the second victim's siblings trained by the owner's own script.

Since 2026-12-07 the product takes an owner's siblings itself (`uapfp zoo build --victim-siblings
FILE ...`); this script, which replaces a built zoo's sibling cards, is kept as the record of how
the study's figures in docs/results-fmnist.md were made.

`uapfp zoo build` trains a victim's siblings with the zoo's recipe. For the second victim (an
owner's ConvMixer trained with AdamW, one-cycle, label smoothing, 10 epochs) that recipe is not
the owner's, and `siblings` flags honest models (docs/results-fmnist.md, "A second victim"). This
copies the second victim's zoo to ``--out`` and replaces its 8 siblings by models that the owner's
script (examples/train_owner_victim.py) trains on the same D_V with seeds 101-108, each card
saying so; `protect` and `bench families` then measure `siblings` with them
(scripts/second-victim.sh's zoo must exist first):

    PYTHONPATH=examples python scripts/owner-siblings.py --zoo runs/zoo-v2 --out runs/zoo-v2o
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from uapfp.storage import read_json, sha256_file, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    src, out = Path(args.zoo), Path(args.out)
    if not out.exists():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("cache"))
        tmp.rename(out)
    for card_path in sorted((out / "models").glob("sibling-*.json")):
        card = read_json(card_path)
        if "owner_script" in (card.get("train") or {}):
            continue
        seed = 101 + int(card["id"].split("-")[1])
        weights = card_path.parent / card["weights"]
        part = weights.with_name(weights.name + ".partial")
        run = subprocess.run([sys.executable, "examples/train_owner_victim.py", "--seed", str(seed), "--out",
                              str(part)], check=True, capture_output=True, text=True)  # fmt: skip
        last = run.stdout.strip().splitlines()[-1]  # "epoch 10: test accuracy 0.8814 (48 s)"
        part.replace(weights)
        card["weights_sha256"] = sha256_file(weights)
        card["train"] = {"owner_script": "examples/train_owner_victim.py", "seed": seed}
        card["test_accuracy"] = float(last.split("test accuracy ")[1].split()[0])
        for key in ("fidelity", "recovery_rate"):
            card.pop(key, None)
        write_json(card_path, card)  # the card last: a crash before it retrains this sibling
        print(f"{card['id']} (seed {seed}): {last}", flush=True)


if __name__ == "__main__":
    main()
