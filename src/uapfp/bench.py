"""Benchmarks: named experiments, each a function that measures and returns a JSON-able report.

``uapfp bench NAME [options]`` runs one and writes its report (with the machine it ran on) to
``--out``. Speed and detection quality are measured here, never by timed tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)


def machine() -> dict[str, Any]:
    """What a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass(frozen=True)
class Experiment:
    """A registered benchmark: its name, what it measures, its arguments and its function."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


EXPERIMENTS: dict[str, Experiment] = {}


def register(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):  # type: ignore[no-untyped-def]
    """Decorator registering ``run(args) -> report`` as experiment ``name``."""

    def wrap(fn: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[[argparse.Namespace], dict[str, Any]]:
        EXPERIMENTS[name] = Experiment(name, help, add_arguments, fn)
        return fn

    return wrap


# --------------------------------------------------------------------------- training speed


def _train_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archs", default="A,B,C,D,E")
    p.add_argument("--optimizers", default="sgd,adam,rmsprop")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir", default=None)


@register(
    "train-speed", "seconds and test accuracy of one model per architecture and optimizer on D_V", _train_speed_args
)
def train_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Train one model per (architecture, optimizer) on the full D_V (30,000 images)."""
    from .archs import create_model
    from .data import load_fashion_mnist, victim_indices
    from .training import TrainConfig, accuracy, train_model

    data = load_fashion_mnist(args.data_dir)
    idx = torch.from_numpy(victim_indices(len(data.x_train), seed=0))
    x, y = data.x_train[idx], data.y_train[idx]
    rows = []
    for arch in args.archs.split(","):
        for opt in args.optimizers.split(","):
            torch.manual_seed(0)
            model = create_model(arch)
            cfg = TrainConfig(optimizer=opt, batch_size=args.batch_size, epochs=args.epochs, seed=0)
            start = time.perf_counter()
            train_model(model, x, y, config=cfg, progress=False)
            seconds = time.perf_counter() - start
            acc = accuracy(model, data.x_test, data.y_test)
            rows.append({"arch": arch, "optimizer": opt, "seconds": round(seconds, 1), "test_accuracy": round(acc, 4)})
            log.info("%s %s: %.1f s, accuracy %.4f", arch, opt, seconds, acc)
    secs = [r["seconds"] for r in rows]
    return {
        "experiment": "train-speed",
        "train_images": len(x),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "rows": rows,
        "median_seconds": statistics.median(secs),
        "max_seconds": max(secs),
    }


# --------------------------------------------------------------------------- HTTP verification speed


def _http_verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--suspect", required=True, help="what to serve: a zoo card .json (or any uapfp serve spec)")
    p.add_argument("--weights", default=None, help="weights for a module:factory suspect")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to keep verifying")
    p.add_argument("--fingerprints", type=int, default=20, help="fingerprints per verification (at most the kit's)")
    p.add_argument("--outputs", default="probs", help="the server's answers: probs, topk:K or label")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=200)


@register(
    "http-verify",
    "verifications per minute, queries per second and median seconds of verify over HTTP (local uapfp serve)",
    _http_verify_args,
)
def http_verify(args: argparse.Namespace) -> dict[str, Any]:
    """Serve ``--suspect`` with ``uapfp serve`` in a subprocess and verify it over HTTP, repeatedly.

    Client and server share this machine, so the figures include both sides' CPU time.
    """
    from .kit import Kit
    from .serve import ServerProcess
    from .suspects import HttpSuspect
    from .verify import verify

    kit = Kit.load(args.kit)
    n = min(args.fingerprints, kit.n_sets)
    if n < args.fingerprints:
        log.warning("the kit has %d probe sets; using %d fingerprints", kit.n_sets, n)
    options = ["--outputs", args.outputs]
    if not args.suspect.endswith(".json"):
        c, h, w = kit.input_shape
        options += ["--input-shape", f"{c},{h},{w}", "--classes", str(kit.num_classes)]
    if args.weights:
        options += ["--weights", args.weights]
    t0 = time.perf_counter()
    with ServerProcess.serve(args.suspect, *options) as server:
        startup = time.perf_counter() - t0

        def once() -> Any:
            with HttpSuspect(
                server.url, input_shape=kit.input_shape, num_classes=kit.num_classes, output=args.outputs,
                concurrency=args.concurrency, batch_size=args.batch_size,
            ) as suspect:  # fmt: skip
                return verify(kit, suspect, fingerprints=n)

        once()  # warm-up: first requests, lazy imports
        seconds, queries, verdicts = [], 0, set()
        start = time.perf_counter()
        while not seconds or time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            v = once()
            seconds.append(time.perf_counter() - t)
            queries += v.queries
            verdicts.add(v.verdict)
        wall = time.perf_counter() - start
    return {
        "experiment": "http-verify",
        "suspect": args.suspect,
        "output_mode": args.outputs,
        "fingerprints": n,
        "queries_per_verification": queries // len(seconds),
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "server_startup_seconds": round(startup, 2),
        "verifications": len(seconds),
        "wall_seconds": round(wall, 2),
        "verifications_per_minute": round(60 * len(seconds) / wall, 2),
        "queries_per_second": round(queries / wall, 1),
        "median_verification_seconds": round(statistics.median(seconds), 3),
        "max_verification_seconds": round(max(seconds), 3),
        "verdicts": sorted(verdicts),
    }


