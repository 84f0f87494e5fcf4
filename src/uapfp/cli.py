"""The ``uapfp`` command: thin wrappers that parse, call one library function, and render.

Each subcommand's flags are added only when that subcommand runs, so that ``uapfp --help``
and ``uapfp verify --help`` import no torch. Flags that set a config's fields are generated
from the config dataclass (:mod:`uapfp.options`): each is defined once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, UapfpError
from .options import add_arguments, csv, from_args, given, merged

log = logging.getLogger("uapfp")

EXIT_ERROR = 2  # a UapfpError: bad input, bad suspect, tampered kit (one line on stderr)
EXIT_INCONCLUSIVE = 3  # verify ran but could not decide (query budget exhausted)
EXIT_CODES = (
    "exit codes: 0 done (verify: verdict piracy or not shown), 2 error (one line on stderr), "
    "3 inconclusive (query budget exhausted), 130 interrupted"
)
#: The kit settings ``uapfp protect`` takes as flags; every other one comes from ``--config FILE``.
PROTECT_FLAGS = (
    "uap_method", "norm", "xi", "n_probes", "fingerprints", "alpha", "null", "calibration", "calibration_fraction",
    "paper_split", "seed",
)  # fmt: skip


# --------------------------------------------------------------------------- zoo


def _zoo_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .data import SplitConfig
    from .zoo import preset

    overrides: dict[str, Any] = {
        "dataset": args.dataset,
        "archs": csv(args.archs) if args.archs else None,
        "optimizers": csv(args.optimizers) if args.optimizers else None,
        "attacks": csv(args.attacks) if args.attacks else None,
        "piracy_per_cell": args.piracy,
        "homologous_per_cell": args.homologous,
        "epochs": args.epochs,
        "victim_arch": args.victim_arch,
        "include_victim_arch": False if args.no_victim_arch else None,
        "seed": args.seed,
        "split": SplitConfig(homologous_overlap=args.overlap),
    }
    return preset(args.preset, **overrides)


def cmd_zoo_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .data import DatasetSpec
    from .render import format_table
    from .zoo import VictimSource, build_zoo, zoo_table

    config = _zoo_config(args)
    victim = VictimSource(factory=args.victim, weights=args.victim_weights, data=args.victim_data)
    if victim.data and not args.dataset:
        config = replace(config, dataset=DatasetSpec.parse(victim.data).base)
    zoo = build_zoo(args.out, config, victim=victim, data_dir=args.data_dir, progress=not args.quiet)
    print(format_table(zoo_table(zoo)))
    print(f"\nzoo written to {zoo.path} ({len(zoo.cards)} models)")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from .render import format_table
    from .zoo import Zoo, zoo_table

    zoo = Zoo.load(args.zoo)
    rows = zoo_table(zoo)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, markdown=args.markdown))
        missing = len(zoo.info.get("jobs", [])) + 1 - len(zoo.cards)
        if missing > 0:
            print(f"\n{missing} planned models are not finished; rerun uapfp zoo build to resume")
    return 0


# --------------------------------------------------------------------------- protect / verify / evaluate


def cmd_protect(args: argparse.Namespace) -> int:
    from .config import ProtectConfig
    from .protect import protect
    from .storage import read_json

    settings = read_json(args.config) if args.config else {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{args.config} must hold a JSON object of kit settings")
    config = ProtectConfig.from_dict(merged(settings, given(ProtectConfig, args)))
    kit = protect(args.zoo, args.out, config=config, data_dir=args.data_dir, progress=not args.quiet)
    print(kit.summary())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .kit import Kit
    from .suspects.options import HttpOptions
    from .suspects.spec import open_suspect
    from .verify import verify

    kit = Kit.load(args.kit)
    http = from_args(HttpOptions, args)
    suspect = open_suspect(
        args.suspect, input_shape=kit.input_shape, num_classes=kit.num_classes, weights=args.weights,
        output=args.outputs, max_queries=args.max_queries, http=http if http != HttpOptions() else None,
    )  # fmt: skip
    out = Path(args.json) if args.json else None
    qlog = args.query_log or (out.with_suffix(".queries.jsonl") if out else None)
    try:
        verdict = verify(kit, suspect, fingerprints=args.fingerprints, alpha=args.alpha, query_log=qlog)
    finally:
        suspect.close()
    print(verdict.render())
    if out:
        from .storage import write_json

        write_json(out, {**verdict.to_dict(), "query_log": str(qlog) if qlog else None})
        print(f"verdict written to {out}" + (f", queries logged to {qlog}" if qlog else ""))
    return _verdict_code(verdict)


def _verdict_code(verdict) -> int:  # type: ignore[no-untyped-def]
    from .verify import INCONCLUSIVE

    if verdict.verdict == INCONCLUSIVE:
        print(f"uapfp: inconclusive: {verdict.message}", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return 0


def cmd_recheck(args: argparse.Namespace) -> int:
    from .kit import Kit
    from .querylog import recheck_query_log

    verdict = recheck_query_log(Kit.load(args.kit), args.log, alpha=args.alpha)
    print(verdict.render())
    if args.json:
        from .storage import write_json

        write_json(args.json, {**verdict.to_dict(), "query_log": str(args.log)})
        print(f"verdict written to {args.json}")
    return _verdict_code(verdict)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import Faults, serve

    shape = None
    if args.input_shape:
        try:
            c, h, w = (int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise ConfigError(f"--input-shape must be C,H,W (three integers), got {args.input_shape!r}") from None
        shape = (c, h, w)
    faults = Faults(
        fail_rate=args.fail_rate, slow_rate=args.slow_rate, slow_seconds=args.slow_seconds, seed=args.fault_seed
    )

    def ready(url: str) -> None:
        print(f"serving {args.spec} at {url}", flush=True)

    try:
        serve(
            args.spec, port=args.port, host=args.host, output=args.outputs, model_name=args.model_name,
            weights=args.weights, input_shape=shape, num_classes=args.classes, faults=faults,
            int_labels=args.int_labels, token_env=args.token_env, on_ready=ready,
        )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C is how a server is meant to stop
        pass
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .kit import Kit

    kit = Kit.load(args.kit)
    ev = evaluate(
        kit, args.zoo, fingerprints=args.fingerprints, alpha=args.alpha, output=args.outputs, progress=not args.quiet
    )
    print(ev.render())
    if args.json:
        from .storage import write_json

        write_json(args.json, ev.to_dict())
        print(f"evaluation written to {args.json}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, data_dir=args.data_dir, progress=not args.quiet, full=False if args.slice else None)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import experiments, run_experiment
    from .storage import write_json

    exp = experiments()[args.experiment]
    report = run_experiment(exp.name, from_args(exp.config, args))
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)
    return 0


# --------------------------------------------------------------------------- the subcommands' flags


def _demo_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="working folder (default: a new folder under ./uapfp-demo)")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST IDX files")
    p.add_argument(
        "--slice", action="store_true", help="use the shipped slice even when the full Fashion-MNIST is installed"
    )
    p.set_defaults(func=cmd_demo)


def _zoo_flags(p: argparse.ArgumentParser) -> None:
    zoo = p.add_subparsers(dest="zoo_command", required=True)
    b = zoo.add_parser("build", help="train a victim, homologous and piracy models (resumable)")
    b.add_argument("--out", required=True, help="zoo folder (rerun with the same folder to resume)")
    b.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    b.add_argument("--dataset", default=None, help="fashion-mnist, fashion-mnist-slice or imagefolder:PATH")
    b.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    b.add_argument("--archs", default=None, help="comma-separated architectures (registered names or module:factory)")
    b.add_argument("--optimizers", default=None, help="comma-separated: sgd,adam,rmsprop")
    b.add_argument("--attacks", default=None, help="comma-separated extraction attacks")
    b.add_argument("--piracy", type=int, default=None, help="piracy models per architecture and optimizer, in all")
    b.add_argument(
        "--homologous", type=int, default=None, help="homologous models per architecture and optimizer, in all"
    )
    b.add_argument("--epochs", type=int, default=None)
    b.add_argument("--overlap", type=float, default=0.5, help="overlap rate of each D_H with D_V (default 0.5)")
    b.add_argument("--victim-arch", default=None, help="architecture of the victim trained here (default A)")
    b.add_argument(
        "--no-victim-arch", action="store_true", help="do not add the victim's architecture to the zoo's architectures"
    )
    b.add_argument("--victim", default=None, help="your own victim's architecture, package.module:factory")
    b.add_argument("--victim-weights", default=None, help="its weights (.safetensors) or a TorchScript file")
    b.add_argument("--victim-data", default=None, help="its training data: SPEC, SPEC[start:stop] or SPEC@indices.json")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_zoo_build)
    ls = zoo.add_parser("list", help="print a zoo as a table")
    ls.add_argument("zoo", help="zoo folder")
    ls.add_argument("--json", action="store_true", help="print JSON rows")
    ls.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ls.set_defaults(func=cmd_zoo_list)


def _protect_flags(p: argparse.ArgumentParser) -> None:
    from .config import ProtectConfig

    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True, help="kit folder")
    p.add_argument(
        "--config", default=None, metavar="FILE",
        help="a JSON file of kit settings (ProtectConfig's fields, docs/method.md); flags override it",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None)
    add_arguments(p, ProtectConfig, only=PROTECT_FLAGS)
    p.set_defaults(func=cmd_protect)


def _verify_flags(p: argparse.ArgumentParser) -> None:
    from .suspects.options import HTTP_FLAGS, HttpOptions

    p.add_argument("--kit", required=True)
    p.add_argument(
        "--suspect", required=True, help="zoo card .json, module:factory, torchscript:PATH, onnx:PATH or http(s)://..."
    )
    p.add_argument("--weights", default=None, help="weights for a module:factory suspect (.safetensors)")
    p.add_argument(
        "--outputs",
        default=None,
        help="what the suspect returns: probs, topk:K or label (default: probs; HTTP: what the server "
        "advertises); ONNX also logits (default: detected)",
    )
    p.add_argument("--fingerprints", type=int, default=None, help="fingerprints to use (default: the kit's, 20)")
    p.add_argument("--alpha", type=float, default=None, help="significance level (default: the kit's, 0.05)")
    p.add_argument("--max-queries", type=int, default=None, help="hard query budget")
    p.add_argument("--json", default=None, help="write the verdict here (the query log goes beside it)")
    p.add_argument("--query-log", default=None, help="JSON Lines query log (default: beside --json)")
    add_arguments(p, HttpOptions, only=HTTP_FLAGS)
    p.set_defaults(func=cmd_verify)


def _recheck_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--log", required=True, help="the JSON Lines query log written by uapfp verify")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--json", default=None, help="write the recomputed verdict here")
    p.set_defaults(func=cmd_recheck)


def _serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="zoo card .json, module:factory (with --weights), torchscript:PATH or onnx:PATH")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port; the URL printed names it)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    p.add_argument("--outputs", default=None, help="answers: probs (default), topk:K or label")
    p.add_argument("--int-labels", action="store_true", help="with --outputs label: answer INT64 class indices")
    p.add_argument("--model-name", default=None, help="NAME in /v2/models/NAME (default: card id or file name)")
    p.add_argument("--weights", default=None, help="weights for a module:factory spec (.safetensors)")
    p.add_argument("--input-shape", default=None, help="C,H,W when the spec does not carry it (a card does)")
    p.add_argument("--classes", type=int, default=None, help="K when the spec does not carry it (a card does)")
    p.add_argument("--token-env", default=None, help="environment variable holding the bearer token clients must send")
    p.add_argument("--fail-rate", type=float, default=0.0, help="testing: answer this fraction of requests with 503")
    p.add_argument("--slow-rate", type=float, default=0.0, help="testing: answer this fraction after --slow-seconds")
    p.add_argument("--slow-seconds", type=float, default=0.0, help="testing: the delay of slow answers")
    p.add_argument("--fault-seed", type=int, default=0, help="testing: seed of the fault draws")
    p.set_defaults(func=cmd_serve)


def _evaluate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--zoo", required=True)
    p.add_argument("--fingerprints", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--outputs", default="probs", help="simulate suspects answering probs, topk:K or label")
    p.add_argument("--json", default=None)
    p.set_defaults(func=cmd_evaluate)


def _bench_flags(p: argparse.ArgumentParser) -> None:
    from .bench import experiments

    sub = p.add_subparsers(dest="experiment", required=True)
    for exp in experiments().values():
        e = sub.add_parser(exp.name, help=exp.help)
        add_arguments(e, exp.config)
        e.add_argument("--out", default=None, help="write the JSON report here")
        e.set_defaults(func=cmd_bench)


#: name -> (help, epilog, function adding its flags)
COMMANDS: dict[str, tuple[str, str | None, Callable[[argparse.ArgumentParser], None]]] = {
    "demo": ("build a tiny zoo and a kit, and verify a few suspects (minutes, offline)", None, _demo_flags),
    "zoo": ("build or list a model zoo", None, _zoo_flags),
    "protect": ("build a verification kit from a zoo", None, _protect_flags),
    "verify": ("verify one suspect against a kit", EXIT_CODES, _verify_flags),
    "recheck": ("recompute a verdict from a query log and the kit", EXIT_CODES, _recheck_flags),
    "serve": (
        "serve a suspect over HTTP (Open Inference Protocol / KServe v2) for tests and demos",
        "Prints 'serving SPEC at URL' when ready. Fault injection is for testing clients.",
        _serve_flags,
    ),
    "evaluate": ("score every held-out zoo model with a kit", None, _evaluate_flags),
    "bench": ("benchmarks (speed, detection quality); reports name the machine", None, _bench_flags),
}


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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if args.quiet else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # one INFO line per HTTP request is noise; -v shows them
        logging.getLogger("httpx").setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
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
