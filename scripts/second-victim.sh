#!/usr/bin/env bash
# The lineage benchmark's second victim (docs/results-fmnist.md, "A second victim"): an owner's own
# ConvMixer (examples/owner_nets.py), outside the registry, trained by the owner's own script on the
# first 30,000 training images, then given to uapfp as a user would: zoo (default preset, on a local
# Ray instance), protect, evaluate, and the families benchmark on both halves (nothing is decided
# on this victim: both are reported), then a study with siblings trained by the owner's own script.
# About 85 minutes on 2 cores; every step resumes.
# Run from the repository root with uapfp[ray,bench] installed in .venv.
set -euo pipefail
source scripts/_second-victim.sh
[ -f runs/victim2/convmixer.safetensors ] ||
    .venv/bin/python examples/train_owner_victim.py --out runs/victim2/convmixer.safetensors
victim2 v2
# Study: the same victim with siblings trained by the owner's own script (scripts/owner-siblings.py).
.venv/bin/python scripts/owner-siblings.py --zoo runs/zoo-v2 --out runs/zoo-v2o
[ -f runs/kit-v2o/kit.json ] || u protect --zoo runs/zoo-v2o --out runs/kit-v2o --alpha 0.05  # the default of then
u evaluate --kit runs/kit-v2o --zoo runs/zoo-v2o --method siblings --json runs/eval-v2o-siblings.json
u bench families --zoo runs/zoo-v2o --kit runs/kit-v2o --models runs/families-v2 --halves both \
    --methods siblings,uap+siblings,uap --out runs/bench-families-v2o.json
