"""What the study scripts share (a module beside them, not part of the package)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from uapfp.bench.cifar10 import PRESETS, preset_zoo_config, work_dir


def cifar_preset_args(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Any, Path, Any]:
    """Add the CIFAR preset's ``--data``, ``--preset`` and ``--work``, parse, start logging: the
    arguments, the preset, its work folder and its zoo config."""
    parser.add_argument("--data", required=True, help="imagefolder:PATH or cifar10:PATH, as for the bench command")
    parser.add_argument("--preset", default="cpu", choices=tuple(PRESETS))
    parser.add_argument("--work", help="the bench command's work folder (default runs/cifar10-PRESET)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    chosen = PRESETS[args.preset]
    return args, chosen, work_dir(args.preset, args.work), preset_zoo_config(chosen, args.data)


def hardlink_copy(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> None:
    """Copy the zoo folder ``src`` to ``out`` with hard links, unless ``out`` exists: a build writes
    new files and renames them, so nothing of ``src`` is rewritten. Atomic (a ``.partial`` folder)."""
    out = Path(out)
    if out.exists():
        return
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(src, partial, copy_function=os.link)
    partial.rename(out)
