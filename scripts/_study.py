"""What the study scripts share (a module beside them, not part of the package)."""

from __future__ import annotations

import argparse
import functools
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


def family_answers(
    zoo: Any, kit: Any, models: str, half: str, ask: Any, cache: str | os.PathLike[str] | None = None,
    data: Any = None,
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:  # fmt: skip
    """The answers ``ask(suspect)`` of the kit's calibration and held-out zoo models and of the families
    benchmark's suspects of ``half`` (which must exist: ``uapfp bench families --halves HALF`` trains them),
    and what each is: ``{"role": piracy|homologous, "group": calibration|heldout|fam, "family": ...}``.
    With ``cache``, read from there if it was written for this kit (the digest of its reference answers),
    else computed and written there (a dict of tensors, and a JSON file beside it). ``data``: the zoo's
    dataset, where the caller has it loaded already."""
    import json

    import torch

    from uapfp.bench.suspects_zoo import DEV_FAMILIES, KINDS, TEST_FAMILIES, build_suspects, load_suspect
    from uapfp.cards import load_model_from_card
    from uapfp.storage import sha256_tensors, write_json
    from uapfp.suspects.spec import card_suspect

    key = sha256_tensors(*(t for ref in kit.references.values() for t in (ref.queries, ref.victim, ref.null)))
    if cache is not None and Path(cache).is_file():
        stored = json.loads(Path(cache).with_suffix(".json").read_text())
        if stored.get("kit") == key and stored.get("half") == half:
            return torch.load(cache, weights_only=True), stored["suspects"]
    part = {i: p for p, ids in kit.info["models"].items() for i in ids}
    answers, info = {}, {}
    for card in zoo.cards:
        if part.get(card["id"]) in ("calibration", "heldout"):
            answers[card["id"]] = ask(card_suspect(card))
            info[card["id"]] = {"role": card["role"], "group": part[card["id"]], "family": card["arch"]}
    data = data if data is not None else zoo.load_dataset()
    families = DEV_FAMILIES if half == "dev" else TEST_FAMILIES
    victim = load_model_from_card(zoo.victim)
    for rec in build_suspects(models, victim, data, zoo.splits(), families=families, kinds=KINDS):
        answers[rec.name] = ask(load_suspect(models, rec, data))
        info[rec.name] = {"role": rec.role, "group": "fam", "family": rec.family}
    if cache is not None:
        tmp = Path(cache).with_suffix(".partial")
        torch.save(answers, tmp)
        tmp.rename(cache)
        write_json(Path(cache).with_suffix(".json"), {"kit": key, "half": half, "suspects": info})
    return answers, info


def score_cells(sim: dict[str, float], info: dict[str, dict[str, str]], kit_alpha: float, p_value: Any = None) -> str:
    """One table row's cells for similarities ``sim`` (suspect -> statistic): on the families benchmark
    (alpha 0.01) AUC, TPR at 1 % FPR, copies detected, honest flagged; on the zoo's held-out models (the
    kit's alpha) AUC, detected, flagged. ``p_value(s)`` defaults to the kit's test against the
    calibration models' statistics (prediction t-test)."""
    import numpy as np

    from uapfp.bench.scoring import tpr_at_fpr
    from uapfp.evaluate import auc
    from uapfp.significance import prediction_greater

    null = np.array([s for i, s in sim.items() if info[i]["group"] == "calibration"])
    p_value = p_value or (lambda s: prediction_greater(np.array([s]), null))
    cells = []
    for group in ("fam", "heldout"):
        alpha = 0.01 if group == "fam" else kit_alpha
        pos = [s for i, s in sim.items() if info[i]["group"] == group and info[i]["role"] == "piracy"]
        neg = [s for i, s in sim.items() if info[i]["group"] == group and info[i]["role"] == "homologous"]
        det, flag = sum(p_value(s) < alpha for s in pos), sum(p_value(s) < alpha for s in neg)
        cells.append((auc(pos, neg), tpr_at_fpr(pos, neg), det, len(pos), flag, len(neg)))
    (a, t, d, np_, f, nn_), (za, _, zd, znp, zf, znn) = cells
    return f"{a:.3f} | {t:.2f} | {d}/{np_} | {f}/{nn_} | {za:.3f}; {zd}/{znp}, {zf}/{znn}"


def family_aucs(sim: dict[str, float], info: dict[str, dict[str, str]]) -> str:
    """The AUC of copies against honest models within each family of the benchmark, as text."""
    from uapfp.evaluate import auc

    fams: dict[str, dict[str, list[float]]] = {}
    for i, s in sim.items():
        if info[i]["group"] == "fam":
            fams.setdefault(info[i]["family"], {}).setdefault(info[i]["role"], []).append(s)
    return ", ".join(f"{f} {auc(v['piracy'], v['homologous']):.2f}" for f, v in fams.items())


def family_study_args(doc: str, extra: Any = None) -> tuple[argparse.Namespace, Any, Any]:
    """Parse a families study's ``--zoo``, ``--kit``, ``--models`` and ``--half`` (and what ``extra(parser)``
    adds), quieten logging: the arguments, the zoo and the kit."""
    from uapfp.kit import Kit
    from uapfp.zoo import Zoo

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--kit", required=True)
    parser.add_argument("--models", required=True, help="the families benchmark's suspects (its --models folder)")
    parser.add_argument("--half", choices=("dev", "test"), default="dev")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return args, Zoo.load(args.zoo), Kit.load(args.kit)


def table_head(half: str, kit_alpha: float, first: str = "variant", per_family: bool = False) -> str:
    """The header of a families study's table, with the line that says which half and alphas."""
    extra = " per family AUC |" if per_family else ""
    return (
        f"{half} half; alpha 0.01 (families), {kit_alpha} (zoo held out)\n"
        f"| answers | {first} | AUC | TPR at 1 % FPR | copies detected | honest flagged | zoo held out: AUC; detected, "
        f"flagged |{extra}\n" + "|---" * (7 + per_family) + "|"
    )


def reference_scores(stats: dict[str, Any]) -> dict[str, tuple[dict[str, float], Any]]:
    """Three scores of a per-suspect reference, from each suspect's statistics (the victim's first, then
    each sibling's in the victim's place), with the ``p_value`` :func:`score_cells` takes (None: the kit's
    test against the calibration models): ``victim``, the victim's statistic; ``own``, the victim's
    against the siblings' by the kit's prediction t-test (no calibration model), scored as minus its
    p-value; ``diff``, the victim's minus the siblings' mean."""
    from uapfp.significance import prediction_greater

    return {
        "victim": ({i: s[0] for i, s in stats.items()}, None),
        "own": ({i: -prediction_greater(s[:1], s[1:]) for i, s in stats.items()}, lambda s: -s),
        "diff": ({i: s[0] - s[1:].mean() for i, s in stats.items()}, None),
    }


SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))


