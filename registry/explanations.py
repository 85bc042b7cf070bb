"""Exact per-field explanations of a model version's answers, built from its artifact and card alone.

An :class:`Explanation` holds the model's output on its link scale, a base
value, and one contribution per input field of the request (the 30 schema
fields; the encoded columns a field becomes are summed back to it), with
``base_value + sum(contributions) == output`` to rounding:

- linear models (``LogisticRegression``): output = log-odds; a column's
  contribution is ``coefficient × (encoded value − background mean)``, the
  background being the training mean recorded in the artifact (the
  scaler's ``mean_``) and the card (category shares, numeric means);
- tree ensembles: exact path-dependent TreeSHAP over the training covers
  stored in the trees (:mod:`registry.treeshap`); the histogram gradient
  boosting on log-odds, the random forest on the probability scale (its
  output *is* an average of per-tree probabilities: it has no log-odds to
  add up, and TreeSHAP is exact only on the scale the trees add on);
  LightGBM through its own TreeSHAP (``pred_contrib``), on log-odds;
- a constant model (the baseline): its output is its base value, every
  contribution is zero.

Nothing is drawn at random and no row of the extracts is needed, so a trace
explained twice, on two machines, gives the same numbers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attrition.card import ModelCard
from attrition.schema import FEATURE_NAMES
from attrition.synthetic import synthetic_employees

LOGIT = "logit"
"""The output is log-odds: the probability is ``1 / (1 + exp(-output))``."""
IDENTITY = "identity"
"""The output is the probability itself."""
ADDITIVITY_TOLERANCE = 1e-6
"""How far ``base + sum(contributions)`` may be from the model's own output on the self-check rows."""
SELF_CHECK_ROWS = 16


class ExplanationUnsupported(ValueError):
    """The model's pipeline or estimator is not one this module explains exactly."""


@dataclass(frozen=True)
class FieldContribution:
    """One input field: its value in the request and how much it moved the output from the base value."""

    field: str
    value: Any
    contribution: float


@dataclass(frozen=True)
class Explanation:
    """Why one answer: ``base_value + sum(c.contribution) == output`` on the ``link`` scale."""

    link: str
    base_value: float
    output: float
    contributions: tuple[FieldContribution, ...]  # the largest |contribution| first

    @property
    def probability(self) -> float:
        """The probability of leaving that ``output`` stands for."""
        return float(1.0 / (1.0 + np.exp(-self.output))) if self.link == LOGIT else self.output


def field_weights(transformer: Any) -> np.ndarray:
    """(encoded columns × 30 fields): how each column of a fitted ``ColumnTransformer`` is summed back to fields.

    A one-hot block gives each category's column to its field; a block over
    one field gives all its columns to it; a block whose columns are as many
    as its fields maps them one to one; a column derived from several fields
    is shared equally among them.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    width = max(block.stop for block in transformer.output_indices_.values())
    weights = np.zeros((width, len(FEATURE_NAMES)))
    position = {name: index for index, name in enumerate(FEATURE_NAMES)}
    for name, step, columns in transformer.transformers_:
        block = transformer.output_indices_[name]
        if step == "drop" or block.start == block.stop:
            continue
        # A remainder names its columns by position in the input frame, which holds the fields in schema order.
        fields = [position[FEATURE_NAMES[column] if isinstance(column, (int, np.integer)) else column]
                  for column in ([columns] if isinstance(columns, str) else list(columns))]
        last = step.steps[-1][1] if isinstance(step, Pipeline) else step
        if isinstance(last, OneHotEncoder):
            counts = getattr(last, "_n_features_outs", None) or [len(c) for c in last.categories_]
            start = block.start
            for field, count in zip(fields, counts):
                weights[start:start + count, field] = 1.0
                start += count
        elif len(fields) == 1 or block.stop - block.start == len(fields):
            for offset in range(block.stop - block.start):
                weights[block.start + offset, fields[0 if len(fields) == 1 else offset]] = 1.0
        else:
            weights[block, fields] = 1.0 / len(fields)
    return weights


class ModelExplainer:
    """Explains the rows one model version scores: encode, attribute per column, sum per field."""

    def __init__(self, link: str, base_value: float, encode: Callable[[Sequence[dict[str, Any]]], np.ndarray],
                 attribute: Callable[[np.ndarray], np.ndarray], output: Callable[[np.ndarray], np.ndarray],
                 weights: np.ndarray | None, cheap: bool = False) -> None:
        """``cheap``: a row costs microseconds (no trees), so a few rows need no thread of their own."""
        self.link = link
        self.base_value = float(base_value)
        self.cheap = cheap
        self._encode = encode
        self._attribute = attribute
        self._output = output
        self._weights = weights
        if weights is not None:
            # Every (column, field) pair, grouped by field in column order: one gather and one reduceat per call,
            # each row summed in the same order alone or in any batch.
            columns, fields = np.nonzero(weights.T)[::-1]
            order = np.lexsort((columns, fields))
            self._pairs = (columns[order], weights[columns[order], fields[order]])
            self._fields, self._starts = np.unique(fields[order], return_index=True)

    def field_contributions(self, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """``(contributions, outputs)``: (rows × 30 fields) in schema order, and (rows,) on the link scale."""
        matrix = self._encode(rows)
        outputs = np.asarray(self._output(matrix), dtype=np.float64).reshape(len(rows))
        if self._weights is None:
            return np.zeros((len(rows), len(FEATURE_NAMES))), outputs
        columns, weights = self._pairs
        fields = np.zeros((len(rows), len(FEATURE_NAMES)))
        fields[:, self._fields] = np.add.reduceat(self._attribute(matrix)[:, columns] * weights, self._starts, axis=1)
        return fields, outputs

    def ranked(self, rows: Sequence[dict[str, Any]]) -> list[tuple[float, list[tuple[str, Any, float]]]]:
        """Per row, ``(output, [(field, value, contribution), ...])``, the largest |contribution| first.

        Plain tuples: what an answer of many rows is built from at the least cost.
        """
        contributions, outputs = self.field_contributions(rows)
        ranked = []
        for row, values, output in zip(rows, contributions.tolist(), outputs.tolist()):
            # Stable: equal contributions (zeros) keep the schema's order, so the order is reproducible.
            order = sorted(range(len(FEATURE_NAMES)), key=lambda index: -abs(values[index]))
            ranked.append((output, [(FEATURE_NAMES[i], row[FEATURE_NAMES[i]], values[i]) for i in order]))
        return ranked

    def explain(self, rows: Sequence[dict[str, Any]]) -> list[Explanation]:
        """One :class:`Explanation` per row, contributions sorted by |contribution|, largest first."""
        return [Explanation(self.link, self.base_value, output, tuple(FieldContribution(*c) for c in contributions))
                for output, contributions in self.ranked(rows)]

    def check(self, rows: Sequence[dict[str, Any]]) -> None:
        """Raise :class:`ExplanationUnsupported` unless base + contributions gives the model's output on ``rows``."""
        contributions, outputs = self.field_contributions(rows)
        gap = np.max(np.abs(self.base_value + contributions.sum(axis=1) - outputs))
        if not gap <= ADDITIVITY_TOLERANCE:
            raise ExplanationUnsupported(f"contributions do not add up to the model's output (gap {gap:.3g})")


