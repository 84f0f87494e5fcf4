"""The flags of each subcommand, added only when that subcommand runs (no torch for ``--help``).

Flags that set a config's fields are generated from the config dataclass (:mod:`uapfp.options`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..options import add_arguments
from .commands import (
    cmd_bench,
    cmd_demo,
    cmd_evaluate,
    cmd_family_null,
    cmd_keygen,
    cmd_protect,
    cmd_recheck,
    cmd_report,
    cmd_scan,
    cmd_serve,
    cmd_verify,
    cmd_zoo_build,
    cmd_zoo_list,
)

EXIT_CODES = (
    "exit codes: 0 done (verify: verdict piracy or not shown), 2 error (one line on stderr), "
    "3 inconclusive (query budget exhausted, or the suspect stopped answering), 130 interrupted"
)
SCAN_EXIT_CODES = (
    "exit codes: 0 every suspect got a verdict (piracy or not shown), 2 error (one line on stderr), "
    "3 some suspect got no verdict (inconclusive, or an error row in the summary), 130 interrupted"
)
#: The kit settings ``uapfp protect`` takes as flags; every other one comes from ``--config FILE``.
PROTECT_FLAGS = (
    "method", "uap_method", "xi", "fingerprints", "alpha", "null", "calibration", "calibration_fraction",
    "paper_split", "seed",
)  # fmt: skip


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
    b.add_argument(
        "--preset", default="quick", choices=["tiny", "quick", "small", "paper"],
        help="quick (default): 84 models, about 18 min on 2 cores with --ray and AMX; small: 234 models, about 3 h; "
        "tiny: the shipped slice, for trying; paper: the paper's split (docs/zoo.md)",
    )  # fmt: skip
    b.add_argument("--dataset", default=None, help="fashion-mnist, fashion-mnist-slice, imagefolder:PATH (class folders or Tiny ImageNet) or cifar10:PATH")
    b.add_argument("--data-dir", default=None, help="folder holding the dataset files")
    b.add_argument("--archs", default=None, help="comma-separated architectures (registered names or module:factory)")
    b.add_argument("--optimizers", default=None, help="comma-separated: sgd,adam,rmsprop")
    b.add_argument("--attacks", default=None, help="comma-separated extraction attacks")
    b.add_argument("--piracy", type=int, default=None, help="piracy models per architecture and optimizer, in all")
    b.add_argument(
        "--homologous", type=int, default=None, help="homologous models per architecture and optimizer, in all"
    )
    b.add_argument("--epochs", type=int, default=None, help="epochs of the homologous and piracy models (of the victim and its siblings too, unless the preset sets theirs)")
    b.add_argument("--augment", default=None, help="training augmentation of every model: none (default), or crop:P, flip "
                   "and shift:P joined by + (crop:4+flip for natural images such as CIFAR-10)")  # fmt: skip
    b.add_argument("--overlap", type=float, default=0.5, help="overlap rate of each D_H with D_V (default 0.5)")
    b.add_argument("--victim-arch", default=None, help="architecture of the victim trained here (default A)")
    b.add_argument(
        "--no-victim-arch", action="store_true", help="do not add the victim's architecture to the zoo's architectures"
    )
    b.add_argument("--victim", default=None, help="your own victim's architecture, package.module:factory")
    b.add_argument("--victim-weights", default=None, help="its weights (.safetensors) or a TorchScript file")
    b.add_argument("--victim-data", default=None, help="its training data: SPEC, SPEC[start:stop] or SPEC@indices.json")
    b.add_argument(
        "--victim-siblings", nargs="+", default=None, metavar="FILE",
        help="its siblings, trained by you as the victim was (same architecture, recipe and data; other seeds), "
        "in the victim's format: the zoo holds them instead of training its own (2 or more; 8 is the default count)",
    )  # fmt: skip
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="train the models as Ray tasks: on a local Ray instance, or on the cluster at ADDRESS "
        "(pip install 'uapfp[ray]'; one CPU and one torch thread per model)",
    )  # fmt: skip
    b.set_defaults(func=cmd_zoo_build)
    ls = zoo.add_parser("list", help="print a zoo as a table")
    ls.add_argument("zoo", help="zoo folder")
    ls.add_argument("--json", action="store_true", help="print JSON rows")
    ls.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ls.set_defaults(func=cmd_zoo_list)


def _protect_flags(p: argparse.ArgumentParser) -> None:
    from ..config import ProtectConfig

    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True, help="kit folder")
    p.add_argument(
        "--config", default=None, metavar="FILE",
        help="a JSON file of kit settings (ProtectConfig's fields, docs/method.md); flags override it",
    )  # fmt: skip
    p.add_argument("--data-dir", default=None)
    add_arguments(p, ProtectConfig, only=PROTECT_FLAGS)
    p.add_argument(
        "--sign", default=None, metavar="KEY", help="sign the kit with this Ed25519 private key (PEM; uapfp keygen)"
    )
    p.set_defaults(func=cmd_protect)


def _verify_flags(p: argparse.ArgumentParser) -> None:
    from ..suspects.options import HTTP_FLAGS, HttpOptions

    p.add_argument("--kit", required=True)
    p.add_argument(
        "--suspect", required=True, help="zoo card .json, module:factory, torchscript:PATH, onnx:PATH or http(s)://..."
    )
    p.add_argument("--weights", default=None, help="weights for a module:factory suspect (.safetensors)")
    p.add_argument(
        "--outputs",
        default=None,
        help="what the suspect returns: probs, topk:K or label (default: probs; HTTP: what the server "
        "advertises); ONNX and HTTP also logits (ONNX default: detected)",
    )
    p.add_argument("--method", default=None, help="fingerprint method (default: the kit's; errors+siblings with "
                   "--family-null); see docs/method.md")  # fmt: skip
    p.add_argument("--fingerprints", type=int, default=None, help="query sets per method (default: the kit's, 20)")
    p.add_argument("--alpha", type=float, default=None, help="significance level (default: the kit's; protect's default is 0.01)")
    p.add_argument("--max-queries", type=int, default=None, help="hard query budget")
    p.add_argument(
        "--all-sets", action="store_true",
        help="send every requested set and test at alpha (default: stop once the sequential test settles)",
    )  # fmt: skip
    p.add_argument("--json", default=None, help="write the verdict here (the query log goes beside it)")
    p.add_argument("--query-log", default=None, help="JSON Lines query log (default: beside --json)")
    p.add_argument("--report", default=None, metavar="FILE.html", help="write a self-contained HTML report here")
    p.add_argument("--trusted-key", default=None, metavar="PUB", help="refuse a kit not signed by this public key")
    p.add_argument("--family-null", action="append", default=None, metavar="DIR", help=FAMILY_NULL_HELP)
    add_arguments(p, HttpOptions, only=HTTP_FLAGS)
    p.set_defaults(func=cmd_verify)


FAMILY_NULL_HELP = (
    "test the suspect against honest models of its own architecture (uapfp family-null) instead of the kit's "
    "calibration models, by the errors+siblings method unless --method names another; for a suspect whose architecture "
    "you know. Give it more than once to join folders of that architecture (each built with its own --seed): "
    "more models, or more recipes"
)


def _epochs_list(text: str) -> list[int]:
    """``--epochs 5,2,1`` (or one number) as a list of positive integers."""
    try:
        epochs = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if min(epochs) < 1:
        raise argparse.ArgumentTypeError(f"every round needs at least 1 epoch, got {text!r}")
    return epochs


def _family_null_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True, help="the kit whose queries the models answer")
    p.add_argument("--zoo", required=True, help="the kit's zoo: its data and training recipe")
    p.add_argument("--arch", required=True, help="the suspect's architecture: a registered name or package.module:factory")
    p.add_argument("--out", required=True, help="the family null's folder (rerun with the same folder to resume)")
    p.add_argument("--count", type=int, default=12, help="honest models to train (default 12)")
    p.add_argument(
        "--epochs", type=_epochs_list, default=None, metavar="E[,E...]",
        help="training epochs of each round of four models, in turn (default: the zoo's, half and a quarter of "
        "them, e.g. 5,2,1: a null that spans recipes, so that honest models trained for fewer epochs are not "
        "flagged); one number trains every model alike",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder holding the zoo's dataset files")
    p.add_argument("--trusted-key", default=None, metavar="PUB", help="refuse a kit not signed by this public key")
    p.set_defaults(func=cmd_family_null)


def _scan_flags(p: argparse.ArgumentParser) -> None:
    from ..suspects.options import HTTP_FLAGS, HttpOptions

    p.add_argument("--kit", required=True)
    p.add_argument("suspects", nargs="*", metavar="SUSPECT", help="suspect specs, as verify --suspect takes them")
    p.add_argument(
        "--from", dest="from_file", default=None, metavar="FILE",
        help="a file of suspects, one per line: SPEC, or SPEC WEIGHTS for a module:factory, then family-null=DIR "
        "for a suspect with its own null (# comments)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="folder of the verdicts, query logs and summary.json (resumable)")
    p.add_argument("--workers", type=int, default=4, help="suspects verified at once (default 4)")
    p.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="verify as Ray tasks, on a local instance or the cluster at ADDRESS (pip install 'uapfp[ray]')",
    )  # fmt: skip
    p.add_argument("--outputs", default=None, help="what the suspects return (as verify --outputs)")
    p.add_argument("--method", default=None, help="fingerprint method (default: the kit's; errors+siblings with "
                   "a family null)")  # fmt: skip
    p.add_argument("--fingerprints", type=int, default=None, help="query sets per method (default: the kit's)")
    p.add_argument("--alpha", type=float, default=None, help="significance level (default: the kit's)")
    p.add_argument("--max-queries", type=int, default=None, help="hard query budget per suspect")
    p.add_argument("--all-sets", action="store_true", help="no early stop: every requested set, tested at alpha")
    p.add_argument("--trusted-key", default=None, metavar="PUB", help="refuse a kit not signed by this public key")
    p.add_argument(
        "--family-null", action="append", default=None, metavar="DIR",
        help="the family null of the suspects named on the command line and of those whose line in --from names "
        "none (as verify --family-null: for suspects of that one architecture; a suspect whose spec names another "
        "is refused; more than once: the folders joined)",
    )  # fmt: skip
    add_arguments(p, HttpOptions, only=HTTP_FLAGS)
    p.set_defaults(func=cmd_scan)


def _recheck_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--log", required=True, help="the JSON Lines query log written by uapfp verify")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--json", default=None, help="write the recomputed verdict here")
    p.add_argument("--trusted-key", default=None, metavar="PUB", help="refuse a kit not signed by this public key")
    p.add_argument("--family-null", action="append", default=None, metavar="DIR",
                   help="the family null the verdict was tested against (each folder, where it joined several)")  # fmt: skip
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
    p.add_argument("--method", default=None, help="fingerprint method (default: the kit's; errors+siblings with "
                   "a family null)")  # fmt: skip
    p.add_argument("--fingerprints", type=int, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--outputs", default="probs", help="simulate suspects answering probs, topk:K or label")
    p.add_argument("--json", default=None)
    p.add_argument("--report", default=None, metavar="FILE.html", help="ROC curve, CDF per role, per-arch tables")
    p.set_defaults(func=cmd_evaluate)


def _report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("record", help="a verdict (verify --json), evaluation (evaluate --json) or benchmark (bench families --out)")
    p.add_argument("--out", default=None, help="the HTML file (default: beside the verdict)")
    p.set_defaults(func=cmd_report)


def _keygen_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="writes OUT.pem (private) and OUT.pub (public)")
    p.set_defaults(func=cmd_keygen)


def _bench_flags(p: argparse.ArgumentParser) -> None:
    from ..bench import experiments

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
    "family-null": (
        "train honest models of a suspect's architecture, the null for verify --family-null",
        "Honest models of the suspect's own architecture (on D_V with Adam and SGD, on data overlapping it, "
        "on data disjoint from it), asked every query set of the kit. See docs/method.md.",
        _family_null_flags,
    ),
    "scan": ("verify many suspects concurrently: a verdict each and a summary", SCAN_EXIT_CODES, _scan_flags),
    "recheck": ("recompute a verdict from a query log and the kit", EXIT_CODES, _recheck_flags),
    "serve": (
        "serve a suspect over HTTP (Open Inference Protocol / KServe v2) for tests and demos",
        "Prints 'serving SPEC at URL' when ready. Fault injection is for testing clients.",
        _serve_flags,
    ),
    "evaluate": ("score every held-out zoo model with a kit", None, _evaluate_flags),
    "bench": ("benchmarks (speed, detection quality); reports name the machine", None, _bench_flags),
    "report": ("render a verdict, evaluation or families benchmark as a self-contained HTML page", None, _report_flags),
    "keygen": (
        "make an Ed25519 key pair to sign kits with (protect --sign, verify --trusted-key)",
        None,
        _keygen_flags,
    ),
}
