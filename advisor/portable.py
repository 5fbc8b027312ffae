"""Fitted scikit-learn models as plain numbers, and their prediction in numpy alone.

`energytui advise` must answer in about a second; importing scikit-learn takes longer
than that here. Fitting exports each model to a small JSON-able dict; prediction reads
it back with numpy only.
"""

from __future__ import annotations


def export_linear(pipeline) -> dict:
    """A StandardScaler + Ridge pipeline on a log target."""
    scaler, ridge = pipeline[0], pipeline[-1]
    return {"kind": "linear", "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
            "coef": ridge.coef_.tolist(), "intercept": float(ridge.intercept_)}


def _export_tree(tree) -> list[list]:
    t = tree.tree_
    return [t.children_left.tolist(), t.children_right.tolist(), t.feature.tolist(), t.threshold.tolist(),
            t.value[:, 0, 0].tolist()]


def export_boosting(model) -> dict:
    """GradientBoostingRegressor (squared error): init + learning_rate x sum of trees."""
    return {"kind": "trees", "base": float(model.init_.constant_[0][0]), "weight": float(model.learning_rate),
            "trees": [_export_tree(stage[0]) for stage in model.estimators_]}


def export_forest(model) -> dict:
    """RandomForestRegressor: the mean of its trees."""
    return {"kind": "trees", "base": 0.0, "weight": 1.0 / len(model.estimators_),
            "trees": [_export_tree(tree) for tree in model.estimators_]}


def _tree_predict(tree: list[list], x) -> list[float]:
    left, right, feature, threshold, value = tree
    out = [0.0] * len(x)
    for row, sample in enumerate(x):
        node = 0
        while left[node] != -1:
            node = left[node] if sample[feature[node]] <= threshold[node] else right[node]
        out[row] = value[node]
    return out


def predict(model: dict, x):
    """Predictions on the original scale (the models are fitted on log targets), as a numpy array."""
    import numpy as np  # only where a residual or tree model is used: a purely physical advise never imports it

    x = np.asarray(x, dtype=float)
    if model["kind"] == "linear":
        z = (x - np.asarray(model["mean"])) / np.asarray(model["scale"])
        log_y = z @ np.asarray(model["coef"]) + model["intercept"]
    else:
        log_y = model["base"] + model["weight"] * sum(np.asarray(_tree_predict(tree, x)) for tree in model["trees"])
    return np.exp(log_y)
