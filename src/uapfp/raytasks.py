"""Running functions as Ray tasks, for the zoo build and the suspect scan (``--ray [ADDRESS]``).

Ray is an optional dependency (``pip install 'uapfp[ray]'``), imported only here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

from .errors import ConfigError

log = logging.getLogger(__name__)

LOCAL = "local"  # the address that starts a Ray instance on this machine


def ray_module() -> Any:
    """Ray, or a ConfigError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'uapfp[ray]'") from None
    return ray


def run_tasks(
    fn: Callable[..., Any],
    calls: dict[Hashable, tuple[Any, ...]],
    *,
    address: str,
    done: Callable[[Hashable, Any], None],
    failed: Callable[[Hashable, BaseException], None],
    shared: tuple[Any, ...] = (),
    per_gpu: int = 0,
) -> None:
    """Run ``fn(*shared, *args)`` as one Ray task (one CPU) per ``key: args`` of ``calls``.

    ``per_gpu`` > 0: where the cluster has GPUs, each task also takes ``1 / per_gpu`` of one, so
    that that many tasks share a GPU (Ray hides the GPUs from a task that asks for none).

    ``shared`` values go once into Ray's object store and are handed to every task.
    ``done(key, result)`` is called here as each task finishes, ``failed(key, cause)`` when one
    raised (the others go on). ``address``: :data:`LOCAL` starts a Ray instance on this machine
    (as many workers as it has CPUs) unless one already runs in this process; anything else is
    passed to ``ray.init``. An instance started here is shut down at the end.
    """
    if not calls:
        return
    ray = ray_module()
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == LOCAL else address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0) if per_gpu > 0 else 0
        task = ray.remote(num_cpus=1, num_gpus=1 / per_gpu if gpus else 0, max_retries=0)(fn)
        refs = [ray.put(x) for x in shared]
        running = {task.remote(*refs, *args): key for key, args in calls.items()}
        log.info("%d tasks submitted to Ray (%s CPUs)", len(running), ray.cluster_resources().get("CPU"))
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            key = running.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # a RayTaskError wraps what the task raised
                failed(key, getattr(exc, "cause", None) or exc)
                continue
            done(key, result)
    finally:
        if started:
            ray.shutdown()