# --------------------------------------------------------------------------- detection quality


def _protect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--uap-method", default=None, choices=["deepfool", "sgd"])
    p.add_argument("--norm", default=None, choices=["l2", "linf"])
    p.add_argument("--xi", type=float, default=None)
    p.add_argument("--fingerprints", type=int, default=None)
    p.add_argument("--outputs", default="probs", help="suspects answer probs, topk:K or label")
    p.add_argument("--paper-split", action="store_true")
    p.add_argument("--null", default=None, help="models, global, nearest:K or upper:K")
    p.add_argument("--calibration", default=None, choices=["auto", "kit", "leave-arch-out", "pooled"])
    p.add_argument("--train-on-calibration", action="store_true", default=None,
                   help="the calibration models train the kit's encoder too (leave-arch-out calibration only)")  # fmt: skip
    p.add_argument("--temperature-jitter", type=float, default=None)
    p.add_argument("--encoder-steps", type=int, default=None)
    p.add_argument("--encoder-temperature", type=float, default=None, help="the contrastive loss's temperature")
    p.add_argument(
        "--encoder-seed", type=int, default=None, help="the encoder's seed (--seed seeds the split, UAP and probes)"
    )
    p.add_argument("--augment", default=None, help="modifications augmenting the encoder's training models")
    p.add_argument("--stratify", default=None, help="card fields the model split is stratified by, e.g. arch")
    p.add_argument(
        "--train-fraction", type=float, default=None, help="share of non-calibration models training the encoder"
    )
    p.add_argument("--seed", type=int, default=0)


def _tally(scored: list[tuple[str, float, str]]) -> dict[str, Any]:
    """AUC, counts, mean similarities, detections and false alarms of (role, similarity, verdict) triples."""
    from .verify import PIRACY, auc

    pir = [(sim, verdict) for role, sim, verdict in scored if role == "piracy"]
    hom = [(sim, verdict) for role, sim, verdict in scored if role == "homologous"]
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    return {
        "auc": round(auc([sim for sim, _ in pir], [sim for sim, _ in hom]), 4) if pir and hom else None,
        "piracy": len(pir),
        "homologous": len(hom),
        "piracy_mean_similarity": mean([sim for sim, _ in pir]),
        "homologous_mean_similarity": mean([sim for sim, _ in hom]),
        "piracy_detected": sum(verdict == PIRACY for _, verdict in pir),
        "homologous_flagged": sum(verdict == PIRACY for _, verdict in hom),
    }


def _fold_result(ev: Any, ids: set[str] | None = None) -> dict[str, Any]:
    """:func:`_tally` of an evaluation's scores (those of ``ids``), with the largest piracy p-value."""
    scores = [s for s in ev.scores if ids is None or s.id in ids]
    row = _tally([(s.role, s.similarity, s.verdict) for s in scores])
    row["piracy_max_p"] = max((s.p_value for s in scores if s.role == "piracy"), default=None)
    return row


def _verdict_counts(scored: list[tuple[str, float, str]]) -> dict[str, Any]:
    """AUC and ``detected/total`` counts of (role, similarity, verdict) triples."""
    t = _tally(scored)
    return {
        "auc": t["auc"],
        "piracy_detected": f"{t['piracy_detected']}/{t['piracy']}",
        "homologous_flagged": f"{t['homologous_flagged']}/{t['homologous']}",
    }


def _folds_args(p: argparse.ArgumentParser) -> None:
    _protect_args(p)
    p.add_argument("--folds", default="none,archs,attacks", help="none (the default split), archs, attacks")
    p.add_argument("--nulls", default=None, help="comma-separated null rules to compare on the same kits")
    p.add_argument(
        "--calibrations",
        default=None,
        help="comma-separated calibrations (auto, kit, leave-arch-out, pooled) to compare",
    )