def shifted(x: Any, dy: int, dx: int) -> Any:
    """``x`` moved by (dy, dx) pixels, zeros where nothing moved in."""
    import torch

    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def unique_points(nine: list[Any], x: Any, num_classes: int, ks: tuple[int, ...]) -> tuple[Any, Any, dict, Any, Any]:
    """Where each of ``nine`` models (the victim first, then its siblings) decides otherwise than the others.

    The images ``x`` and their 1-pixel shifts (:data:`SHIFTS`) form ``X``; ``labels`` (9, N) are the nine's
    labels there. ``unique[m, k]`` is (indices into ``X``, the others' label there) where model ``m``'s label
    differs from one that at least ``k`` of the other eight give. ``union`` holds the indices of any model's
    unique points at the smallest ``k``; ``row`` maps an index into ``X`` to its place in ``union`` (-1: none)."""
    import torch
    import torch.nn.functional as F

    from uapfp.training import predict_logits

    X = torch.cat([shifted(x, dy, dx) for dy, dx in SHIFTS])
    labels = torch.stack([predict_logits(m, X).argmax(-1) for m in nine])
    unique = {}
    for m in range(len(nine)):
        votes = F.one_hot(torch.cat([labels[:m], labels[m + 1 :]]), num_classes).sum(0)
        agreeing, consensus = votes.max(-1)
        for k in ks:
            where = ((agreeing >= k) & (consensus != labels[m])).nonzero().squeeze(1)
            unique[m, k] = (where, consensus[where])
    union = torch.unique(torch.cat([unique[m, min(ks)][0] for m in range(len(nine))]))
    row = torch.full((len(X),), -1, dtype=torch.long)
    row[union] = torch.arange(len(union))
    return X, labels, unique, union, row


