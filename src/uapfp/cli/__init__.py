"""The ``uapfp`` command: thin wrappers that parse, call one library function, and render.

Each subcommand's flags (:mod:`.flags`) are added only when that subcommand runs, so that
``uapfp --help`` and ``uapfp verify --help`` import no torch; what each does is in
:mod:`.commands`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from .. import __version__
from ..errors import UapfpError
from ..options import TRUST_ENV, csv
from .commands import EXIT_INCONCLUSIVE
from .flags import COMMANDS, EXIT_CODES

log = logging.getLogger("uapfp")

EXIT_ERROR = 2  # a UapfpError: bad input, bad suspect, tampered kit (one line on stderr)
__all__ = ["EXIT_CODES", "EXIT_ERROR", "EXIT_INCONCLUSIVE", "build_parser", "main"]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the subcommand it names gets its flags (None: every one)."""
    parser = argparse.ArgumentParser(
        prog="uapfp",
        description="Tell whether a suspect classifier was stolen from yours (UAP fingerprints, Peng et al. CVPR 2022).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"uapfp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument(
        "--trust-code", default="", metavar="MODULES",
        help="comma-separated modules whose package.module:factory architectures cards and zoos may name "
        f"(their code runs; default ${TRUST_ENV}); may stand anywhere on the command line",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    if argv is None:
        wanted = set(COMMANDS)
    else:  # the first word that names a command is the command (only global flags come before it)
        wanted = {next((a for a in argv if a in COMMANDS), "")}
    for name, (help_text, epilog, add_flags) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, epilog=epilog)
        if name in wanted:
            add_flags(p)
    return parser


def _global_first(argv: list[str]) -> list[str]:
    """``argv`` with every ``--trust-code X`` moved before the command, where argparse takes it."""
    moved, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == "--trust-code" and i + 1 < len(argv):
            moved += argv[i : i + 2]
            i += 2
            continue
        (moved if argv[i].startswith("--trust-code=") else rest).append(argv[i])
        i += 1
    return moved + rest


def main(argv: Sequence[str] | None = None) -> int:
    argv = _global_first(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(argv).parse_args(argv)
    from ..archs import trusting  # after parsing: --help imports no torch

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # one INFO line per HTTP request is noise; -v shows them
        logging.getLogger("httpx").setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        with trusting(csv(args.trust_code)):
            code = int(args.func(args) or 0)
    except UapfpError as exc:
        print(f"uapfp: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("uapfp: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    log.debug("done in %.1f s", time.perf_counter() - start)
    return code


if __name__ == "__main__":
    sys.exit(main())
