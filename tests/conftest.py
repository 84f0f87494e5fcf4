"""Shared fixtures: a tiny zoo and kit on the shipped Fashion-MNIST slice, built once."""

from __future__ import annotations

import os

import pytest
import torch

from uapfp.config import EncoderConfig, ProtectConfig
from uapfp.kit import Kit
from uapfp.protect import protect
from uapfp.zoo import build_zoo, preset

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
# The tests' figures are CPU figures: a machine with a GPU trains them on the CPU too.
os.environ.setdefault("UAPFP_DEVICE", "cpu")

TINY_ATTACKS = {
    "knockoff": {"budget": 2000},
    "copycat": {"budget": 2000},
    "jbda": {"seed_size": 600, "rounds": 2, "round_epochs": 1},
    "cloudleak": {"natural": 1200, "adversarial": 600, "steps": 3},
}


def tiny_zoo_config(**overrides):
    """Two architectures, one optimizer, four epochs: seconds per model on the slice.

    Six homologous models per architecture: half of them calibrate the model-level null, so
    the test has six honest models to compare a suspect with.
    """
    base = dict(archs=("A", "C"), optimizers=("adam",), piracy_per_cell=3, homologous_per_cell=6,
                epochs=4, attack_options=TINY_ATTACKS)  # fmt: skip
    base.update(overrides)
    return preset("tiny", **base)


TINY_PROTECT = ProtectConfig(
    uap_method="sgd", norm="linf", xi=0.25, uap_images=600, n_probes=30, n_views=8, fingerprints=8,
    calibration_fraction=0.5, encoder=EncoderConfig(steps=400, batch_size=256),
    method="uap",  # the tests of the paper's mechanics count its queries; the default (auto) is tested apart
    sequential=False,  # and send every set; the sequential test is tested apart (test_sequential.py)
    alpha=0.05,  # against the tiny zoo's 6 calibration models a clear copy's p is not below 0.01, the default for real zoos
)  # fmt: skip


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Each test caches downloads and decoded image folders in a folder of its own, never in this machine's
    ``~/.cache/uapfp`` (where a downloaded Fashion-MNIST would be found, and a missing-data test pass)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("zoo"), tiny_zoo_config(), progress=False)


@pytest.fixture(scope="session")
def tiny_kit(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("kit")
    protect(tiny_zoo, out, config=TINY_PROTECT, progress=False)
    return Kit.load(out)


def profile_of(tiny_zoo, tiny_kit):
    """The tiny kit's UAP, probes and the zoo's fingerprints on them, as protect computed them."""
    from uapfp.protect import Profile, zoo_answers, zoo_fingerprints
    from uapfp.uap import UAPResult

    uap = UAPResult(
        tiny_kit.v, "sgd", "linf", 0.25, fooling_rate_train=0.0, fooling_rate_val=None, seconds=0.0, passes=0
    )
    fps = zoo_fingerprints(tiny_zoo, tiny_kit.v, tiny_kit.probe_images)
    queries = {key: (ref.queries, ref.labels) for key, ref in tiny_kit.references.items()}
    answers = {key: zoo_answers(tiny_zoo, q) for key, (q, _) in queries.items()}
    return Profile(
        uap, tiny_kit.probe_images, fps, tiny_kit.input_shape, tuple(tiny_kit.info["classes"]), queries, answers
    )


@pytest.fixture(scope="session")
def lao_kit(tiny_zoo, tiny_kit, tmp_path_factory):
    """The tiny kit with leave-arch-out calibration (few encoder steps: its numbers are not judged)."""
    from dataclasses import replace

    from uapfp.protect import fit_kit

    base = tiny_kit.config
    config = replace(base, calibration="leave-arch-out", encoder=replace(base.encoder, steps=20))
    kit = fit_kit(tiny_zoo, profile_of(tiny_zoo, tiny_kit), config, progress=False)
    return Kit.load(kit.save(tmp_path_factory.mktemp("lao-kit")).path)


@pytest.fixture(scope="session")
def family_null(tiny_zoo, tiny_kit, tmp_path_factory):
    """A null of 5 MLPs (a family the tiny zoo never held, fast to train) for the tiny kit."""
    from uapfp.family_null import build_family_null

    return build_family_null(tiny_kit, tiny_zoo, "mlp", tmp_path_factory.mktemp("family-null"), count=5, epochs=1)