@register(
    "detection",
    "held-out AUC and verdicts: the default split, then leave one architecture / one attack out of the encoder",
    _folds_args,
)
def detection(args: argparse.Namespace) -> dict[str, Any]:
    """In-distribution and leave-one-out detection quality of a zoo's kits.

    The UAP, probes and fingerprints are computed once; each fold trains an encoder without
    the held-out architecture (or attack) and scores every held-out model through
    :func:`uapfp.verify.evaluate` from those stored fingerprints. For an architecture fold the
    AUC compares that architecture's piracy and homologous models; for an attack fold, that
    attack's piracy models against every held-out homologous model.
    """
    from dataclasses import replace

    from .kit import fit_kit, profile_zoo, protect_config, protect_settings, resolve_calibration, split_models
    from .verify import evaluate
    from .zoo import Zoo

    zoo = Zoo.load(args.zoo)
    config = protect_config(**protect_settings(vars(args)))
    profile = profile_zoo(zoo, config, data_dir=args.data_dir, progress=False)
    report: dict[str, Any] = {"experiment": "detection", "zoo": str(zoo.path), "config": config.to_dict(),
                              "uap": profile.uap.summary(), "outputs": args.outputs, "folds": []}  # fmt: skip
    folds = _csv(args.folds)
    cards = {c["id"]: c for c in zoo.cards}
    victim_arch = zoo.victim["arch"]
    plan: list[tuple[str, str, Any]] = []
    if "none" in folds:
        plan.append(("default", "-", config))
    if "archs" in folds:
        archs = sorted({c["arch"] for c in zoo.cards if c["role"] != "victim"})
        plan += [
            ("arch", a, replace(config, exclude_archs=(a,)))
            for a in archs
            if not (config.paper_split and a == victim_arch)
        ]
    if "attacks" in folds:
        attacks = sorted({(c.get("attack") or {}).get("name") for c in zoo.cards if c["role"] == "piracy"})
        plan += [("attack", t, replace(config, exclude_attacks=(t,))) for t in attacks]
    nulls = _csv(args.nulls) if args.nulls else (config.null,)
    asked = _csv(args.calibrations) if args.calibrations else (config.calibration,)
    for calibration in asked:
        replace(config, calibration=calibration)  # refuses an unknown name before any training
    for kind, name, cfg in plan:
        start = time.perf_counter()
        assignment = split_models(zoo.cards, cfg, victim_arch)
        calibrations = list(dict.fromkeys(
            resolve_calibration(cards, assignment, replace(cfg, calibration=c)) for c in asked
        ))  # fmt: skip
        # one kit serves every calibration: a pooled kit holds the leave-arch-out encoders too
        fit_calibration = calibrations[0] if len(calibrations) == 1 else "pooled"
        kit = fit_kit(zoo, profile, replace(cfg, calibration=fit_calibration), progress=False)
        kit.sha256 = "unsaved"
        for null, calibration in [(n, c) for c in calibrations for n in nulls]:
            kit.info["config"]["null"] = null
            kit.info["config"]["calibration"] = calibration
            ev = evaluate(kit, zoo, output=args.outputs, fingerprints=cfg.fingerprints, stored=profile.fingerprints)
            if kind == "arch":
                ids = {s.id for s in ev.scores if cards[s.id]["arch"] == name}
            elif kind == "attack":
                ids = {
                    s.id for s in ev.scores
                    if s.role == "homologous" or (cards[s.id].get("attack") or {}).get("name") == name
                }  # fmt: skip
            else:
                ids = None
            row = {"fold": kind, "held_out": name, "null": null, "calibration": calibration, **_fold_result(ev, ids),
                   "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            if kind == "default":
                row["groups"] = ev.groups
                row["models"] = [asdict(s) for s in ev.scores]
            report["folds"].append(row)
            log.info("fold %s %s null %s calibration %s: %s", kind, name, null, calibration,
                     {k: row[k] for k in ("auc", "piracy_mean_similarity", "homologous_mean_similarity", "homologous_flagged")})  # fmt: skip
    return report


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _uap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument(
        "--candidates",
        default="sgd:linf:0.1,sgd:linf:0.2,sgd:linf:0.3,sgd:l2:2,sgd:l2:4,sgd:l2:6,deepfool:linf:0.3,deepfool:l2:6",
    )
    p.add_argument("--uap-images", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)


@register("uap", "fooling rate (held-out data) and time of UAP methods, norms and radii on a zoo's victim", _uap_args)
def uap_choice(args: argparse.Namespace) -> dict[str, Any]:
    """Fooling rate on the victim's held-out test set for each ``method:norm:xi`` candidate."""
    from .uap import UAP_METHODS
    from .zoo import Zoo, load_model_from_card

    zoo = Zoo.load(args.zoo)
    victim = load_model_from_card(zoo.victim)
    data = zoo.load_dataset(args.data_dir)
    x_v = data.x_train[zoo.splits()["victim"]]
    gen = torch.Generator().manual_seed(args.seed)
    x = x_v[torch.randperm(len(x_v), generator=gen)[: args.uap_images]]
    rows = []
    for cand in _csv(args.candidates):
        method, norm, xi = cand.split(":")
        res = UAP_METHODS[method](victim, x, xi=float(xi), norm=norm, x_val=data.x_test, seed=args.seed)
        rows.append(res.summary())
        log.info("%s: fooling rate %.3f (%.1f s)", cand, res.fooling_rate_val, res.seconds)
    return {"experiment": "uap", "zoo": str(zoo.path), "uap_images": len(x), "rows": rows}


def _robust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--zoo", required=True)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--modifications", default="finetune:2,prune:0.3,prune:0.6,quantize:8,quantize:4")
    p.add_argument("--finetune-images", type=int, default=5000, help="the thief's own labelled images")
    p.add_argument("--outputs", default="probs")


