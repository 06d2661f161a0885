"""The one Markdown table writer."""

from __future__ import annotations

import pandas as pd
import pytest

from medlstm.core.reporting import markdown_table


def test_rows_under_a_header_names_left_numbers_right():
    table = markdown_table([["N", 0.5, 3], ["S", "n/a", 12]], ["class", "F1", "n"])
    assert table.splitlines() == [
        "| class | F1 | n |",
        "|---|---:|---:|",
        "| N | 0.5 | 3 |",
        "| S | n/a | 12 |",
    ]


def test_a_data_frame_gives_its_columns_and_leaves_its_index_out():
    frame = pd.DataFrame({"bin": ["< 0.9", ">= 0.9"], "accuracy": [0.75, 1.0]})
    frame.index = [7, 8]
    assert markdown_table(frame, align="rl").splitlines() == [
        "| bin | accuracy |",
        "|---:|---|",
        "| < 0.9 | 0.75 |",
        "| >= 0.9 | 1.0 |",
    ]


@pytest.mark.parametrize(
    ("rows", "header", "align", "message"),
    [
        ([["a", 1]], ["x", "y", "z"], None, "has 2 cells for 3 columns"),
        ([], [], None, "needs a header"),
        ([["a", 1]], ["x", "y"], "lc", "l or r for each of the 2 columns"),
    ],
)
def test_malformed_tables_are_refused(rows, header, align, message):
    with pytest.raises(ValueError, match=message):
        markdown_table(rows, header, align)
