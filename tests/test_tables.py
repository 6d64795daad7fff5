"""advlib.tables: the one Markdown table formatter, and the tables built on it."""
from __future__ import annotations

import pytest

from advlib import evaluate, tables


def test_markdown_layout_alignment_and_escaping():
    md = tables.markdown(["", "a|b", "n"], [["row 1", "x|y", 3], ["two\nlines"]], align="lcr")
    assert md.split("\n") == ["| | a\\|b | n |",
                              "|---|:---:|---:|",
                              "| row 1 | x\\|y | 3 |",
                              "| two lines | | |"]  # a short row is padded, a line break is a space
    assert not md.endswith("\n")


def test_markdown_refuses_bad_input():
    with pytest.raises(ValueError, match="one letter per column out of l, r, c"):
        tables.markdown(["a"], [], align="x")
    with pytest.raises(ValueError, match="row 0 has 3 cells but the header only 2"):
        tables.markdown(["a", "b"], [[1, 2, 3]])


def test_markdown_table_from_keyed_rows():
    rows = {"PGD": {"Clean": 0.98, "AA": 0.891}, "std": {"Clean": 0.99, "extra": 1}}
    assert tables.columns_of(rows) == ["Clean", "AA", "extra"]
    md = tables.markdown_table(rows, ["Clean", "AA"], tables.percent, stub="run", align="lr")
    assert md == "| run | Clean | AA |\n|---|---:|---|\n| PGD | 98.00 | 89.10 |\n| std | 99.00 | – |"


def test_percent_table_keeps_its_layout():
    rows = {"ε = 0.1": {"random noise": 0.981, "FGSM": 0.354}, "ε = 0.2": {"FGSM": 0.028}}
    assert evaluate.percent_table(rows) == ("| | random noise | FGSM |\n|---|---:|---:|\n"
                                            "| ε = 0.1 | 98.10 | 35.40 |\n| ε = 0.2 | – | 2.80 |\n")
