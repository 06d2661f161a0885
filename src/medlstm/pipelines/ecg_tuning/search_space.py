"""Search spaces written as the parameter names of conf, so a trial's settings and
the best ones are the keys ``kedro run --params`` and ``conf/<env>`` take.

One dimension is a mapping: ``param`` (the dotted parameter name) and either
``choices`` (a list) or ``low`` / ``high`` (numbers; integers when both are integers)
with optional ``log`` and ``step``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from medlstm.core.params import check_known_keys
from medlstm.core.preflight import lookup

SPEC_KEYS = ("param", "low", "high", "log", "step", "choices")


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched parameter: a categorical choice, or an int or float range."""

    param: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (self.low, self.high)
        )


def parse_space(entries: Any, where: str, tree: dict[str, Any]) -> list[Dimension]:
    """Validated dimensions of a search space; each ``param`` must name a value
    (not a block) of ``tree``, the parameters the tuned training reads.

    Raises:
        ValueError: naming ``where[i]`` and what is wrong.
    """
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"Parameter '{where}' must be a non-empty list of dimensions "
            "({param: NAME, low: .., high: ..} or {param: NAME, choices: [..]})."
        )
    dims, seen = [], set()
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        check_known_keys(entry, SPEC_KEYS, at)
        param = entry.get("param")
        found, value = lookup(tree, param) if isinstance(param, str) else (False, None)
        if not found or isinstance(value, dict):
            raise ValueError(
                f"'{at}.param' is {param!r}, which is not a parameter this training "
                f"reads; tunable: {', '.join(_leaves(tree))}."
            )
        if param in seen:
            raise ValueError(f"'{at}.param' {param!r} is searched twice.")
        seen.add(param)
        dims.append(_dimension(entry, at))
    return dims


def _dimension(entry: dict[str, Any], at: str) -> Dimension:
    if "choices" in entry:
        choices = entry["choices"]
        if set(entry) - {"param", "choices"}:
            raise ValueError(f"'{at}' takes choices or low/high, not both.")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"'{at}.choices' must be a non-empty list.")
        if any(isinstance(c, dict | list) for c in choices):
            raise ValueError(f"'{at}.choices' must hold numbers, text or null.")
        return Dimension(entry["param"], choices=tuple(choices))
    low, high = entry.get("low"), entry.get("high")
    numbers = all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)
    )
    if not numbers or not low < high:
        raise ValueError(
            f"'{at}' needs numbers low < high (or choices), got low={low!r}, "
            f"high={high!r}."
        )
    log = entry.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise ValueError(f"'{at}.log' must be true or false, and needs low > 0.")
    step = entry.get("step")
    if step is not None and (log or not isinstance(step, int | float) or step <= 0):
        raise ValueError(f"'{at}.step' must be a positive number, without log.")
    return Dimension(entry["param"], low, high, log, step)


def _leaves(tree: Any, prefix: str = "") -> list[str]:
    if not isinstance(tree, dict):
        return [prefix]
    return [
        p for k, v in tree.items() for p in _leaves(v, f"{prefix}.{k}" if prefix else k)
    ]


def suggest(trial: Any, dims: list[Dimension]) -> dict[str, Any]:
    """One value per dimension from an Optuna trial, keyed by parameter name."""
    values = {}
    for d in dims:
        if d.choices is not None:
            values[d.param] = trial.suggest_categorical(d.param, list(d.choices))
        elif d.is_int:
            values[d.param] = trial.suggest_int(
                d.param, d.low, d.high, step=int(d.step or 1), log=d.log
            )
        else:
            values[d.param] = trial.suggest_float(
                d.param, float(d.low), float(d.high), step=d.step, log=d.log
            )
    return values


def with_values(tree: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``tree`` with each dotted parameter of ``values`` set."""
    out = copy.deepcopy(tree)
    for param, value in values.items():
        *parents, leaf = param.split(".")
        node = out
        for key in parents:
            node = node[key]
        node[leaf] = value
    return out
