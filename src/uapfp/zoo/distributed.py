"""A zoo's models as Ray tasks (``uapfp zoo build --ray [ADDRESS]``).

The victim is trained (or read) first, by the calling process, as in the sequential build.
Every other pending model is one Ray task with one CPU and one torch thread; the dataset,
the splits and the victim's weights travel through Ray's object store, so the workers need
uapfp installed but no copy of the data or of the zoo folder. A task returns the model's
state dict and card; this process writes them (atomically, weights first) as they finish,
so an interrupted build resumes like a sequential one, and the cards and weights are those
the sequential build writes when it runs with one torch thread (``tests/test_zoo.py``).

Ray is an optional dependency: ``pip install 'uapfp[ray]'``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..archs import trusted_modules, trusting
from ..cards import load_model_from_card
from ..data import Dataset
from ..errors import UapfpError
from ..raytasks import LOCAL, run_tasks
from ..training import predict_logits
from .config import Job, ZooConfig

log = logging.getLogger(__name__)

_victims: dict[str, tuple[torch.nn.Module, torch.Tensor]] = {}  # per worker process: weights hash -> (model, labels)


def _victim_in_worker(card: dict[str, Any], weights: bytes, data: Dataset) -> tuple[torch.nn.Module, torch.Tensor]:
    """The victim rebuilt from its card and weights bytes (checked against the card), once per worker."""
    key = card["weights_sha256"]
    if key not in _victims:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / card["weights"]).write_bytes(weights)
            model = load_model_from_card({**card, "_path": str(Path(tmp) / "victim.json")})
        _victims[key] = (model, predict_logits(model, data.x_test).argmax(1))
    return _victims[key]


def _fit_remote(
    config: ZooConfig, data: Dataset, v_idx: np.ndarray, pool_idx: np.ndarray, victim_card: dict[str, Any],
    victim_weights: bytes, common: dict[str, Any], trusted: list[str], job: Job,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # fmt: skip
    """One zoo model, in a Ray worker: its state dict and card."""
    from .build import fit_job

    torch.set_num_threads(1)
    with trusting(trusted):
        victim_model, victim_pred = _victim_in_worker(victim_card, victim_weights, data)
        pool = data.x_train[torch.from_numpy(pool_idx)]
        model, card = fit_job(
            config, job, data, v_idx, pool, victim_model, victim_pred, victim_card["test_accuracy"], common
        )
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}, card


#: Zoo models that share one GPU where the cluster has GPUs (small models leave most of one idle).
MODELS_PER_GPU = 8


def run_on_ray(
    out: Path, config: ZooConfig, jobs: list[Job], data: Dataset, v_idx: np.ndarray, pool_idx: np.ndarray,
    victim_card: dict[str, Any], common: dict[str, Any], *, address: str = LOCAL, bar: Any = None,
) -> None:  # fmt: skip
    """Train ``jobs`` as Ray tasks (:func:`uapfp.raytasks.run_tasks`) and write each model as it finishes.

    A failed task leaves the others running; the failures are raised once every other model is written.
    """
    from .build import write_job

    weights = (Path(victim_card["_path"]).parent / victim_card["weights"]).read_bytes()
    card = {k: v for k, v in victim_card.items() if k != "_path"}
    failures: list[str] = []

    def done(job: Job, result: tuple[dict[str, torch.Tensor], dict[str, Any]]) -> None:
        write_job(out, job, *result)
        if bar is not None:
            bar.set_postfix_str(job.id)
            bar.update(1)

    def failed(job: Job, cause: BaseException) -> None:
        failures.append(f"{job.id}: {type(cause).__name__}: {cause}")
        log.error("%s failed on Ray: %s", job.id, cause)

    # The longest first (JBDA and CloudLeak train substitutes; siblings are the victim's small net), so that
    # no long model starts last while the other workers idle.
    order = sorted(jobs, key=lambda j: (j.attack not in ("jbda", "cloudleak"), j.role == "sibling"))
    run_tasks(
        _fit_remote, {job: (job,) for job in order}, address=address, done=done, failed=failed,
        shared=(config, data, v_idx, pool_idx, card, weights, common, trusted_modules()), per_gpu=MODELS_PER_GPU,
    )  # fmt: skip
    if failures:
        raise UapfpError(
            f"{len(failures)} of {len(jobs)} models failed on Ray (the others are written; rerun to retry them): "
            + "; ".join(failures[:3])
        )
