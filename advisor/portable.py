"""Fitted residual models as plain numbers, and their prediction in plain Python.

`energytui advise` must answer in well under a second; importing scikit-learn (or even
numpy) takes a good part of that here. Fitting exports each gradient-boosted residual
to a small JSON-able dict of trees; prediction walks them without any import.
"""

from __future__ import annotations

import math


def _export_tree(tree) -> list[list]:
    t = tree.tree_
    return [t.children_left.tolist(), t.children_right.tolist(), t.feature.tolist(), t.threshold.tolist(),
            t.value[:, 0, 0].tolist()]


def export_trees(base: float, weight: float, trees: list) -> dict:
    """Boosted regression trees on a log target: base + weight x the sum of the trees' leaves."""
    return {"kind": "trees", "base": base, "weight": weight, "trees": [_export_tree(tree) for tree in trees]}


def _leaf(tree: list[list], row) -> float:
    left, right, feature, threshold, value = tree
    node = 0
    while left[node] != -1:
        node = left[node] if row[feature[node]] <= threshold[node] else right[node]
    return value[node]


def predict_one(model: dict, row) -> float:
    """The prediction for one row on the original scale (the trees model the log)."""
    return math.exp(model["base"] + model["weight"] * sum(_leaf(tree, row) for tree in model["trees"]))


def predict(model: dict, rows) -> list[float]:
    return [predict_one(model, row) for row in rows]
