"""Markdown tables for every pipeline's report: one writer, one alignment rule."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd


def markdown_table(
    rows: pd.DataFrame | Iterable[Sequence[Any]],
    header: Sequence[str] | None = None,
    align: str | None = None,
) -> str:
    """A Markdown table of ``rows`` under ``header``; cells are written with ``str``.

    Args:
        rows: a DataFrame (its columns are the header unless ``header`` is given;
            the index is left out) or rows of cells, each as long as ``header``.
        header: the column names.
        align: ``l`` (left) or ``r`` (right) per column, e.g. ``"lrr"``; default: the
            first column left (names), the others right (numbers).

    Raises:
        ValueError: no header, a row of another length, or an ``align`` that does not
            give ``l`` or ``r`` for every column.
    """
    if isinstance(rows, pd.DataFrame):
        header = list(rows.columns) if header is None else header
        rows = rows.itertuples(index=False)
    if not header:
        raise ValueError("A Markdown table needs a header.")
    width = len(header)
    align = align if align is not None else "l" + "r" * (width - 1)
    if len(align) != width or set(align) - {"l", "r"}:
        raise ValueError(
            f"align must give l or r for each of the {width} columns, got {align!r}."
        )
    lines = [
        _row(header),
        "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|",
    ]
    for row in rows:
        cells = list(row)
        if len(cells) != width:
            raise ValueError(
                f"Table row {cells!r} has {len(cells)} cells for {width} columns."
            )
        lines.append(_row(cells))
    return "\n".join(lines)


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
