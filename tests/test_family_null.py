"""The null of the suspect's own family: building it, loading it safely, testing a suspect against it."""

from __future__ import annotations

import functools
import html
import json

import numpy as np
import pytest
import torch

from uapfp.cli import main
from uapfp.errors import ConfigError, KitIntegrityError
from uapfp.family_null import KINDS, FamilyNull, build_family_null, combine_nulls, query_sets, same_architecture
from uapfp.methods import get_method
from uapfp.querylog import recheck_query_log
from uapfp.significance import prediction_greater
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.suspects.spec import card_suspect
from uapfp.verify import verify

ARCH = "mlp"  # the architecture of conftest's family_null fixture


def _weights(null, index):
    return null.path / "models" / f"{null.info['models'][index]['name']}.safetensors"


def _model(null, index, kit):
    from uapfp.archs import create_model

    c, h, w = kit.input_shape
    model = create_model(ARCH, in_channels=c, image_size=(h, w), num_classes=kit.num_classes)
    model.load_state_dict(load_tensors(_weights(null, index)))
    return model.eval()


def _unnamed(card, output="probs"):
    """A zoo model as a suspect whose architecture uapfp cannot read, as a file's or a server's: these tests
    check the numbers against an MLP null, and a suspect named as another architecture is refused."""
    suspect = card_suspect(card, output=output)
    suspect.architecture = None
    return suspect


def test_a_family_null_holds_each_models_answers_to_every_query_set(family_null, tiny_kit):
    sets = query_sets(tiny_kit)
    assert set(family_null.answers) == set(sets) == {"uap", *tiny_kit.references}
    for key, q in sets.items():
        assert family_null.answers[key].shape == (5, *q.shape[:2], tiny_kit.num_classes)
    assert [m["kind"] for m in family_null.info["models"]] == [*KINDS, KINDS[0]]  # rounds of the four kinds
    assert len({m["seed"] for m in family_null.info["models"]}) == 5
    # one recipe (--epochs 1): the models are listed as before nulls could span recipes, so identities hold
    assert family_null.info["recipe"]["epochs"] == 1 and all("epochs" not in m for m in family_null.models)
    # the stored answers are the saved models' probabilities, as a suspect would give them
    s = TorchSuspect(_model(family_null, 3, tiny_kit), input_shape=tiny_kit.input_shape,
                     num_classes=tiny_kit.num_classes)  # fmt: skip
    assert torch.allclose(family_null.answers["errors"][3], torch.stack([s(q) for q in sets["errors"]]), atol=1e-6)
    again = FamilyNull.load(family_null.path, tiny_kit)
    assert again.sha256 == family_null.sha256 and again.count == 5 and again.arch == ARCH


