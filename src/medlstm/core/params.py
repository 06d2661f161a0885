"""Parameter blocks hold only the keys their reader takes.

A misspelt knob would otherwise be read by nobody and its default used without a
word; every reader of a block checks it here, so every such error reads alike and
names each offending key by its full parameter path. Dotted parameter paths
(``a.b.c``, as ``kedro run --params`` takes them) become nested blocks through one
function, `nest_dotted`. A reader takes its block through `parsed`, as a mapping or
as the dataclass preflight already built from it.
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def check_known_keys(
    block: Any,
    known: Iterable[str],
    where: str,
    hints: Mapping[str, str] | None = None,
) -> None:
    """Refuse a block that is not a mapping or holds a key its reader does not take.

    Args:
        block: The parameters block as read from YAML.
        known: The keys its reader takes.
        where: The block's dotted parameter path, e.g. ``ecg_autoencoder.detection``.
        hints: For a key that used to belong here, a note on where it went, added to
            the error when that key appears.

    Raises:
        ValueError: ``Parameter '<where>' must be a mapping ...`` for a list or
            scalar, or ``Unknown parameter(s) <where>.a, <where>.b; known: x, y.``
            naming every unknown key, sorted.
    """
    if isinstance(known, str):
        raise TypeError(
            f"known must be a collection of keys, not the string {known!r}."
        )
    if not isinstance(block, Mapping):
        raise ValueError(
            f"Parameter '{where}' must be a mapping of names to values, got "
            f"{type(block).__name__} {reprlib.repr(block)}."
        )
    names = set(known)
    # str(): YAML also makes numbers and booleans keys, which do not sort with str.
    unknown = sorted(str(key) for key in block if key not in names)
    if not unknown:
        return
    notes = "".join(f" ({hints[key]})" for key in unknown if key in (hints or {}))
    raise ValueError(
        f"Unknown parameter(s) {', '.join(f'{where}.{key}' for key in unknown)}"
        f"{notes}; known: {', '.join(sorted(names))}."
    )


def check_complete_block(
    block: Mapping[str, Any], keys: Iterable[str], where: str
) -> None:
    """Refuse a block that lacks a key its reader takes: a reader whose every setting
    comes from conf/base keeps no default of its own that could drift from it.

    Raises:
        ValueError: ``Parameter block '<where>' lacks ['a', 'b']; every key of it is in
            conf/base/parameters_<pipeline>.yml.``
    """
    missing = [key for key in keys if key not in block]
    if missing:
        raise ValueError(
            f"Parameter block '{where}' lacks {missing}; every key of it is in "
            f"conf/base/parameters_{where.split('.', maxsplit=1)[0]}.yml."
        )


def parsed(cls: type[T], block: Any, where: str | None = None) -> T:
    """``block`` as its reader's dataclass ``cls``: the block itself when it already is
    one (preflight builds each typed block once, before any node runs, and hands it to
    the nodes that take it), else ``cls.from_dict(block)``, which refuses a bad value
    naming its key. Nodes called directly (tests, scripts, benchmarks) pass mappings.

    Args:
        cls: A dataclass with a ``from_dict`` classmethod.
        block: The parameters block as read from YAML, or an instance of ``cls``.
        where: The block's dotted parameter path, for a ``from_dict`` that takes one
            (a class read at several paths, such as `TrainingParams`); a class read
            at one path names it itself and ignores this.
    """
    if isinstance(block, cls):
        return block
    if where is not None and "where" in inspect.signature(cls.from_dict).parameters:
        return cls.from_dict(block, where=where)
    return cls.from_dict(block)


def nest_dotted(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": 2}`` -> ``{"a": {"b": 1}, "c": 2}``, keys sorted: the shape of a
    parameters file, and of the ``runtime_params`` a KedroSession merges (only the CLI
    splits dotted keys; passed flat, they would be ignored and the defaults used)."""
    out: dict[str, Any] = {}
    for path, value in sorted(values.items()):
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def project_config(root: Any, env: str = "base") -> tuple[dict, dict]:
    """``(parameters, catalog)`` of the project at ``root`` with ``env`` merged over
    base, as ``kedro run --env`` reads them (``base``: no environment); for scripts
    that read the project's settings outside a Kedro session."""
    import warnings
    from pathlib import Path

    from kedro.config import OmegaConfigLoader

    from medlstm.settings import CONFIG_LOADER_ARGS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = OmegaConfigLoader(
            conf_source=str(Path(root) / "conf"),
            env=None if env == "base" else env,
            **CONFIG_LOADER_ARGS,
        )
        return loader["parameters"], loader["catalog"]
