#!/usr/bin/env bash
# The lineage benchmark's second victim (docs/results-fmnist.md, "A second victim"), with its siblings
# handed in through the product: the owner's own script (examples/train_owner_victim.py) trains the
# victim and, with seeds 101-108, its 8 siblings; `uapfp zoo build --victim-siblings` holds them
# instead of training siblings with the zoo's recipe. Then protect, evaluate and the families
# benchmark on both halves. The same study as scripts/owner-siblings.py, which replaced a built
# zoo's sibling cards by hand. About 75 minutes on 2 cores; every step resumes.
# Run from the repository root with uapfp[ray,bench] installed in .venv.
set -euo pipefail
export PYTHONPATH="$PWD/examples${PYTHONPATH:+:$PYTHONPATH}"
u() { .venv/bin/uapfp -q --trust-code owner_nets "$@"; }
train() {  # train SEED FILE: the owner's script, written under another name first
    [ -f "$2" ] || { .venv/bin/python examples/train_owner_victim.py --seed "$1" --out "$2.partial" && mv "$2.partial" "$2"; }
}
train 7 runs/victim2/convmixer.safetensors          # the victim (the script's default seed)
siblings=()
for seed in 101 102 103 104 105 106 107 108; do
    train "$seed" "runs/victim2/sibling-$seed.safetensors"
    siblings+=("runs/victim2/sibling-$seed.safetensors")
done
u zoo build --victim owner_nets:convmixer --victim-weights runs/victim2/convmixer.safetensors \
    --victim-data "fashion-mnist[0:30000]" --victim-siblings "${siblings[@]}" --out runs/zoo-v2s --ray
[ -f runs/kit-v2s/kit.json ] || u protect --zoo runs/zoo-v2s --out runs/kit-v2s
for m in uap siblings; do
    u evaluate --kit runs/kit-v2s --zoo runs/zoo-v2s --method $m --json runs/eval-v2s-$m.json
done
u bench families --zoo runs/zoo-v2s --kit runs/kit-v2s --models runs/families-v2 --halves both \
    --out runs/bench-families-v2s.json