@register("robustness", "verdicts on held-out models after fine-tuning, pruning and quantization", _robust_args)
def robustness(args: argparse.Namespace) -> dict[str, Any]:
    """Modify every held-out piracy and homologous model and verify the copies.

    Fine-tuning uses ``--finetune-images`` images of the attacker's pool with their true
    labels (the thief's own labelled data), which moves a copy away from the victim.
    """
    from .kit import Kit
    from .modify import create_modification
    from .suspects import TorchSuspect
    from .verify import verify
    from .zoo import Zoo, load_model_from_card

    kit = Kit.load(args.kit)
    zoo = Zoo.load(args.zoo)
    data = zoo.load_dataset(args.data_dir)
    pool = zoo.splits()["pool"]
    gen = torch.Generator().manual_seed(0)
    pick = pool[torch.randperm(len(pool), generator=gen)[: args.finetune_images]]
    x_ft, y_ft = data.x_train[pick], data.y_train[pick]
    held = set(kit.info["models"]["heldout"])
    cards = [c for c in zoo.cards if c["id"] in held and c["role"] in ("piracy", "homologous")]
    rows = []
    for spec in ("none", *_csv(args.modifications)):
        mod = None if spec == "none" else create_modification(spec)
        scores = []
        for card in cards:
            model = load_model_from_card(card)
            if mod is not None:
                model = mod.apply(model, x=x_ft, y=y_ft, seed=card["seed"])
            acc = (
                float((model(data.x_test).argmax(1) == data.y_test).float().mean())
                if len(data.x_test) <= 20000
                else None
            )
            v = verify(
                kit,
                TorchSuspect(
                    model,
                    input_shape=kit.input_shape,
                    num_classes=kit.num_classes,
                    output=args.outputs,
                    name=card["id"],
                ),
            )
            scores.append((card["role"], v.similarity, v.verdict, acc))
        pir = [s for s in scores if s[0] == "piracy"]
        hom = [s for s in scores if s[0] == "homologous"]
        row = {
            "modification": spec,
            **_verdict_counts([s[:3] for s in scores]),
            "piracy_mean_similarity": round(sum(s[1] for s in pir) / len(pir), 4),
            "homologous_mean_similarity": round(sum(s[1] for s in hom) / len(hom), 4),
            "piracy_mean_accuracy": round(sum(s[3] for s in pir) / len(pir), 4),
        }
        rows.append(row)
        log.info("%s: %s", spec, row)
    return {"experiment": "robustness", "kit": str(kit.path), "outputs": args.outputs, "rows": rows}


def _verify_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--zoo", required=True)
    p.add_argument("--fingerprints", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)


