"""Fingerprint methods as a registry: the paper's and the peers', each scored by the same test.

============  ==================================================================
``uap``       the paper's: UAP fingerprints embedded by the contrastive encoder
``uap-raw``   the same fingerprints without the encoder
``errors``    the victim's held-out mistakes, repeated or not (after AKH)
``sac``       sample-correlation matrices on those mistakes (SAC-w)
``ipguard``   labels on points just inside the victim's boundary (IPGuard)
``siblings``  the victim's deviations from its seed siblings, found in the suspect
============  ==================================================================

``A+B`` names a combination (:class:`~uapfp.methods.combined.CombinedMethod`).
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Method, Reference, ReferenceMethod, truncate
from .combined import CombinedMethod, standardise
from .lineage import (
    ErrorsMethod,
    IPGuardMethod,
    SacMethod,
    SiblingsMethod,
    boundary_queries,
    error_queries,
    repeated_mistakes,
)
from .uap import UapMethod, UapRawMethod, probe_sets

#: The methods by name.
METHODS: dict[str, Method] = {
    m.name: m for m in (UapMethod(), UapRawMethod(), ErrorsMethod(), SacMethod(), IPGuardMethod(), SiblingsMethod())
}
#: The query sets a kit keeps references of for the methods (``errors`` serves errors, sac and siblings); the
#: kit also keeps the class-order check's (:data:`uapfp.classorder.CLASSES_KEY`).
QUERY_KEYS = ("errors", "ipguard")


def get_method(name: str | Method) -> Method:
    """The method named ``name``: a registered one, or ``A+B`` for a combination of registered ones."""
    if isinstance(name, Method):
        return name
    parts = name.split("+")
    unknown = [p for p in parts if p not in METHODS]
    if unknown or not name:
        raise ConfigError(f"unknown method {name!r}; use one of {', '.join(METHODS)}, or A+B to combine them")
    if len(parts) == 1:
        return METHODS[name]
    if len(set(parts)) != len(parts):
        raise ConfigError(f"method {name!r} names a method twice")
    return CombinedMethod(tuple(METHODS[p] for p in parts))


__all__ = [
    "METHODS", "QUERY_KEYS", "CombinedMethod", "ErrorsMethod", "IPGuardMethod", "Method", "Reference",
    "ReferenceMethod", "SacMethod", "SiblingsMethod", "UapMethod", "UapRawMethod", "boundary_queries", "error_queries",
    "get_method", "probe_sets", "repeated_mistakes", "standardise", "truncate",
]  # fmt: skip
