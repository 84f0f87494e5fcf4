"""Architecture registry: the paper's five Fashion-MNIST CNNs, classic families, users' factories.

Every architecture maps float images in [0, 1] of shape (N, C, H, W) to logits (N, K) and is
built for any input shape and class count: ``create_model(name, in_channels=, image_size=,
num_classes=)``. The families live in their own modules and are registered here, explicitly:

- :mod:`uapfp.archs.paper`: A-E, the paper's table 1;
- :mod:`uapfp.archs.classic`: ``mlp``, ``lenet5``, ``widebn`` and more, families thieves reuse
  that no default zoo holds;
- :mod:`uapfp.archs.cifar`: ``resnet18``, ``resnet34``, ``vgg16``, ``googlenet`` and
  ``densenet121`` in their CIFAR forms, each with a width multiplier: ``resnet18-w0.25`` is
  ResNet18 with a quarter of its channels.

A user's own architecture is a ``package.module:factory`` string. Importing it runs its code,
so a name read from a file (a model card, a zoo handed over by someone else) is imported only
when the user allowed its module on this run: :func:`trusting` (``--trust-code MODULE`` on the
command line, or ``$UAPFP_TRUST_CODE``); a factory the user names directly (``--victim``, a
``module:factory`` suspect spec) is allowed for the call that uses it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from ..options import TRUST_ENV
from . import cifar, classic, paper

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ArchInfo:
    """A registered architecture: its name, factory and one-line description."""

    name: str
    factory: ModelFactory
    description: str


_REGISTRY: dict[str, ArchInfo] = {}


def register_arch(name: str, description: str = "") -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``factory(*, in_channels, image_size, num_classes)`` as ``name``."""

    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        if ":" in name:
            raise ValueError(f"architecture names hold no ':' (that marks a user factory): {name!r}")
        _REGISTRY[name] = ArchInfo(name, factory, description or (factory.__doc__ or "").strip())
        return factory

    return wrap


for _family in (paper, classic, cifar):
    for _name, (_factory, _description) in _family.ARCHS.items():
        register_arch(_name, _description)(_factory)


def list_archs() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_REGISTRY)


_WIDTH = re.compile(r"^(?P<base>.+)-w(?P<width>\d+(\.\d+)?)$")


def arch_info(name: str) -> ArchInfo:
    """The registry entry of ``name``; ``NAME-wW`` is NAME with its channels scaled by W, for the
    architectures whose factory takes ``width`` (:mod:`uapfp.archs.cifar`)."""
    m = _WIDTH.match(name)
    base = _REGISTRY.get(m["base"]) if m else None
    if m and base and "width" in inspect.signature(base.factory).parameters:
        width = float(m["width"])
        if not 0 < width <= 8:
            raise ConfigError(f"{name!r}: the width multiplier must be in (0, 8]")
        return ArchInfo(name, partial(base.factory, width=width), f"{base.description} (width x{width:g})")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown architecture {name!r}; choose one of {', '.join(list_archs())} "
            "or give your own as package.module:factory"
        ) from None


_TRUSTED: list[str] = []  # modules allowed on this run (a stack of trusting() scopes)


@contextmanager
def trusting(modules: Iterable[str]) -> Iterator[None]:
    """Allow ``package.module:factory`` architectures from these modules (and their submodules) inside the block."""
    added = [m.strip() for m in modules if m and m.strip()]
    _TRUSTED.extend(added)
    try:
        yield
    finally:
        del _TRUSTED[len(_TRUSTED) - len(added) :]


def trusted_modules() -> list[str]:
    """The modules trusted on this run (``trusting`` scopes and the environment), e.g. to hand to a worker."""
    return [*_TRUSTED, *(t.strip() for t in os.environ.get(TRUST_ENV, "").split(",") if t.strip())]


def module_of(path: str) -> str:
    """The module of ``package.module:factory``."""
    return path.partition(":")[0]


def is_trusted(module: str) -> bool:
    """Whether code of ``module`` may be imported on this run."""
    allowed = [*_TRUSTED, *os.environ.get(TRUST_ENV, "").split(",")]
    return any(t.strip() and (module == t.strip() or module.startswith(t.strip() + ".")) for t in allowed)


def load_factory(path: str) -> ModelFactory:
    """Import ``package.module:factory`` (the user's own architecture), if its module is trusted."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{path!r} is not of the form package.module:factory")
    if not is_trusted(module_name):
        raise ConfigError(
            f"architecture {path!r} is code (module {module_name!r}), which uapfp imports only when you allow it: "
            f"add --trust-code {module_name} (or set {TRUST_ENV}={module_name}) if you trust whoever made this "
            "card or zoo"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r} ({exc}); make it importable (pip install it or add it to PYTHONPATH)"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"{module_name!r} has no callable {attr!r}")
    return factory


def _call_factory(factory: ModelFactory, **kwargs: object) -> nn.Module:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = kwargs
    else:
        accepted = {k: v for k, v in kwargs.items() if k in params}
    model = factory(**accepted)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def create_model(
    name: str,
    *,
    in_channels: int = 1,
    image_size: tuple[int, int] = (28, 28),
    num_classes: int = 10,
) -> nn.Module:
    """Build a registered architecture, or a user factory given as ``package.module:factory``.

    A user factory receives whichever of ``in_channels``, ``image_size`` and
    ``num_classes`` its signature accepts. A registered architecture comes with its convolution
    weights in channels-last memory format, as the training loop uses them: a model read back
    from its weights then predicts about twice as fast on a CPU as in the default format (1.4 to
    2.6 times for the paper's CNNs and the CIFAR forms, ``scripts/inference-batch.py --formats``;
    docs/zoo.md). A user's model is left as its factory made it (its code may ``view`` a tensor
    that channels-last would make non-contiguous).
    """
    user = ":" in name
    factory = load_factory(name) if user else arch_info(name).factory
    model = _call_factory(factory, in_channels=in_channels, image_size=tuple(image_size), num_classes=num_classes)
    return model if user else model.to(memory_format=torch.channels_last)