@register(
    "verify-speed", "seconds to verify one local suspect with a loaded kit (held-out zoo models)", _verify_speed_args
)
def verify_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Load the kit once, then time :func:`uapfp.verify.verify` on every held-out zoo model.

    The model's own loading is not timed (it is the suspect's, not the verification's).
    """
    from .kit import Kit
    from .verify import verify
    from .zoo import Zoo, card_suspect

    start = time.perf_counter()
    kit = Kit.load(args.kit)
    load_seconds = time.perf_counter() - start
    zoo = Zoo.load(args.zoo)
    held = set(kit.info["models"]["heldout"])
    suspects = [card_suspect(c) for c in zoo.cards if c["id"] in held]
    times = []
    for _ in range(args.repeats):
        for s in suspects:
            t = time.perf_counter()
            verify(kit, s, fingerprints=args.fingerprints)
            times.append(time.perf_counter() - t)
    return {
        "experiment": "verify-speed",
        "kit_load_seconds": round(load_seconds, 3),
        "verifications": len(times),
        "fingerprints": args.fingerprints,
        "first_seconds": round(times[0], 3),
        "median_seconds": round(statistics.median(times), 3),
        "max_seconds": round(max(times), 3),
    }


# --------------------------------------------------------------------------- lineage without the encoder


def repeated_errors(victim_pred: torch.Tensor, pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of the images the victim labels wrongly on which ``pred`` gives the victim's wrong label."""
    wrong = victim_pred != labels
    if not bool(wrong.any()):
        raise ValueError("the victim makes no error on these images")
    return float((pred[wrong] == victim_pred[wrong]).float().mean())


def _errors_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zoo", required=True)
    p.add_argument("--data-dir", default=None)


@register(
    "error-agreement",
    "share of the victim's test errors each zoo model repeats: a lineage measure the encoder never sees",
    _errors_args,
)
def error_agreement(args: argparse.Namespace) -> dict[str, Any]:
    """Per zoo model, :func:`repeated_errors` on the test set, and the AUC it gives alone.

    A copy inherits the victim's mistakes; an honest model makes its own. Models that repeat the
    victim's mistakes as often as copies do are honest look-alikes no output-based method can
    be expected to clear.
    """
    from .training import predict_logits
    from .verify import auc
    from .zoo import Zoo, load_model_from_card

    zoo = Zoo.load(args.zoo)
    data = zoo.load_dataset(args.data_dir)
    victim_pred = predict_logits(load_model_from_card(zoo.victim), data.x_test).argmax(1)
    # Only the victim's wrong images count: the models are run on those alone.
    wrong = victim_pred != data.y_test
    x_wrong, y_wrong, victim_wrong = data.x_test[wrong], data.y_test[wrong], victim_pred[wrong]
    rows = []
    for card in zoo.cards:
        if card["role"] == "victim":
            continue
        pred = predict_logits(load_model_from_card(card), x_wrong).argmax(1)
        share = repeated_errors(victim_wrong, pred, y_wrong)
        rows.append({"id": card["id"], "role": card["role"], "arch": card["arch"], "repeated_errors": round(share, 4)})
    by_role = {role: [r["repeated_errors"] for r in rows if r["role"] == role] for role in ("piracy", "homologous")}
    return {
        "experiment": "error-agreement",
        "zoo": str(zoo.path),
        "victim_errors": int(wrong.sum()),
        "auc": round(auc(by_role["piracy"], by_role["homologous"]), 4) if all(by_role.values()) else None,
        "roles": {
            role: {"n": len(xs), "min": min(xs), "mean": round(statistics.fmean(xs), 4), "max": max(xs)}
            for role, xs in by_role.items()
            if xs
        },
        "models": sorted(rows, key=lambda r: -r["repeated_errors"]),
    }


# --------------------------------------------------------------------------- suspects from outside the zoo


def _outside_archs() -> dict[str, Callable[[], torch.nn.Module]]:
    """Architectures no zoo holds: an MLP, a LeNet-5 and a wider CNN with batch normalisation."""
    from torch import nn

    def mlp() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def lenet() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
        )  # fmt: skip

    def widebn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(48 * 49, 64), nn.ReLU(), nn.Linear(64, 10),
        )  # fmt: skip

    return {"mlp": mlp, "lenet": lenet, "widebn": widebn}


def _outside_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kit", required=True)
    p.add_argument("--zoo", required=True, help="the zoo the kit was built from (its victim, splits and data)")
    p.add_argument("--models", default="runs/outside", help="folder caching the outside models")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--outputs", default="probs")