def victim_and_siblings(zoo: Any, kit: Any) -> list[Any]:
    """The kit's victim and then its siblings, loaded from the zoo's cards."""
    from uapfp.cards import load_model_from_card

    cards = {c["id"]: c for c in zoo.cards}
    return [load_model_from_card(zoo.victim)] + [load_model_from_card(cards[i]) for i in kit.info["siblings"]]


class UniquePointStudy:
    """What the studies of the victim's unique points share: the kit's error sets and the unique points
    (k = 8, 7, 6, as `study-unique-points.py`), and every suspect's answers to both, cached per kit and half
    (``runs/study-siblings-level-KIT-HALF.pt``, ``runs/study-unique-points-KIT-HALF.pt``)."""

    KS = (8, 7, 6)

    def __init__(self, doc: str, extra: Any = None) -> None:
        import torch

        self.args, self.zoo, self.kit = family_study_args(doc, extra)
        self.tag = f"{Path(self.args.kit).name}-{self.args.half}"
        self.data = self.zoo.load_dataset()
        self.x0 = self.data.x_test
        self.ref = self.kit.references["errors"]
        self.nine = victim_and_siblings(self.zoo, self.kit)
        self.X, self.labels, self.unique, self.union, self.row = unique_points(
            self.nine, self.x0, self.data.num_classes, self.KS
        )
        self.Y = self.data.y_test.repeat(len(self.X) // len(self.x0))
        self.on_errors, self.info = family_answers(
            self.zoo, self.kit, self.args.models, self.args.half,
            lambda s: torch.stack([s(q) for q in self.ref.queries]), cache=f"runs/study-siblings-level-{self.tag}.pt",
        )  # fmt: skip
        self.on_unique, _ = family_answers(
            self.zoo, self.kit, self.args.models, self.args.half, lambda s: s(self.X[self.union]),
            cache=f"runs/study-unique-points-{self.tag}.pt", data=self.data,
        )  # fmt: skip
        self.calibration = [i for i in self.info if self.info[i]["group"] == "calibration"]

    @functools.cached_property
    def held_out(self) -> dict[str, Any]:
        """Every suspect's answers to the 10,000 held-out images (``runs/study-siblings-images-KIT-HALF.pt``)."""
        answers, _ = family_answers(
            self.zoo, self.kit, self.args.models, self.args.half, lambda s: s(self.x0),
            cache=f"runs/study-siblings-images-{self.tag}.pt", data=self.data,
        )  # fmt: skip
        return answers

    def siblings(self, answers: Any, mode: str) -> float:
        """`siblings`' mean similarity of answers to the kit's error sets, in ``mode``."""
        from uapfp.methods import get_method, truncate

        ref = self.ref.truncated(mode, self.ref.queries.shape[0])
        return float(get_method("siblings").compare(ref, truncate(answers, mode)).mean())

    def vmc(self, answers: Any, k: int, part: str = "RW") -> float:
        """A suspect's ``vmc`` on the victim's unique points (answers already in their mode): ``all`` of them,
        ``W`` only, balanced over R and W (``RW``), or balanced with each point's ``vmc`` divided by the
        suspect's mass on the two labels (``ratio``: points where it gives them none are left out)."""
        where, consensus = self.unique[0, k]
        a = answers[self.row[where]]
        on_victims = a.gather(-1, self.labels[0, where, None]).squeeze(-1)
        on_siblings = a.gather(-1, consensus[:, None]).squeeze(-1)
        v = on_victims - on_siblings
        right, wrong = self.labels[0, where] == self.Y[where], consensus == self.Y[where]
        if part == "all":
            return float(v.mean())
        if part == "W":
            return float(v[wrong].mean())
        if part == "ratio":
            mass = on_victims + on_siblings
            v, right, wrong = v / mass.clamp_min(1e-6), right & (mass > 1e-6), wrong & (mass > 1e-6)
        return float((v[right].mean() + v[wrong].mean()) / 2)

    def combined(self, *channels: dict[str, float]) -> dict[str, float]:
        """The channels, each put on the calibration models' scale, averaged (as ``A+B`` does)."""
        import numpy as np

        z = []
        for c in channels:
            v = np.array([c[i] for i in self.calibration])
            z.append({i: (s - v.mean()) / v.std(ddof=1) for i, s in c.items()})
        return {i: float(np.mean([zc[i] for zc in z])) for i in channels[0]}


def counts(p: dict[str, float], copies: list[str], honest: list[str], alpha: float) -> str:
    """``detected/copies, flagged/honest`` at ``alpha`` for p-values ``p`` (suspect -> p-value)."""
    return f"{sum(p[i] < alpha for i in copies)}/{len(copies)}, {sum(p[i] < alpha for i in honest)}/{len(honest)}"


def p_left_out(sim: dict[str, float], x: str, null: list[str]) -> float:
    """The kit's test (prediction t-test) of ``x``'s similarity against those of the models ``null``, ``x`` left out."""
    import numpy as np

    from uapfp.significance import prediction_greater

    return prediction_greater(np.array([sim[x]]), np.array([sim[j] for j in null if j != x]))


def regression_p(s: float, x0: float, ys: Any, xs: Any) -> float:
    """One-sided p of ``s`` against the prediction interval at ``x0`` of the least-squares line of ys on xs."""
    import numpy as np
    from scipy import stats as st

    n = len(ys)
    b, a = np.polyfit(xs, ys, 1)
    sd = np.sqrt(((ys - (a + b * xs)) ** 2).sum() / (n - 2))
    se = sd * np.sqrt(1 + 1 / n + (x0 - xs.mean()) ** 2 / ((xs - xs.mean()) ** 2).sum())
    return float(st.t.sf((s - (a + b * x0)) / se, n - 2))


def cell(ps: list[float]) -> str:
    """Those of the p-values ``ps`` below 0.01 and 0.05, of how many."""
    return f"{sum(x < 0.01 for x in ps)}; {sum(x < 0.05 for x in ps)} of {len(ps)}"


def null_and_recipe_files(models: str, kit: str, archs: Any, families: tuple[str, ...]) -> dict[str, Path]:
    """The weights of the benchmark's family-null models of one recipe (``MODELS/family-null-ARCH``: ``uapfp
    family-null --epochs 4``, as ``bench families --family-null 12`` built it until 2026-12-07) of ``archs``
    (``null/ARCH/NAME``) and of the recipe
    study's `long` and `short` honest models of ``families`` (``RECIPE/FAMILY/KIND``, from
    ``runs/family-null-recipe-KIT``, which `study-family-null-recipe.py` writes), by key."""
    from uapfp.family_null import KINDS

    files: dict[str, Path] = {}
    for a in sorted(set(archs)):
        for f in sorted((Path(models) / f"family-null-{a}" / "models").glob("*.safetensors")):
            files[f"null/{a}/{f.stem}"] = f
    folder = Path(f"runs/family-null-recipe-{Path(kit).name}")
    for recipe in ("long", "short"):
        for family in families:
            for kind in KINDS:
                files[f"{recipe}/{family}/{kind}"] = folder / recipe / f"{family}-{kind}.safetensors"
    return files


def family_null_table(args: Any, zoo: Any, kit: Any, nulls_of: Any) -> None:
    """Print the table of the family-null studies (`study-spanning-null.py`, `study-mixed-null.py`): each suspect
    of the half scored as `verify --family-null` does (`siblings` on every set, the kit's prediction t-test
    against the null's models scored as suspects), probabilities and labels, at 0.01; 0.05: the benchmark's
    copies and honest models, each null's own models against the rest of it, the recipe study's `long` and
    `short` honest models. ``nulls_of(arch)``: ``{row name: FamilyNull}`` for the architecture, where a row of
    ``(None, FamilyNull)`` tests against the kit's calibration models (``verify --method siblings``), and its
    "own models" are that FamilyNull's, each against the kit's null."""
    import json

    import numpy as np
    import torch

    from uapfp.bench.suspects_zoo import DEV_FAMILIES, TEST_FAMILIES
    from uapfp.family_null import KINDS
    from uapfp.methods import get_method, truncate
    from uapfp.significance import prediction_greater

    tag = f"{Path(args.kit).name}-{args.half}"
    ref = kit.references["errors"]
    n_sets = kit.config.fingerprints
    answers, info = family_answers(zoo, kit, args.models, args.half, lambda s: torch.stack([s(q) for q in ref.queries]),
                                   cache=f"runs/study-siblings-level-{tag}.pt")  # fmt: skip
    recipe_answers = torch.load(f"runs/study-recipe-robust-{tag}.pt", weights_only=True)  # study-recipe-robust.py
    families = DEV_FAMILIES if args.half == "dev" else TEST_FAMILIES
    bench = [i for i in info if info[i]["group"] == "fam"]
    arch = {i: json.loads((Path(args.models) / f"{i}.json").read_text())["arch"] for i in bench}
    nulls = {a: nulls_of(a) for a in sorted(set(arch.values()))}
    method = get_method("siblings")

    def similarity(a: Any, mode: str) -> float:
        return float(method.compare(ref.truncated(mode, n_sets), truncate(a[:n_sets], mode)).mean())

    def p_value(s: float, null: Any, mode: str) -> float:
        if isinstance(null, tuple):
            return prediction_greater(np.array([s]), method.null(kit, mode, n_sets, None).mean(1).numpy())
        return prediction_greater(np.array([s]), null.similarities(kit, method, mode, n_sets).mean(1).numpy())

    print(
        "| answers | null | copies detected | the benchmark's honest flagged | the null's own models flagged (each "
        "against the rest) | `long` flagged | `short` flagged |\n" + "|---" * 7 + "|"
    )
    for mode in ("probs", "label"):
        for name in nulls[families[0]]:
            p = {i: p_value(similarity(answers[i], mode), nulls[arch[i]][name], mode) for i in bench}
            copies = [p[i] for i in bench if info[i]["role"] == "piracy"]
            honest = [p[i] for i in bench if info[i]["role"] == "homologous"]
            own = []
            for f in families:
                null = nulls[f][name]
                if isinstance(null, tuple):
                    own += [p_value(similarity(a, mode), null, mode) for a in null[1].answers["errors"]]
                    continue
                for j in range(null.count):
                    own.append(p_value(similarity(null.answers["errors"][j], mode), null.without(j), mode))
            recipes = [
                [p_value(similarity(recipe_answers[f"{r}/{f}-{k}"], mode), nulls[f][name], mode) for f in families for k in KINDS]
                for r in ("long", "short")
            ]  # fmt: skip
            print(f"| {mode} | {name} | {cell(copies)} | {cell(honest)} | {cell(own)} | {cell(recipes[0])} | "
                  f"{cell(recipes[1])} |", flush=True)  # fmt: skip
