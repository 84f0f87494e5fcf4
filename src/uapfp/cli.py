"""The ``uapfp`` command: thin wrappers that parse, call one library function, and render."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, UapfpError

log = logging.getLogger("uapfp")

EXIT_ERROR = 2  # a UapfpError: bad input, bad suspect, tampered kit (one line on stderr)
EXIT_INCONCLUSIVE = 3  # verify ran but could not decide (query budget exhausted)
EXIT_CODES = (
    "exit codes: 0 done (verify: verdict piracy or not shown), 2 error (one line on stderr), "
    "3 inconclusive (query budget exhausted), 130 interrupted"
)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


# --------------------------------------------------------------------------- zoo


def _zoo_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .data import SplitConfig
    from .zoo import preset

    overrides: dict[str, Any] = {}
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.archs:
        overrides["archs"] = _csv(args.archs)
    if args.optimizers:
        overrides["optimizers"] = _csv(args.optimizers)
    if args.attacks:
        overrides["attacks"] = _csv(args.attacks)
    if args.piracy is not None:
        overrides["piracy_per_cell"] = args.piracy
    if args.homologous is not None:
        overrides["homologous_per_cell"] = args.homologous
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.victim_arch:
        overrides["victim_arch"] = args.victim_arch
    if args.no_victim_arch:
        overrides["include_victim_arch"] = False
    overrides["seed"] = args.seed
    overrides["split"] = SplitConfig(homologous_overlap=args.overlap)
    return preset(args.preset, **overrides)


def cmd_zoo_build(args: argparse.Namespace) -> int:
    from .zoo import VictimSource, build_zoo, format_table, zoo_table

    config = _zoo_config(args)
    victim = VictimSource(factory=args.victim, weights=args.victim_weights, data=args.victim_data)
    if victim.data and not args.dataset:
        from .data import DatasetSpec

        config = type(config)(**{**config.__dict__, "dataset": DatasetSpec.parse(victim.data).base})
    zoo = build_zoo(args.out, config, victim=victim, data_dir=args.data_dir, progress=not args.quiet)
    print(format_table(zoo_table(zoo)))
    print(f"\nzoo written to {zoo.path} ({len(zoo.cards)} models)")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from .zoo import Zoo, format_table, zoo_table

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
    from .kit import kit_summary, protect, protect_config, protect_settings

    config = protect_config(**protect_settings(vars(args)))
    kit = protect(args.zoo, args.out, config=config, data_dir=args.data_dir, progress=not args.quiet)
    print(kit_summary(kit))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .kit import Kit
    from .verify import open_suspect, verify

    kit = Kit.load(args.kit)
    options: dict[str, Any] = {}
    if args.suspect.startswith(("http://", "https://")):
        options = {
            "timeout": args.timeout,
            "retries": args.retries,
            "concurrency": args.concurrency,
            "rate_limit": args.rate_limit,
            "token_env": args.token_env,
            "batch_size": args.batch_size,
        }
    suspect = open_suspect(
        args.suspect,
        input_shape=kit.input_shape,
        num_classes=kit.num_classes,
        weights=args.weights,
        output=args.outputs,
        max_queries=args.max_queries,
        **options,
    )
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
    from .verify import recheck_query_log

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
    from .kit import Kit
    from .verify import evaluate

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


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, data_dir=args.data_dir, progress=not args.quiet, full=False if args.slice else None)


# --------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    import datetime as _dt

    from .bench import EXPERIMENTS, machine
    from .storage import write_json

    start = time.perf_counter()
    report = EXPERIMENTS[args.experiment].run(args)
    report["machine"] = machine()
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report["command"] = "uapfp " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("uapfp") else None
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        write_json(args.out, report)
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uapfp",
        description="Tell whether a suspect classifier was stolen from yours (UAP fingerprints, Peng et al. CVPR 2022).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"uapfp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="build a tiny zoo and a kit, and verify a few suspects (minutes, offline)")
    p.add_argument("--out", default=None, help="working folder (default: a new folder under ./uapfp-demo)")
    p.add_argument("--data-dir", default=None, help="folder holding the Fashion-MNIST IDX files")
    p.add_argument(
        "--slice", action="store_true", help="use the shipped slice even when the full Fashion-MNIST is installed"
    )
    p.set_defaults(func=cmd_demo)

    zoo = sub.add_parser("zoo", help="build or list a model zoo").add_subparsers(dest="zoo_command", required=True)
    p = zoo.add_parser("build", help="train a victim, homologous and piracy models (resumable)")
    p.add_argument("--out", required=True, help="zoo folder (rerun with the same folder to resume)")
    p.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    p.add_argument("--dataset", default=None, help="fashion-mnist, fashion-mnist-slice or imagefolder:PATH")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    p.add_argument("--archs", default=None, help="comma-separated architectures (A,B,C,D,E or module:factory)")
    p.add_argument("--optimizers", default=None, help="comma-separated: sgd,adam,rmsprop")
    p.add_argument("--attacks", default=None, help="comma-separated extraction attacks")
    p.add_argument("--piracy", type=int, default=None, help="piracy models per architecture and optimizer, in all")
    p.add_argument(
        "--homologous", type=int, default=None, help="homologous models per architecture and optimizer, in all"
    )
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--overlap", type=float, default=0.5, help="overlap rate of each D_H with D_V (default 0.5)")
    p.add_argument("--victim-arch", default=None, help="architecture of the victim trained here (default A)")
    p.add_argument(
        "--no-victim-arch", action="store_true", help="do not add the victim's architecture to the zoo's architectures"
    )
    p.add_argument("--victim", default=None, help="your own victim's architecture, package.module:factory")
    p.add_argument("--victim-weights", default=None, help="its weights (.safetensors) or a TorchScript file")
    p.add_argument("--victim-data", default=None, help="its training data: SPEC, SPEC[start:stop] or SPEC@indices.json")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_zoo_build)
    p = zoo.add_parser("list", help="print a zoo as a table")
    p.add_argument("zoo", help="zoo folder")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_zoo_list)

    p = sub.add_parser("protect", help="build a verification kit from a zoo")
    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True, help="kit folder")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--uap-method", default=None, choices=["deepfool", "sgd"])
    p.add_argument("--norm", default=None, choices=["l2", "linf"])
    p.add_argument("--xi", type=float, default=None, help="UAP radius")
    p.add_argument("--uap-images", type=int, default=None, help="D_V images the UAP is computed on")
    p.add_argument("--probes", type=int, default=None, help="probe points N (K-means clusters), default 100")
    p.add_argument("--views", type=int, default=None, help="views m, default 20")
    p.add_argument("--fingerprints", type=int, default=None, help="fingerprints per verification, default 20")
    p.add_argument("--alpha", type=float, default=None, help="significance level, default 0.05")
    p.add_argument("--exclude-archs", default=None, help="hold out every model of these architectures")
    p.add_argument("--exclude-attacks", default=None, help="hold out every piracy model of these attacks")
    p.add_argument("--paper-split", action="store_true", help="drop the victim's architecture from all suspects")
    p.add_argument(
        "--null", default=None,
        help="the test's null: models (default: prediction t-test against honest models), or the paper's "
        "Welch t-test against global, nearest:K or upper:K calibration models",
    )  # fmt: skip
    p.add_argument("--calibration-fraction", type=float, default=None,
                   help="share of homologous models set aside for the null (default 1/3)")  # fmt: skip
    p.add_argument("--calibration", default=None, choices=["auto", "kit", "leave-arch-out", "pooled"],
                   help="which encoder scores the null's models: the kit's, ones trained without each model's "
                   "architecture, or both; default auto: leave-arch-out when the encoder trains on 4 or more "
                   "architectures, else kit (see docs/method.md)")  # fmt: skip
    p.add_argument("--train-on-calibration", action="store_true", default=None,
                   help="the null's models train the kit's encoder too (leave-arch-out calibration only; "
                   "measured and not the default, see docs/method.md)")  # fmt: skip
    p.add_argument("--stratify", default=None,
                   help="card fields the model split is stratified by (default arch; also optimizer, batch_size, attack)")  # fmt: skip
    p.add_argument("--augment", default=None,
                   help="comma-separated modifications (prune:AMOUNT, quantize:BITS) whose copies of the "
                   "encoder's training models join its training set; '' for none")  # fmt: skip
    p.add_argument("--encoder-steps", type=int, default=None)
    p.add_argument("--encoder-temperature", type=float, default=None,
                   help="the contrastive loss's temperature (default 0.15; the paper's 0.1, see docs/method.md)")  # fmt: skip
    p.add_argument("--encoder-seed", type=int, default=None,
                   help="the encoder's seed, default 0 (--seed seeds the split, UAP and probes)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_protect)

    p = sub.add_parser("verify", help="verify one suspect against a kit", epilog=EXIT_CODES)
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
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--max-queries", type=int, default=None, help="hard query budget")
    p.add_argument("--json", default=None, help="write the verdict here (the query log goes beside it)")
    p.add_argument("--query-log", default=None, help="JSON Lines query log (default: beside --json)")
    p.add_argument("--timeout", type=float, default=10.0, help="HTTP: seconds per request")
    p.add_argument("--retries", type=int, default=5, help="HTTP: retries on 5xx and connection errors")
    p.add_argument("--concurrency", type=int, default=4, help="HTTP: requests in flight")
    p.add_argument("--rate-limit", type=float, default=None, help="HTTP: requests per second")
    p.add_argument("--token-env", default=None, help="HTTP: environment variable holding a bearer token")
    p.add_argument("--batch-size", type=int, default=200, help="HTTP: images per request")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("recheck", help="recompute a verdict from a query log and the kit", epilog=EXIT_CODES)
    p.add_argument("--kit", required=True)
    p.add_argument("--log", required=True, help="the JSON Lines query log written by uapfp verify")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--json", default=None, help="write the recomputed verdict here")
    p.set_defaults(func=cmd_recheck)

    p = sub.add_parser(
        "serve",
        help="serve a suspect over HTTP (Open Inference Protocol / KServe v2) for tests and demos",
        epilog="Prints 'serving SPEC at URL' when ready. Fault injection is for testing clients.",
    )
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

    p = sub.add_parser("evaluate", help="score every held-out zoo model with a kit")
    p.add_argument("--kit", required=True)
    p.add_argument("--zoo", required=True)
    p.add_argument("--fingerprints", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--outputs", default="probs", help="simulate suspects answering probs, topk:K or label")
    p.add_argument("--json", default=None)
    p.set_defaults(func=cmd_evaluate)

    from .bench import EXPERIMENTS

    bench = sub.add_parser("bench", help="benchmarks (speed, detection quality); reports name the machine")
    bsub = bench.add_subparsers(dest="experiment", required=True)
    for exp in EXPERIMENTS.values():
        p = bsub.add_parser(exp.name, help=exp.help)
        exp.add_arguments(p)
        p.add_argument("--out", default=None, help="write the JSON report here")
        p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
