"""The explainer figures command runs and prints a figure for every method and tree model it measures."""
from __future__ import annotations

import pytest

from benchmarks import explainers


def test_the_figures_cover_every_method_and_tree_model(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("shap")
    pytest.importorskip("lightgbm")
    assert explainers.main(["--rows", "4", "--repeat", "1"]) == 0
    printed = capsys.readouterr().out
    for line in ("shap (+ numba, llvmlite, slicer, tqdm)", "registry.treeshap", "lightgbm pred_contrib"):
        assert line in printed
    figures = [line.split() for line in printed.splitlines() if "ms/row" not in line and (
        "registry.treeshap " in line or "shap.TreeExplainer" in line or "pred_contrib" in line)]
    methods = {(cells[0], " ".join(cells[1:-3])) for cells in figures if len(cells) >= 5}
    assert {("random_forest:v1", "registry.treeshap"), ("random_forest:v1", "shap.TreeExplainer"),
            ("gradient_boosting:v1", "registry.treeshap")} <= methods
    assert all(float(cells[-1]) > 0 and float(cells[-2]) > 0 for cells in figures if len(cells) >= 5)
