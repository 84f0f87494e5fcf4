"""The null of the suspect's own family: building it, loading it safely, testing a suspect against it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from uapfp.cli import main
from uapfp.errors import ConfigError, KitIntegrityError
from uapfp.family_null import KINDS, FamilyNull, build_family_null, query_sets
from uapfp.methods import get_method
from uapfp.querylog import recheck_query_log
from uapfp.significance import prediction_greater
from uapfp.storage import load_tensors
from uapfp.suspects.local import TorchSuspect
from uapfp.suspects.spec import card_suspect
from uapfp.verify import verify

ARCH = "mlp"  # a family the tiny zoo never held, fast to train


@pytest.fixture(scope="module")
def family_null(tiny_zoo, tiny_kit, tmp_path_factory):
    out = tmp_path_factory.mktemp("family-null")
    return build_family_null(tiny_kit, tiny_zoo, ARCH, out, count=5, epochs=1)


def _model(null, index, kit):
    from uapfp.archs import create_model

    c, h, w = kit.input_shape
    model = create_model(ARCH, in_channels=c, image_size=(h, w), num_classes=kit.num_classes)
    model.load_state_dict(load_tensors(null.path / "models" / f"{null.info['models'][index]['name']}.safetensors"))
    return model.eval()


def test_a_family_null_holds_each_models_answers_to_every_query_set(family_null, tiny_kit):
    sets = query_sets(tiny_kit)
    assert set(family_null.answers) == set(sets) == {"uap", *tiny_kit.references}
    for key, q in sets.items():
        assert family_null.answers[key].shape == (5, *q.shape[:2], tiny_kit.num_classes)
    assert [m["kind"] for m in family_null.info["models"]] == [*KINDS, KINDS[0]]  # rounds of the four kinds
    assert len({m["seed"] for m in family_null.info["models"]}) == 5
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
    assert again.info["answers_sha256"] == family_null.info["answers_sha256"]
    with pytest.raises(ConfigError, match="another recipe"):
        build_family_null(tiny_kit, tiny_zoo, ARCH, family_null.path, count=5, epochs=2)
    with pytest.raises(ConfigError, match="at least 4"):
        build_family_null(tiny_kit, tiny_zoo, ARCH, family_null.path, count=3, epochs=1)


def test_a_damaged_null_or_one_of_another_kit_is_refused(family_null, tiny_kit, lao_kit, tmp_path):
    import shutil

    with pytest.raises(ConfigError, match="another kit"):
        FamilyNull.load(family_null.path, lao_kit)
    copy = tmp_path / "copy"
    shutil.copytree(family_null.path, copy)
    with open(copy / "answers.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\0\0\0\1")
    with pytest.raises(KitIntegrityError, match="does not match"):
        FamilyNull.load(copy, tiny_kit)
    with pytest.raises(ConfigError, match="not a family null"):
        FamilyNull.load(tmp_path, tiny_kit)


@pytest.mark.parametrize("method", ["uap", "errors"])
def test_verify_tests_the_suspect_against_the_family_null(family_null, tiny_zoo, tiny_kit, method):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    v = verify(tiny_kit, card_suspect(card), method=method, family_null=family_null)
    m = get_method(method)
    # the null is the family's models scored as suspects, and the p-value the model-level test of them
    null = m.similarities(tiny_kit, family_null.answers[m.query_key][:, : v.fingerprints], "probs")
    assert v.null_count == 5 and v.null_models == pytest.approx(null.mean(1).tolist(), abs=1e-6)
    assert v.p_value == pytest.approx(prediction_greater(np.array([v.similarity]), null.mean(1).numpy()), rel=1e-3)
    assert v.family_null["sha256"] == family_null.sha256 and v.calibration == "family-null"
    assert ARCH in v.render()
    # against the kit's calibration models the same answers give another null
    assert verify(tiny_kit, card_suspect(card), method=method).null_count != 5


def test_a_family_null_tests_by_siblings_unless_told_otherwise(family_null, tiny_zoo, tiny_kit):
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    assert tiny_kit.config.method == "uap" and tiny_kit.references["errors"].siblings.shape[0] >= 2
    assert verify(tiny_kit, card_suspect(card), family_null=family_null).method == "siblings"
    assert verify(tiny_kit, card_suspect(card)).method == "uap"  # the kit's own, without a family null


def test_a_query_log_is_rechecked_against_the_null_it_names(family_null, tiny_zoo, tiny_kit, tmp_path):
    card = next(c for c in tiny_zoo.cards if c["role"] == "homologous")
    log = tmp_path / "q.jsonl"
    v = verify(tiny_kit, card_suspect(card), method="errors", family_null=family_null, query_log=log)
    assert json.loads(log.read_text().splitlines()[0])["family_null_sha256"] == family_null.sha256
    again = recheck_query_log(tiny_kit, log, family_null=family_null)
    assert (again.p_value, again.per_fingerprint, again.null_models) == (v.p_value, v.per_fingerprint, v.null_models)
    with pytest.raises(ConfigError, match="give that null"):
        recheck_query_log(tiny_kit, log)
    plain = tmp_path / "plain.jsonl"
    verify(tiny_kit, card_suspect(card), method="errors", query_log=plain)
    with pytest.raises(ConfigError, match="leave out --family-null"):
        recheck_query_log(tiny_kit, plain, family_null=family_null)


def test_the_command_line_builds_a_null_and_verifies_with_it(family_null, tiny_zoo, tiny_kit, tmp_path, capsys):
    # the command resumes the fixture's null: same folder, same recipe, nothing trained
    argv = ["family-null", "--kit", str(tiny_kit.path), "--zoo", str(tiny_zoo.path), "--arch", ARCH,
            "--out", str(family_null.path), "--count", "5", "--epochs", "1"]  # fmt: skip
    assert main(argv) == 0
    assert f"5 honest models of {ARCH}" in capsys.readouterr().out
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    out = tmp_path / "verdict.json"
    argv = ["verify", "--kit", str(tiny_kit.path), "--suspect", str(card["_path"]), "--method", "errors",
            "--family-null", str(family_null.path), "--json", str(out)]  # fmt: skip
    assert main([*argv, "--report", str(tmp_path / "verdict.html")]) == 0
    record = json.loads(out.read_text())
    assert record["family_null"]["arch"] == ARCH and record["null_count"] == 5
    page = (tmp_path / "verdict.html").read_text()
    assert f"5 honest models of {ARCH}" in page and f"--family-null {family_null.path}" in page
    assert "honest models of the suspect's architecture mlp" in capsys.readouterr().out
    assert main(["recheck", "--kit", str(tiny_kit.path), "--log", str(out.with_suffix(".queries.jsonl")),
                 "--family-null", str(family_null.path)]) == 0  # fmt: skip
    # a folder that is no family null is one line of error, before any query
    assert main([*argv[:-4], "--family-null", str(tmp_path)]) == 2
    assert "not a family null" in capsys.readouterr().err
