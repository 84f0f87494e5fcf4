"""What each subcommand does: parse nothing, call one library function, render the result.

Each ``cmd_*`` takes the parsed arguments and returns the exit code; libraries are imported
inside, so that ``uapfp --help`` imports none of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import csv, from_args, given, merged

EXIT_INCONCLUSIVE = 3  # verify ran but could not decide (query budget exhausted, suspect unavailable)


def _zoo_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..data import SplitConfig
    from ..zoo import preset

    overrides: dict[str, Any] = {
        "dataset": args.dataset,
        "archs": csv(args.archs) if args.archs else None,
        "optimizers": csv(args.optimizers) if args.optimizers else None,
        "attacks": csv(args.attacks) if args.attacks else None,
        "piracy_per_cell": args.piracy,
        "homologous_per_cell": args.homologous,
        "epochs": args.epochs,
        "augment": args.augment,
        "victim_arch": args.victim_arch,
        "include_victim_arch": False if args.no_victim_arch else None,
        "seed": args.seed,
        "split": SplitConfig(homologous_overlap=args.overlap),
    }
    return preset(args.preset, **overrides)


def cmd_zoo_build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..data import DatasetSpec
    from ..render import format_table
    from ..zoo import VictimSource, build_zoo, zoo_table

    config = _zoo_config(args)
    victim = VictimSource(
        factory=args.victim,
        weights=args.victim_weights,
        data=args.victim_data,
        siblings=tuple(args.victim_siblings or ()),
    )
    if victim.data and not args.dataset:
        config = replace(config, dataset=DatasetSpec.parse(victim.data).base)
    zoo = build_zoo(
        args.out, config, victim=victim, data_dir=args.data_dir, progress=not args.quiet, ray_address=args.ray
    )
    print(format_table(zoo_table(zoo)))
    print(f"\nzoo written to {zoo.path} ({len(zoo.cards)} models)")
    return 0


def cmd_zoo_list(args: argparse.Namespace) -> int:
    from ..render import format_table
    from ..zoo import Zoo, zoo_table

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
    from ..config import ProtectConfig
    from ..protect import protect
    from ..storage import read_json

    settings = read_json(args.config) if args.config else {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{args.config} must hold a JSON object of kit settings")
    config = ProtectConfig.from_dict(merged(settings, given(ProtectConfig, args)))
    if args.sign:
        from ..signing import load_private_key

        load_private_key(args.sign)  # a bad key is refused before the long work
    kit = protect(args.zoo, args.out, config=config, data_dir=args.data_dir, progress=not args.quiet)
    if args.sign:
        from ..signing import sign_kit

        sign_kit(kit.path, args.sign)  # type: ignore[arg-type]
    print(kit.summary())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..kit import Kit
    from ..storage import check_output_path, write_json
    from ..suspects.options import HttpOptions
    from ..suspects.spec import open_suspect
    from ..verify import Scoring, fingerprint_count, verify

    kit = Kit.load(args.kit, trusted_key=args.trusted_key)
    # every argument is checked before the first query is sent
    family = _family_null(args, kit)
    scoring = Scoring.of(kit, method=args.method, alpha=args.alpha, family_null=family)
    fingerprint_count(kit, args.fingerprints, scoring.method)
    out = check_output_path(args.json, "verdict") if args.json else None
    report = check_output_path(args.report, "report") if args.report else None
    qlog = args.query_log or (out.with_suffix(".queries.jsonl") if out else None)
    if report is not None and qlog is None:
        qlog = report.with_suffix(".queries.jsonl")
    if qlog is not None:
        check_output_path(qlog, "query log")
        if out is not None and Path(qlog).resolve() == out.resolve():
            raise ConfigError("--query-log and --json name the same file; give them different paths")
    if report is not None and any(p is not None and Path(p).resolve() == report.resolve() for p in (out, qlog)):
        raise ConfigError("--report names the same file as --json or the query log; give it its own path")
    http = from_args(HttpOptions, args)
    suspect = open_suspect(
        args.suspect, input_shape=kit.input_shape, num_classes=kit.num_classes, weights=args.weights,
        output=args.outputs, max_queries=args.max_queries, http=http if http != HttpOptions() else None,
    )  # fmt: skip
    try:
        verdict = verify(
            kit, suspect, method=scoring.method, fingerprints=args.fingerprints, alpha=args.alpha, query_log=qlog,
            sequential=False if args.all_sets else None, family_null=family,
        )
    finally:
        suspect.close()
    print(verdict.render())
    from ..report import evidence

    command = "uapfp " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("uapfp") else None
    record = evidence(verdict, kit, qlog, command=command)
    if out:
        write_json(out, record)
        print(f"verdict written to {out}" + (f", queries logged to {qlog}" if qlog else ""))
    if report:
        from ..report import verdict_report
        from ..storage import atomic_open

        with atomic_open(report, "w") as handle:
            handle.write(verdict_report(record))
        print(f"report written to {report}")
    return _verdict_code(verdict)


def _family_null(args: argparse.Namespace, kit):  # type: ignore[no-untyped-def]
    """The family null ``--family-null`` names (the folders joined where it is given more than once), checked
    against the kit (None where none is named)."""
    from ..family_null import load_nulls

    return load_nulls(args.family_null or (), kit)


def cmd_family_null(args: argparse.Namespace) -> int:
    from ..archs import module_of, trusting
    from ..family_null import build_family_null, round_epochs
    from ..kit import Kit
    from ..report import epochs_said
    from ..zoo import Zoo

    kit = Kit.load(args.kit, trusted_key=args.trusted_key)
    with trusting([module_of(args.arch)] if ":" in args.arch else []):  # the factory named here is the owner's code
        null = build_family_null(
            kit, Zoo.load(args.zoo), args.arch, args.out, count=args.count, seed=args.seed, epochs=args.epochs,
            data_dir=args.data_dir,
        )  # fmt: skip
    accuracies = [m["test_accuracy"] for m in null.models]
    epochs = list(dict.fromkeys(round_epochs(null.info["recipe"], i) for i in range(null.count)))  # rounds' order
    print(
        f"family null {null.path}: {null.count} honest models of {null.arch}, trained for "
        f"{epochs_said(epochs)} (test accuracy {min(accuracies):.3f} "
        f"to {max(accuracies):.3f}), sha256 {null.sha256}\n"
        f"use it for a suspect of that architecture: uapfp verify --kit {args.kit} --suspect SUSPECT "
        f"--family-null {null.path}"
    )
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from ..render import format_table
    from ..scan import SUMMARY, ScanSettings, read_targets, scan
    from ..suspects.options import HttpOptions

    targets = read_targets(args.suspects, args.from_file, family_null=args.family_null or ())
    http = from_args(HttpOptions, args)
    settings = ScanSettings(
        method=args.method, alpha=args.alpha, fingerprints=args.fingerprints, outputs=args.outputs,
        max_queries=args.max_queries, http=http if http != HttpOptions() else None, trusted_key=args.trusted_key,
        sequential=False if args.all_sets else None,
    )  # fmt: skip
    rows = scan(
        args.kit, targets, args.out, settings=settings, workers=args.workers, ray_address=args.ray,
        progress=not args.quiet,
    )  # fmt: skip
    table = [
        {"suspect": r.name, "verdict": r.verdict, "p_value": None if r.p_value is None else f"{r.p_value:.3g}",
         "similarity": r.similarity, "queries": r.queries,
         **({"family null": " + ".join(r.family_null)} if any(x.family_null for x in rows) else {}),
         "note": "; ".join(n for n in (
             r.error,
             "even an exact copy would not be shown" + (f" (p {r.p_floor:.3g})" if r.p_floor is not None else "")
             if r.exact_copy_not_shown else "",
             "classes reordered" if r.classes_reordered else "",
             "class order contradicted: it may answer the check's images otherwise" if r.class_order_contradicted else "",
             "earlier run" if r.resumed else "",
         ) if n)}
        for r in rows
    ]  # fmt: skip
    print(format_table(table))
    decided = sum(r.verdict in ("piracy", "not shown") for r in rows)
    print(f"\n{decided} of {len(rows)} suspects decided; verdicts in {args.out}, summary in {Path(args.out) / SUMMARY}")
    blind = sum(r.exact_copy_not_shown for r in rows)
    if blind:
        print(f"{blind} 'not shown' verdict(s) by a test that would not show even an exact copy of the victim: they are "
              "no evidence that the suspect is not a copy (each verdict's message names a remedy)")
    return 0 if decided == len(rows) else EXIT_INCONCLUSIVE


def cmd_report(args: argparse.Namespace) -> int:
    from ..storage import atomic_open, check_output_path, read_json

    record = read_json(args.record)
    if not isinstance(record, dict):
        raise ConfigError(f"{args.record} is not a record uapfp wrote (a verdict, an evaluation or a benchmark)")
    if "verdict" in record:
        from ..report import verdict_report

        page = verdict_report(record)
    else:
        from ..report_results import results_report

        try:
            page = results_report(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{args.record}: {exc}; give a verdict (verify --json), an evaluation (evaluate --json) "
                              "or a families benchmark (bench families --out)") from None  # fmt: skip
    out = check_output_path(args.out or str(Path(args.record).with_suffix(".html")), "report")
    with atomic_open(out, "w") as handle:
        handle.write(page)
    print(f"report written to {out}")
    return 0


def _verdict_code(verdict) -> int:  # type: ignore[no-untyped-def]
    from ..verify import INCONCLUSIVE

    if verdict.verdict == INCONCLUSIVE:
        print(f"uapfp: inconclusive: {verdict.message}", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    return 0


def cmd_recheck(args: argparse.Namespace) -> int:
    from ..kit import Kit
    from ..querylog import recheck_query_log
    from ..storage import check_output_path, write_json
    from ..verify import check_alpha

    kit = Kit.load(args.kit, trusted_key=args.trusted_key)
    if args.alpha is not None:
        check_alpha(args.alpha)
    out = check_output_path(args.json, "verdict") if args.json else None
    verdict = recheck_query_log(kit, args.log, alpha=args.alpha, family_null=_family_null(args, kit))
    print(verdict.render())
    if out:
        write_json(out, {**verdict.to_dict(), "query_log": str(args.log)})
        print(f"verdict written to {out}")
    return _verdict_code(verdict)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve import Faults, serve

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
    from ..evaluate import evaluate
    from ..kit import Kit
    from ..storage import check_output_path, write_json

    kit = Kit.load(args.kit)
    out = check_output_path(args.json, "evaluation") if args.json else None
    report = check_output_path(args.report, "report") if args.report else None
    ev = evaluate(
        kit,
        args.zoo,
        method=args.method,
        fingerprints=args.fingerprints,
        alpha=args.alpha,
        output=args.outputs,
        progress=not args.quiet,
    )
    print(ev.render())
    if out:
        write_json(out, ev.to_dict())
        print(f"evaluation written to {out}")
    if report:
        from ..report_results import evaluation_report
        from ..storage import atomic_open

        with atomic_open(report, "w") as handle:
            handle.write(evaluation_report(ev.to_dict()))
        print(f"report written to {report}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..signing import generate_keys, key_id, load_public_key

    private, public = generate_keys(args.out)
    print(f"private key {private} (keep it secret: uapfp protect --sign {private})")
    print(
        f"public key  {public} (give it out: uapfp verify --trusted-key {public}), key id {key_id(load_public_key(public))}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(out=args.out, data_dir=args.data_dir, progress=not args.quiet, full=False if args.slice else None)


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import experiments, run_experiment
    from ..storage import check_output_path, write_json

    exp = experiments()[args.experiment]
    config = from_args(exp.config, args)
    if args.out:
        check_output_path(args.out, "report")
    report = run_experiment(exp.name, config)
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report)
    return 0