@register(
    "outside",
    "verdicts on suspects no zoo holds: other architectures, other extraction code, modified copies",
    _outside_args,
)
def outside(args: argparse.Namespace) -> dict[str, Any]:
    """Train (once, cached) and verify suspects from outside the zoo.

    For each of three architectures outside the registry (MLP, LeNet-5, a wide CNN with batch
    norm): an honest model trained on exactly D_V, one on data disjoint from D_V, and piracy
    models made by extraction code of our own that no zoo model used: the victim's answers on
    a 10,000 or 30,000-image pool, with random-shift augmentation and label smoothing, SGD
    with a step schedule, 8 epochs. Each piracy model is also verified fine-tuned, pruned
    (50 %) and INT8-quantized.
    """
    import torch.nn.functional as F

    from .kit import Kit
    from .modify import create_modification
    from .storage import load_tensors, save_tensors
    from .suspects import TorchSuspect
    from .training import accuracy
    from .verify import verify
    from .zoo import Zoo, load_model_from_card

    kit = Kit.load(args.kit)
    zoo = Zoo.load(args.zoo)
    data = zoo.load_dataset(args.data_dir)
    splits = zoo.splits()
    victim = load_model_from_card(zoo.victim)
    x_v, y_v = data.x_train[splits["victim"]], data.y_train[splits["victim"]]
    pool_idx = splits["pool"]
    outside_idx = pool_idx[: len(x_v)]
    folder = os.path.abspath(args.models)
    os.makedirs(folder, exist_ok=True)

    def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        return torch.roll(x, shifts=(dy, dx), dims=(2, 3))

    def fit(
        name: str, make: Callable[[], torch.nn.Module], x: torch.Tensor, y: torch.Tensor, seed: int
    ) -> torch.nn.Module:
        path = os.path.join(folder, f"{name}.safetensors")
        torch.manual_seed(seed)
        model = make()
        if os.path.exists(path):
            model.load_state_dict(load_tensors(path))
            return model.eval()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.3)
        model.train()
        for _ in range(8):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 128):
                idx = order[i : i + 128]
                target = y[idx]
                logits = model(shift(x[idx], gen))
                if target.dim() == 1:
                    loss = F.cross_entropy(logits, target, label_smoothing=0.1)
                else:
                    loss = -(0.9 * target + 0.01).mul(F.log_softmax(logits, 1)).sum(1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        model.eval()
        save_tensors(path, model.state_dict())
        return model

    suspects: list[tuple[str, str, str, torch.nn.Module]] = []
    for arch, make in _outside_archs().items():
        suspects.append(
            (f"honest-{arch}-same-data", "homologous", arch, fit(f"honest-{arch}-same", make, x_v, y_v, 11))
        )
        x_o, y_o = data.x_train[outside_idx], data.y_train[outside_idx]
        suspects.append(
            (f"honest-{arch}-disjoint-data", "homologous", arch, fit(f"honest-{arch}-disjoint", make, x_o, y_o, 12))
        )
        for budget, labels in ((10000, "hard"), (30000, "soft")):
            x_q = data.x_train[pool_idx[:budget]]
            with torch.no_grad():
                probs = torch.softmax(victim(x_q), 1)
            y_q = probs.argmax(1) if labels == "hard" else probs
            name = f"piracy-{arch}-{budget // 1000}k-{labels}"
            suspects.append((name, "piracy", arch, fit(name, make, x_q, y_q, 13)))
    pick = pool_idx[torch.randperm(len(pool_idx), generator=torch.Generator().manual_seed(5))[:5000]]
    x_ft, y_ft = data.x_train[pick], data.y_train[pick]
    for name, role, arch, model in list(suspects):
        if role != "piracy":
            continue
        for spec in ("finetune:2", "prune:0.5", "quantize:8"):
            suspects.append(
                (f"{name}+{spec}", "piracy", arch, create_modification(spec).apply(model, x=x_ft, y=y_ft, seed=1))
            )
    rows = []
    for name, role, arch, model in suspects:
        v = verify(
            kit,
            TorchSuspect(
                model, input_shape=kit.input_shape, num_classes=kit.num_classes, output=args.outputs, name=name
            ),
        )
        rows.append({
            "suspect": name, "role": role, "arch": arch, "accuracy": round(accuracy(model, data.x_test, data.y_test), 4),
            "similarity": round(v.similarity, 4), "p_value": v.p_value, "verdict": v.verdict,
        })  # fmt: skip
        log.info("%s: %s", name, rows[-1])
    return {
        "experiment": "outside",
        "kit": str(kit.path),
        "null": kit.config.null,
        "outputs": args.outputs,
        **_verdict_counts([(r["role"], r["similarity"], r["verdict"]) for r in rows]),
        "rows": rows,
    }
