#!/usr/bin/env bash
# The lineage benchmark's second victim (docs/results-fmnist.md, "A second victim"), with its siblings
# handed in through the product: the owner's own script (examples/train_owner_victim.py) trains the
# victim and, with seeds 101-108, its 8 siblings; `uapfp zoo build --victim-siblings` holds them
# instead of training siblings with the zoo's recipe. Then protect, evaluate and the families
# benchmark on both halves. The same study as scripts/owner-siblings.py, which replaced a built
# zoo's sibling cards by hand. About 75 minutes on 2 cores; every step resumes.
# Run from the repository root with uapfp[ray,bench] installed in .venv.
set -euo pipefail
source scripts/_second-victim.sh
train() {  # train SEED FILE: the owner's script, written under another name first
    [ -f "$2" ] || { .venv/bin/python examples/train_owner_victim.py --seed "$1" --out "$2.partial" && mv "$2.partial" "$2"; }
}
train 7 runs/victim2/convmixer.safetensors          # the victim (the script's default seed)
siblings=()
for seed in 101 102 103 104 105 106 107 108; do
    train "$seed" "runs/victim2/sibling-$seed.safetensors"
    siblings+=("runs/victim2/sibling-$seed.safetensors")
done
victim2 v2s --victim-siblings "${siblings[@]}"
