"""A zoo with more of the victim's siblings, for a study: python scripts/more-siblings.py --zoo runs/zoo-quick
--out runs/zoo-quick-s16 --siblings 16

Copies ``--zoo`` into ``--out`` with hard links (nothing of the original is rewritten: a build writes
new files and renames them) and trains siblings there up to ``--siblings``, two at a time on a local
Ray instance. Sibling seeds are drawn in order, so the first siblings are the original's, and no
other model changes (`uapfp.zoo.config.plan_siblings`). Then `uapfp protect` and `uapfp bench
families` measure the kit with them (docs/method.md, "How many siblings"). Resumable.
"""

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from _study import hardlink_copy

from uapfp.zoo import Zoo, build_zoo

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--zoo", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--siblings", type=int, required=True)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

out = Path(args.out)
hardlink_copy(args.zoo, out)
zoo = Zoo.load(out)
build_zoo(out, replace(zoo.config, siblings=args.siblings), ray_address="local")