def _numeric_background(step: Any, fields: list[str], card: ModelCard | None) -> np.ndarray:
    """The training mean of a numeric block's encoded columns (scaled with the artifact's own scaler)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    last = step.steps[-1][1] if isinstance(step, Pipeline) else step
    if isinstance(last, StandardScaler):
        # mean_ is the exact training mean of what the scaler receives (after a log1p, say): scaled, it is 0
        # (the card's means are rounded, and are of the raw values).
        return np.zeros(len(fields)) if last.with_mean else np.asarray(last.mean_) / last.scale_
    references = card.reference_distributions if card is not None else {}
    if all(references.get(field, {}).get("mean") is not None for field in fields):
        raw = np.array([float(references[field]["mean"]) for field in fields])
        if step == "passthrough" or getattr(step, "func", "identity") is None:
            return raw
    raise ExplanationUnsupported("no training mean for a numeric block of this kind")


def level_shares(card: ModelCard | None, field: str) -> dict[str, float] | None:
    """The training share of each level of a numeric field one-hot encoded by level (``explanation_reference``).

    A numeric field's reference histogram may join levels in one bin: the
    cards of models that encode levels record each level's share beside the
    training contributions, for the linear background.
    """
    reference = ((card.model_extra or {}).get("explanation_reference") or {}) if card is not None else {}
    shares = (reference.get("level_shares") or {}).get(field)
    return dict(shares) if shares else None


def linear_background(transformer: Any, card: ModelCard | None) -> np.ndarray:
    """The mean encoded row over training: category shares from the card, numeric means from the artifact or card."""
    from sklearn.preprocessing import OneHotEncoder

    width = max(block.stop for block in transformer.output_indices_.values())
    mean = np.zeros(width)
    references = card.reference_distributions if card is not None else {}
    for name, step, columns in transformer.transformers_:
        block = transformer.output_indices_[name]
        if step == "drop" or block.start == block.stop:
            continue
        fields = [columns] if isinstance(columns, str) else list(columns)
        if isinstance(step, OneHotEncoder):
            if getattr(step, "drop_idx_", None) is not None or getattr(step, "_infrequent_enabled", False):
                raise ExplanationUnsupported("a one-hot encoder that drops or groups categories")
            position = block.start
            for field, categories in zip(fields, step.categories_):
                shares = references.get(field, {}).get("shares") or level_shares(card, field)
                if shares is None:
                    raise ExplanationUnsupported(f"the card has no category shares for {field}")
                for category in categories:
                    mean[position] = float(shares.get(str(category), 0.0))
                    position += 1
        elif block.stop - block.start == len(fields):
            mean[block] = _numeric_background(step, fields, card)
        else:
            raise ExplanationUnsupported(f"a block of {len(fields)} fields into {block.stop - block.start} columns")
    return mean


def _encoder_of(pipeline: Any) -> Callable[[Sequence[dict[str, Any]]], np.ndarray]:
    """The classifier's input for rows: the runners' array encoder when it gives the pipeline's own matrix.

    The pipeline's ``ColumnTransformer`` costs milliseconds of bookkeeping per call; the
    encoder is used only once it reproduced the transformed matrix exactly on synthetic rows.
    """
    import sklearn

    from registry.encoding import row_encoder
    from registry.runner import employee_frame

    preprocess = pipeline[:-1]

    def transform(rows: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.asarray(preprocess.transform(employee_frame(rows)), dtype=np.float64)

    encoder = row_encoder(pipeline)
    if encoder is not None:
        rows = synthetic_employees(SELF_CHECK_ROWS * 8, seed=3)
        with sklearn.config_context(assume_finite=True):
            if np.array_equal(encoder.encode(rows), transform(rows)):
                return encoder.encode
    return transform


def build_explainer(pipeline: Any, card: ModelCard | None) -> ModelExplainer:
    """The explainer of one model version: its fitted ``Pipeline`` (preprocessing, then the classifier) and card.

    Raises :class:`ExplanationUnsupported` for a layout or estimator it cannot
    explain exactly, or when the contributions do not add up to the model's
    output on synthetic rows (checked before first use).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from registry import treeshap

    if not isinstance(pipeline, Pipeline) or not isinstance(pipeline.steps[0][1], ColumnTransformer) \
            or len(pipeline.steps) != 2:
        raise ExplanationUnsupported("not a two-step pipeline of a ColumnTransformer and a classifier")
    transformer, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    if [int(c) for c in getattr(classifier, "classes_", [])] != [0, 1]:
        raise ExplanationUnsupported("not a binary classifier of classes 0 and 1")
    encode, weights = _encoder_of(pipeline), field_weights(transformer)
    columns = weights.shape[0]
    if isinstance(classifier, DummyClassifier):
        prior = float(classifier.predict_proba(np.zeros((1, columns)))[0, 1])
        explainer = ModelExplainer(IDENTITY, prior, encode, lambda matrix: np.zeros((len(matrix), columns)),
                                   lambda matrix: classifier.predict_proba(matrix)[:, 1], None, cheap=True)
    elif isinstance(classifier, LogisticRegression):
        coefficients, background = classifier.coef_[0], linear_background(transformer, card)
        intercept = float(classifier.intercept_[0])
        base = intercept + float(coefficients @ background)
        # decision_function's own formula, without its input checks (a tenth of a millisecond a call); the
        # self-check below holds it to the model's answers.
        explainer = ModelExplainer(LOGIT, base, encode, lambda matrix: (matrix - background) * coefficients,
                                   lambda matrix: matrix @ coefficients + intercept, weights, cheap=True)
    elif isinstance(classifier, RandomForestClassifier):
        paths = treeshap.forest_paths(classifier.estimators_, columns)
        explainer = ModelExplainer(
            IDENTITY, paths.expected_value, encode,
            # The trees compare float32 values with their thresholds: explain what they compare.
            lambda matrix: treeshap.shap_values(paths, matrix.astype(np.float32).astype(np.float64)),
            lambda matrix: classifier.predict_proba(matrix)[:, 1], weights)
    elif isinstance(classifier, HistGradientBoostingClassifier):
        if classifier.n_trees_per_iteration_ != 1:
            raise ExplanationUnsupported("a gradient boosting model with more than one tree per iteration")
        try:
            paths = treeshap.boosting_paths([trees[0] for trees in classifier._predictors],
                                            float(np.ravel(classifier._baseline_prediction)[0]), columns)
        except ValueError as exc:
            raise ExplanationUnsupported(str(exc)) from exc
        explainer = ModelExplainer(LOGIT, paths.expected_value, encode,
                                   lambda matrix: treeshap.shap_values(paths, matrix),
                                   classifier.decision_function, weights)
    elif type(classifier).__module__.startswith("lightgbm"):
        explainer = _lightgbm_explainer(classifier, encode, weights)
    else:
        raise ExplanationUnsupported(f"no exact explanation for {type(classifier).__name__}")
    rows = synthetic_employees(SELF_CHECK_ROWS, seed=7)
    if card is not None:
        rows.append(dict(card.self_check.employee))
    explainer.check(rows)
    return explainer


def _lightgbm_explainer(classifier: Any, encode: Callable[[Sequence[dict[str, Any]]], np.ndarray],
                        weights: np.ndarray) -> ModelExplainer:
    """LightGBM's own TreeSHAP: ``pred_contrib`` gives each column's value and, last, the expected value."""
    booster = classifier.booster_
    columns = weights.shape[0]
    if booster.num_feature() != columns or booster.num_model_per_iteration() != 1:
        raise ExplanationUnsupported("a LightGBM model of another width, or not binary")
    base = float(booster.predict(np.zeros((1, columns)), pred_contrib=True)[0, -1])
    return ModelExplainer(LOGIT, base, encode, lambda matrix: booster.predict(matrix, pred_contrib=True)[:, :-1],
                          lambda matrix: booster.predict(matrix, raw_score=True), weights)
