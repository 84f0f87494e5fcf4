"""Command-line flags generated from config dataclasses, so that each option is defined once.

A field becomes a flag ``--field-name`` (underscores to dashes) unless its metadata says
otherwise; its help text, choices and flag name live in the field's metadata, made with
:func:`option`. A field without a default is a required flag. Every other generated flag
defaults to None, so :func:`from_args` sets only the fields a user gave and the dataclass keeps
its own defaults (which ``--help`` shows). Field types: ``str``, ``int``, ``float``, ``bool``
(a switch), ``tuple[str, ...]`` (comma-separated) and those ``| None``; a nested dataclass
field expands into its own flags, prefixed as its metadata says. No torch here:
``uapfp verify --help`` must start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable, Sequence
from typing import Any

#: The environment variable listing the modules whose code cards and zoos may name (uapfp.archs).
TRUST_ENV = "UAPFP_TRUST_CODE"


def option(
    help: str = "",
    *,
    flag: str | None = None,
    choices: Sequence[str] | None = None,
    prefix: str | None = None,
    only: Sequence[str] | None = None,
    metavar: str | None = None,
) -> dict[str, Any]:
    """Field metadata for a generated flag.

    ``flag`` replaces the default ``--field-name``; ``choices`` restricts the value; for a
    nested dataclass, ``prefix`` is put before its fields' flags and ``only`` lists the nested
    fields that get one (the others get none).
    """
    spec = {"help": help, "flag": flag, "choices": choices, "prefix": prefix, "only": only, "metavar": metavar}
    return {"uapfp_option": spec}


def csv(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _meta(f: dataclasses.Field[Any]) -> dict[str, Any]:
    return f.metadata.get("uapfp_option", {})


def _base_type(hint: Any) -> Any:
    """``X | None`` -> X; other hints unchanged."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(hint) and len(args) == 1 else hint


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _dest(path: str) -> str:
    return "opt__" + path.replace(".", "__")


def _walk(cls: type, *, prefix: str = "", only: Iterable[str] | None = None, path: str = "") -> Iterable[tuple]:
    """(dest path, flag, field, base type, default) of every flag of ``cls``, nested dataclasses expanded."""
    hints = typing.get_type_hints(cls)
    wanted = set(only) if only is not None else None
    for f in dataclasses.fields(cls):
        if wanted is not None and f.name not in wanted:
            continue
        meta = _meta(f)
        hint = _base_type(hints[f.name])
        if dataclasses.is_dataclass(hint):
            own = meta.get("prefix")
            sub_prefix = prefix + (own if own is not None else f"{f.name.replace('_', '-')}-")
            yield from _walk(hint, prefix=sub_prefix, only=meta.get("only"), path=f"{path}{f.name}.")
            continue
        flag = meta.get("flag") or f"--{prefix}{f.name.replace('_', '-')}"
        yield f"{path}{f.name}", flag, f, hint, _default(f)


def add_arguments(parser: argparse.ArgumentParser, cls: type, *, only: Iterable[str] | None = None) -> None:
    """Add the flags of dataclass ``cls`` (of its fields ``only``, if given) to ``parser``."""
    for path, flag, f, hint, default in _walk(cls, only=only):
        meta = _meta(f)
        text = meta.get("help", "")
        kwargs: dict[str, Any] = {"dest": _dest(path), "default": None}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        elif default not in (None, "", False, ()):
            if isinstance(default, tuple):
                shown = ",".join(map(str, default))
            else:
                shown = f"{default:.4g}" if isinstance(default, float) else str(default)
            text = f"{text} (default {shown})" if text else f"default {shown}"
        if hint is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = {int: int, float: float}.get(hint, str)
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
            if not meta.get("choices"):
                kwargs["metavar"] = meta.get("metavar") or flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(flag, help=text, **kwargs)


def _value(args: argparse.Namespace, path: str, hint: Any) -> Any:
    value = getattr(args, _dest(path), None)
    if value is not None and typing.get_origin(hint) is tuple and isinstance(value, str):
        return csv(value)
    return value


def given(cls: type, args: argparse.Namespace, *, path: str = "") -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given, as a dict (nested dataclasses as dicts)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = _base_type(hints[f.name])
        if dataclasses.is_dataclass(hint):
            sub = given(hint, args, path=f"{path}{f.name}.")
            if sub:
                values[f.name] = sub
            continue
        value = _value(args, f"{path}{f.name}", hint)
        if value is not None:
            values[f.name] = value
    return values


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` written over it, nested dicts merged rather than replaced."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def from_args(cls: type, args: argparse.Namespace, *, base: Any = None) -> Any:
    """An instance of ``cls`` (``base`` with changes, if given) holding the flags that were given."""
    return _build(cls, given(cls, args), base)


def _build(cls: type, values: dict[str, Any], base: Any) -> Any:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        hint = _base_type(hints[f.name])
        if dataclasses.is_dataclass(hint):
            current = getattr(base, f.name) if base is not None else _default(f)
            out[f.name] = _build(hint, values[f.name], current)
        else:
            out[f.name] = values[f.name]
    return dataclasses.replace(base, **out) if base is not None else cls(**out)


# --------------------------------------------------------------------------- JSON


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _typed(value: Any, hint: Any) -> Any:
    """``value`` read from JSON, turned back into the type ``hint`` says (tuples, nested configs)."""
    hint = _base_type(hint)
    if value is None:
        return None
    if isinstance(hint, type) and issubclass(hint, JsonConfig):
        return hint.from_dict(value)
    if typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(v, args[0]) for v in value)
        return tuple(_typed(v, a) for v, a in zip(value, args)) if args else tuple(value)
    return value


class JsonConfig:
    """A mixin for frozen config dataclasses: :meth:`to_dict` (JSON-ready) and :meth:`from_dict`.

    ``from_dict`` keeps the defaults of the settings left out and refuses unknown ones.
    ``retired`` maps settings an earlier version wrote (and measured, then dropped) to the
    default they had: a file that used that default still loads, one that did not is refused.
    """

    what: typing.ClassVar[str] = "config"
    retired: typing.ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    @classmethod
    def from_dict(cls, d: Any) -> Any:
        from .errors import ConfigError

        if not isinstance(d, dict):
            raise ConfigError(f"the {cls.what} settings must be a JSON object, not {type(d).__name__}")
        d = dict(d)
        for key, default in cls.retired.items():
            if key in d and _jsonable(d.pop(key)) != _jsonable(default):
                raise ConfigError(
                    f"the {cls.what} settings use {key}, an option uapfp no longer has (measured and not adopted, "
                    "see docs/method.md)"
                )
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown {cls.what} setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}"
            )
        return cls(**{k: _typed(v, hints[k]) for k, v in d.items()})