def test_building_again_resumes_and_a_changed_recipe_is_refused(family_null, tiny_zoo, tiny_kit):
    weights = sorted((family_null.path / "models").glob("*.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    again = build_family_null(tiny_kit, tiny_zoo, ARCH, family_null.path, count=5, epochs=1)
    assert [w.stat().st_mtime_ns for w in weights] == stamps  # nothing trained again
    # the same answers and the same identity: a verdict against the first build is checked against this one
    assert again.sha256 == family_null.sha256 == FamilyNull.load(family_null.path, tiny_kit).sha256
    with pytest.raises(ConfigError, match="another recipe"):
        build_family_null(tiny_kit, tiny_zoo, ARCH, family_null.path, count=5, epochs=2)
    with pytest.raises(ConfigError, match="at least 4"):
        build_family_null(tiny_kit, tiny_zoo, ARCH, family_null.path, count=3, epochs=1)


def test_a_damaged_null_or_one_of_another_kit_is_refused(family_null, tiny_zoo, tiny_kit, lao_kit, tmp_path):
    import shutil

    with pytest.raises(ConfigError, match="another kit"):
        FamilyNull.load(family_null.path, lao_kit)
    copy = tmp_path / "copy"
    shutil.copytree(family_null.path, copy)
    # built again for another kit of the same zoo: the same models answer its queries, the first kit's stay
    other = build_family_null(lao_kit, tiny_zoo, ARCH, copy, count=5, epochs=1)
    assert FamilyNull.load(copy, lao_kit).sha256 == other.sha256 != family_null.sha256
    assert FamilyNull.load(copy, tiny_kit).sha256 == family_null.sha256
    (answers,) = copy.glob(f"answers-{tiny_kit.sha256[:16]}.safetensors")
    with open(answers, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\1")
    with pytest.raises(KitIntegrityError, match="does not match"):
        FamilyNull.load(copy, tiny_kit)
    answers.unlink()
    with pytest.raises(KitIntegrityError, match="lacks the answers"):
        FamilyNull.load(copy, tiny_kit)
    with pytest.raises(ConfigError, match="not a family null"):
        FamilyNull.load(tmp_path, tiny_kit)


@pytest.mark.parametrize("method", ["uap", "errors"])
def test_verify_tests_the_suspect_against_the_family_null(family_null, tiny_zoo, tiny_kit, method):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    v = verify(tiny_kit, _unnamed(card), method=method, family_null=family_null)
    m = get_method(method)
    # the null is the family's models scored as suspects, and the p-value the model-level test of them
    null = m.similarities(tiny_kit, family_null.answers[m.query_key][:, : v.fingerprints], "probs")
    assert v.null_count == 5 and v.null_models == pytest.approx(null.mean(1).tolist(), abs=1e-6)
    assert v.p_value == pytest.approx(prediction_greater(np.array([v.similarity]), null.mean(1).numpy()), rel=1e-3)
    assert v.family_null["sha256"] == family_null.sha256 and v.calibration == "family-null"
    assert ARCH in v.render()
    assert verify(tiny_kit, card_suspect(card), method=method).family_null == {}  # without it: the kit's null


def test_a_family_null_serves_every_answer_mode_and_combined_methods(family_null, tiny_zoo, tiny_kit):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    v = verify(tiny_kit, _unnamed(card, output="label"), method="errors+siblings", family_null=family_null)
    assert v.output_mode == "label" and [c["method"] for c in v.channels] == ["errors", "siblings"]
    assert v.null_count == 5 and len(v.null_models) == 5
    # each channel's p-value is against the family's models scored on labels, as the suspect is
    sib = get_method("siblings")
    null = sib.similarities(tiny_kit, family_null.answers["errors"][:, : v.fingerprints], "label").mean(1)
    expected = prediction_greater(np.array([v.channels[1]["similarity"]]), null.numpy())
    assert v.channels[1]["p_value"] == pytest.approx(expected, rel=1e-3)


def test_a_family_null_tests_by_errors_and_siblings_unless_told_otherwise(family_null, tiny_zoo, tiny_kit):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    assert tiny_kit.config.method == "uap" and tiny_kit.references["errors"].siblings.shape[0] >= 2
    v = verify(tiny_kit, _unnamed(card), family_null=family_null)
    assert v.method == "errors+siblings" and [c["method"] for c in v.channels] == ["errors", "siblings"]
    classes = tiny_kit.references["classes"].queries.shape[1]  # the class-order check's, sent first
    assert v.queries == classes + v.fingerprints * tiny_kit.references["errors"].queries.shape[1]  # one set serves both
    # a test other than the model-level one cannot combine channels: then siblings alone
    from uapfp.verify import family_null_method

    assert family_null_method(tiny_kit, "global") == "siblings"
    assert verify(tiny_kit, _unnamed(card), test="global", family_null=family_null).method == "siblings"
    assert verify(tiny_kit, card_suspect(card)).method == "uap"  # the kit's own, without a family null
    # a kit without the victim's siblings: the user is asked for a method before any query
    from dataclasses import replace

    ref = tiny_kit.references["errors"]
    bare = replace(tiny_kit, references={**tiny_kit.references, "errors": replace(ref, siblings=ref.siblings[:0])})
    with pytest.raises(ConfigError, match="--method"):
        verify(bare, _unnamed(card), family_null=family_null)
    assert verify(bare, _unnamed(card), method="errors", family_null=family_null).method == "errors"


def test_the_benchmark_scores_every_method_against_each_suspects_family_null(family_null, tiny_zoo, tiny_kit,
                                                                              tmp_path):  # fmt: skip
    from dataclasses import replace

    from uapfp.bench.scoring import score_suspects
    from uapfp.bench.suspects_zoo import build_suspects
    from uapfp.cards import load_model_from_card

    data = tiny_zoo.load_dataset()
    (rec,) = build_suspects(tmp_path, load_model_from_card(tiny_zoo.victim), data, tiny_zoo.splits(),
                            families=(ARCH,), kinds=("honest-dv-b",), epochs=1, half=lambda family: "dev")  # fmt: skip
    records = [rec, replace(rec, name="twin", half="test")]  # the same model in both halves
    rows, per = score_suspects(tiny_kit, str(tmp_path), records, data, methods=("errors",), outputs=("probs", "label"),
                               alpha=0.05, family_nulls={ARCH: family_null})  # fmt: skip
    assert [(r["half"], r["outputs"], r["method"], r["honest"]) for r in rows] == [
        (h, o, m, n) for h in ("dev", "test") for o in ("probs", "label")
        for m, n in (("errors", 1), ("errors (family null)", 6))
    ]  # fmt: skip
    # a null's model is an honest suspect of each half, tested against the other four models of its null
    errors = get_method("errors")
    sims = errors.similarities(tiny_kit, family_null.answers["errors"][:, : tiny_kit.config.fingerprints], "probs")
    row = next(p for p in per if p["kind"] == "null-dv-sgd" and p["half"] == "test" and p["outputs"] == "probs")
    expected = prediction_greater(sims[1].numpy(), sims[[0, 2, 3, 4]].mean(1).numpy())
    assert row["p_value"] == pytest.approx(expected, rel=1e-3)


def test_a_query_log_is_rechecked_against_the_null_it_names(family_null, tiny_zoo, tiny_kit, tmp_path):
    card = next(c for c in tiny_zoo.cards if c["role"] == "homologous")
    log = tmp_path / "q.jsonl"
    v = verify(tiny_kit, _unnamed(card), method="errors", family_null=family_null, query_log=log)
    assert json.loads(log.read_text().splitlines()[0])["family_null_sha256"] == family_null.sha256
    again = recheck_query_log(tiny_kit, log, family_null=family_null)
    assert (again.p_value, again.per_fingerprint, again.null_models) == (v.p_value, v.per_fingerprint, v.null_models)
    with pytest.raises(ConfigError, match="give that null"):
        recheck_query_log(tiny_kit, log)
    plain = tmp_path / "plain.jsonl"
    verify(tiny_kit, card_suspect(card), method="errors", query_log=plain)
    with pytest.raises(ConfigError, match="leave out --family-null"):
        recheck_query_log(tiny_kit, plain, family_null=family_null)


def test_the_suspects_architecture_is_checked_where_its_spec_names_it(family_null, tiny_zoo, tiny_kit, tmp_path):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    named = card_suspect(card)  # a zoo card names its architecture, here not the null's
    with pytest.raises(ConfigError, match=f"{card['id']} is of architecture {card['arch']}, .* holds honest models of {ARCH}"):
        verify(tiny_kit, named, family_null=family_null)
    assert named.queries == 0  # refused before any query
    # one architecture under several names (the same parameters); unknown where code may not be imported
    import tests.helpers  # noqa: F401  (imported, as opening a suspect of it would)

    same = functools.partial(same_architecture, input_shape=tiny_kit.input_shape, num_classes=tiny_kit.num_classes)
    assert same(ARCH, ARCH) and same(ARCH, "uapfp.archs.classic:mlp") and same("tests.helpers:paper_c", "C")
    assert same("resnet18", "resnet18-w1") and same("resnet18", "resnet18-w2") is False
    assert same(ARCH, card["arch"]) is False and same(ARCH, "lenet5") is False
    assert same(ARCH, "not.imported.module:mlp") is None and same(ARCH, "no-such-arch") is None
    # a suspect of the null's architecture: checked, and the log and its recheck say so
    from uapfp.suspects.spec import open_suspect

    mlp = open_suspect("uapfp.archs.classic:mlp", input_shape=tiny_kit.input_shape, num_classes=tiny_kit.num_classes,
                       weights=str(_weights(family_null, 1)))  # fmt: skip
    log = tmp_path / "q.jsonl"
    v = verify(tiny_kit, mlp, family_null=family_null, query_log=log)
    assert v.family_null["suspect_architecture"] == "uapfp.archs.classic:mlp" and v.family_null["architecture_checked"]
    assert "(checked)" in v.render()
    assert recheck_query_log(tiny_kit, log, family_null=family_null).family_null == v.family_null
    # a header that claims another architecture than the null's is refused by recheck
    lines = log.read_text().splitlines()
    header = json.loads(lines[0]) | {"suspect_architecture": "lenet5"}
    log.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match="not the null's"):
        recheck_query_log(tiny_kit, log, family_null=family_null)
    unnamed = verify(tiny_kit, _unnamed(card), family_null=family_null)
    assert unnamed.family_null["suspect_architecture"] is None and not unnamed.family_null["architecture_checked"]
    assert "(not checked)" in unnamed.render()


def test_the_command_line_builds_a_null_and_verifies_with_it(family_null, tiny_zoo, tiny_kit, tmp_path, capsys):
    # the command resumes the fixture's null: same folder, same recipe, nothing trained
    argv = ["family-null", "--kit", str(tiny_kit.path), "--zoo", str(tiny_zoo.path), "--arch", ARCH,
            "--out", str(family_null.path), "--count", "5", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0  # one number is the recipe of a null of one recipe, as before nulls spanned recipes
    assert f"5 honest models of {ARCH}, trained for 1 epoch " in capsys.readouterr().out
    assert FamilyNull.load(family_null.path, tiny_kit).sha256 == family_null.sha256
    # without --epochs the default spans recipes: the command says how to resume this folder instead
    assert main(argv[:-2]) == 2 and "rerun with --epochs 1 to resume it" in capsys.readouterr().err
    assert main([*argv[:-2], "--seed", "3"]) == 2  # another seed too: --epochs alone would not resume it
    err = capsys.readouterr().err
    assert "another recipe or format" in err and "rerun with" not in err
    # the identity's formula, pinned (a change would orphan every verdict against a null built before it)
    from uapfp.family_null import _identity

    info = {"format": "uapfp-family-null/1", "arch": "mlp", "models": [
        {"name": "000-dv-adam", "kind": "dv-adam", "seed": 10000, "test_accuracy": 0.9},
        {"name": "001-dv-sgd", "kind": "dv-sgd", "seed": 10001, "test_accuracy": 0.8}],
        "recipe": {"arch": "mlp", "epochs": 4, "batch_size": 128, "augment": "none", "seed": 0, "data": "ab"}}  # fmt: skip
    assert _identity(info, "cd", {"models": 2, "answers_sha256": "ef"}) == (
        "ef2dc366f93b25afe4b1cb754d4b260a114b260403342cb181e22425fe436283")  # fmt: skip
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    out = tmp_path / "verdict.json"
    argv = ["verify", "--kit", str(tiny_kit.path), "--suspect", str(card["_path"]), "--method", "errors",
            "--family-null", str(family_null.path), "--json", str(out)]  # fmt: skip
    # a zoo card names its architecture: one of another is refused before any query, nothing written
    assert main(argv) == 2 and f"holds honest models of {ARCH}" in capsys.readouterr().err and not out.exists()
    argv[3:5] = ["--suspect", "uapfp.archs.classic:mlp", "--weights", str(_weights(family_null, 0))]
    assert main([*argv, "--report", str(tmp_path / "verdict.html")]) == 0
    record = json.loads(out.read_text())
    assert record["family_null"]["arch"] == ARCH and record["null_count"] == 5
    assert record["family_null"]["suspect_architecture"] == "uapfp.archs.classic:mlp"
    assert record["family_null"]["architecture_checked"] is True
    page = (tmp_path / "verdict.html").read_text()
    assert f"5 honest models of {ARCH}" in page and f"--family-null {family_null.path}" in page
    assert "uapfp.archs.classic:mlp, as the suspect" in page and "checked by uapfp" in page
    assert "honest models of the suspect's architecture mlp (checked)" in capsys.readouterr().out
    assert main(["recheck", "--kit", str(tiny_kit.path), "--log", str(out.with_suffix(".queries.jsonl")),
                 "--family-null", str(family_null.path)]) == 0  # fmt: skip
    # a folder that is no family null is one line of error, before any query
    assert main([*argv[:-4], "--family-null", str(tmp_path)]) == 2
    assert "not a family null" in capsys.readouterr().err


def test_a_null_of_the_owners_own_factory_trusts_only_the_module_it_names(tiny_zoo, tiny_kit, tmp_path, capsys):
    # as zoo build --victim: the factory named on the command line is the owner's code, and runs without
    # --trust-code; nothing stays trusted after the command
    from uapfp.archs import trusted_modules

    out = tmp_path / "null"
    argv = ["-q", "family-null", "--kit", str(tiny_kit.path), "--zoo", str(tiny_zoo.path), "--arch",
            "tests.helpers:tiny_mlp", "--out", str(out), "--count", "4", "--epochs", "1"]  # fmt: skip
    # the library trusts nothing by itself: a benchmark's cards name architectures too, and a card runs no code
    with pytest.raises(ConfigError, match="--trust-code tests.helpers"):
        build_family_null(tiny_kit, tiny_zoo, "tests.helpers:tiny_mlp", tmp_path / "untrusted", count=4, epochs=1)
    assert main(argv) == 0, capsys.readouterr().err
    null = FamilyNull.load(out, tiny_kit)
    assert null.arch == "tests.helpers:tiny_mlp" and null.count == 4
    assert "tests.helpers" not in trusted_modules()
    weights = out / "models" / f"{null.info['models'][0]['name']}.safetensors"
    from uapfp.suspects.spec import open_suspect

    suspect = open_suspect("tests.helpers:tiny_mlp", input_shape=tiny_kit.input_shape, num_classes=tiny_kit.num_classes,
                           weights=str(weights))  # fmt: skip
    v = verify(tiny_kit, suspect, family_null=null, sequential=False)
    assert v.family_null["architecture_checked"] is True and v.null_count == 4


def test_nulls_of_other_recipes_join_into_one_that_spans_them(family_null, tiny_zoo, tiny_kit, tmp_path, capsys):
    from dataclasses import replace

    other = build_family_null(tiny_kit, tiny_zoo, ARCH, tmp_path / "two-epochs", count=4, epochs=2, seed=1)
    both = combine_nulls([family_null, other])
    assert both.count == 9 and both.arch == ARCH and both.path is None and set(both.folders) == {
        str(family_null.path), str(other.path)}  # fmt: skip
    assert combine_nulls([other, family_null]).sha256 == both.sha256 not in (family_null.sha256, other.sha256)
    assert [m["seed"] for m in both.models] == [m["seed"] for p in both.parts for m in p.models]
    assert {r["epochs"] for r in both.info["recipe"]} == {1, 2}
    for key, answers in both.answers.items():
        assert torch.equal(answers, torch.cat([p.answers[key] for p in both.parts]))
    # a suspect against it: the null is the nine models of both folders, scored as suspects
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    v = verify(tiny_kit, _unnamed(card), method="errors", family_null=both, sequential=False)
    m = get_method("errors")
    null = m.similarities(tiny_kit, both.answers["errors"][:, : v.fingerprints], "probs").mean(1)
    expected = prediction_greater(np.array([v.similarity]), null.numpy())
    assert v.null_count == 9 and v.p_value == pytest.approx(expected, rel=1e-3)
    assert v.family_null["paths"] == both.folders and v.family_null["sha256"] == both.sha256
    # refused: a folder twice, models of the same seeds (shared initial weights), another architecture
    with pytest.raises(ConfigError, match=f"{other.path} is given twice"):
        combine_nulls([family_null, other, other])
    with pytest.raises(ConfigError, match="cannot be joined again"):
        combine_nulls([both, other])
    same_seeds = build_family_null(tiny_kit, tiny_zoo, ARCH, tmp_path / "same-seeds", count=4, epochs=2)
    with pytest.raises(ConfigError, match="same seed"):
        combine_nulls([family_null, same_seeds])
    lenet = replace(other, info={**other.info, "arch": "lenet5"}, sha256="0" * 64)
    with pytest.raises(ConfigError, match="different architectures"):
        combine_nulls([family_null, lenet])

    # the command line: --family-null twice; the log is rechecked with both folders, in any order, not with one
    out = tmp_path / "verdict.json"
    weights = _weights(family_null, 0)
    argv = ["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", "uapfp.archs.classic:mlp", "--weights",
            str(weights), "--family-null", str(family_null.path), "--family-null", str(other.path), "--json", str(out),
            "--report", str(tmp_path / "verdict.html")]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(out.read_text())
    assert record["null_count"] == 9 and record["family_null"]["sha256"] == both.sha256
    page = (tmp_path / "verdict.html").read_text()
    assert f"--family-null {both.folders[0]} --family-null {both.folders[1]}" in page and "joins 2 folders" in page
    assert "1 epoch, batch 128, augmentation none, seed 0" in page and "2 epochs, batch 128, augmentation none, seed 1" in page
    header = json.loads(out.with_suffix(".queries.jsonl").read_text().splitlines()[0])
    assert header["family_null_sha256"] == both.sha256 and header["family_null_paths"] == both.folders
    recheck = ["-q", "recheck", "--kit", str(tiny_kit.path), "--log", str(out.with_suffix(".queries.jsonl"))]
    assert main([*recheck, "--family-null", str(other.path), "--family-null", str(family_null.path)]) == 0
    capsys.readouterr()
    assert main([*recheck, "--family-null", str(family_null.path)]) == 2
    err = capsys.readouterr().err
    assert "give that null" in err and f"{both.folders[0]} + {both.folders[1]}" in err
    # a crafted record's folders do not break the page, and a folder with a space is quoted in the command
    from uapfp.report import verdict_report

    for paths, shown in ((5, str(both.where)), (["/a b/null"], "--family-null '/a b/null'")):
        crafted = {**record, "family_null": {**record["family_null"], "paths": paths, "path": str(both.where)}}
        assert shown in html.unescape(verdict_report(crafted))


def test_by_default_a_null_spans_the_zoos_epochs_half_and_a_quarter(tiny_zoo, tiny_kit, tmp_path, capsys, caplog):
    from uapfp.family_null import SEED_BASE, spanning_epochs, train_honest
    from uapfp.report import epochs_said

    assert [spanning_epochs(e) for e in (8, 5, 4, 3, 2, 1)] == [(8, 4, 2), (5, 2, 1), (4, 2, 1), (3, 1), (2, 1), (1,)]
    assert tiny_zoo.config.epochs == 4
    out = tmp_path / "null"
    argv = ["family-null", "--kit", str(tiny_kit.path), "--zoo", str(tiny_zoo.path), "--arch", ARCH, "--out", str(out),
            "--count", "6"]  # fmt: skip
    with caplog.at_level("WARNING", logger="uapfp.family_null"):
        assert main(argv) == 0
    assert "its 6 models are not as many at each recipe (4 at 4 epochs, 2 at 2 epochs, 0 at 1 epochs" in caplog.text
    assert "a --count that is a multiple of 12 trains as many of each" in caplog.text
    assert "6 honest models of mlp, trained for 4 and 2 epochs" in capsys.readouterr().out
    null = FamilyNull.load(out, tiny_kit)
    assert null.info["recipe"]["epochs"] == [4, 2, 1]
    assert [m["epochs"] for m in null.models] == [4, 4, 4, 4, 2, 2]
    # the fifth model is the first of the second round: trained for 2 epochs, bit for bit as train_honest does
    data = tiny_zoo.load_dataset()
    reference = train_honest(ARCH, KINDS[0], data, tiny_zoo.splits(), seed=SEED_BASE + 4, epochs=2)
    stored = load_tensors(_weights(null, 4))
    assert all(torch.equal(stored[k], v) for k, v in reference.state_dict().items())
    # one number trains every model alike and records the recipe as it always did (so older folders keep
    # their identity); a list, or a number, that is not a positive whole number is refused by the command line
    assert main([*argv, "--epochs", "4,2"]) == 2 and "another recipe" in capsys.readouterr().err
    for bad in ("0", "2,x", "3,-1"):
        with pytest.raises(SystemExit):
            main([*argv, "--epochs", bad])
    assert epochs_said([4, 2, 1]) == "4, 2 and 1 epochs" and epochs_said(1) == "1 epoch"

    # the floor of a verdict against a family null is the victim's own p-value against it; where it is not below
    # alpha, the note says so and points to a larger null
    victim = _unnamed(tiny_zoo.victim)
    itself = verify(tiny_kit, victim, method="errors", family_null=null, sequential=False)
    assert itself.p_floor == pytest.approx(itself.p_value, rel=1e-9)
    low = verify(tiny_kit, _unnamed(tiny_zoo.victim), method="errors", family_null=null, sequential=False,
                 alpha=itself.p_floor / 2)  # fmt: skip
    assert low.verdict == "not shown" and "a family null with more models (uapfp family-null --count)" in low.message
    for crafted in (True, [], [2, "x"], "5", None):
        assert epochs_said(crafted) == "epochs not recorded"
