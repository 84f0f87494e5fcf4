"""Shared fixtures: a tiny zoo and kit on the shipped Fashion-MNIST slice, built once."""

from __future__ import annotations

import pytest
import torch

from uapfp.encoder import EncoderConfig
from uapfp.kit import ProtectConfig, protect
from uapfp.zoo import build_zoo, preset

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

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
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("zoo"), tiny_zoo_config(), progress=False)


@pytest.fixture(scope="session")
def tiny_kit(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("kit")
    protect(tiny_zoo, out, config=TINY_PROTECT, progress=False)
    from uapfp.kit import Kit

    return Kit.load(out)
