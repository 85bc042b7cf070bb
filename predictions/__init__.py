"""The prediction layer: resolve the model, score, trace, answer — without HTTP.

:class:`~predictions.layer.PredictionLayer` is what every endpoint calls; it
returns the typed answers of :mod:`predictions.answers` and raises the domain
errors of :mod:`attrition.errors`. Tests call it without a server.
"""
