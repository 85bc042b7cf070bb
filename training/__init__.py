"""Offline training of the attrition models: define, evaluate, tune the threshold, write ``models/``.

Never imported by the service. Each saved artifact is one scikit-learn
``Pipeline`` built only from library classes and functions (scikit-learn,
numpy, LightGBM), so the service can load it without this package: it takes
a pandas DataFrame of the 30 raw employee fields
(``attrition.schema.FEATURE_NAMES``) and holds all encoding itself.
"""
