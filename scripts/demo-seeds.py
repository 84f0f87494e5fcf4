"""The demo with another seed (zoo and kit), timed: python scripts/demo-seeds.py SEED slice|full.

How the README's demo figures over seeds were measured (2-core VM, nothing else running).
"""

import shutil
import sys
import time
from dataclasses import replace

import uapfp.demo as demo

seed, which = int(sys.argv[1]), sys.argv[2]
base = demo.demo_zoo_config
demo.demo_zoo_config = lambda *, full: replace(base(full=full), seed=seed)
demo.DEMO_PROTECT = replace(demo.DEMO_PROTECT, seed=seed)
out = f"runs/demo-{which}-s{seed}"
shutil.rmtree(out, ignore_errors=True)
start = time.perf_counter()
demo.run_demo(out=out, progress=False, full=which == "full")
print(f"seed {seed} {which}: {time.perf_counter() - start:.1f} s")
