#!/usr/bin/env bash
# The default (quick) preset's kit from nothing: the zoo (on a local Ray instance) then protect with its
# defaults, timed (docs/zoo.md). Run from the repository root, with uapfp[ray] installed in .venv; deletes
# runs/zoo-quick and runs/kit-quick first.
set -euo pipefail
rm -rf runs/zoo-quick runs/kit-quick
s0=$(date +%s.%N)
.venv/bin/uapfp -q zoo build --out runs/zoo-quick --ray
s1=$(date +%s.%N)
.venv/bin/uapfp -q protect --zoo runs/zoo-quick --out runs/kit-quick
s2=$(date +%s.%N)
python3 -c "print(f'zoo {$s1-$s0:.0f} s, protect {$s2-$s1:.0f} s, total {$s2-$s0:.0f} s')"
