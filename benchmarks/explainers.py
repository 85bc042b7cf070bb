"""The figures behind the choice of TreeSHAP implementation: install size, import time, time per row.

    python3 -m benchmarks.explainers [--rows 200] [--repeat 5]

Three ways to explain the tree ensembles exactly: ``shap.TreeExplainer``
(a compiled TreeSHAP; the package brings ``numba`` and ``llvmlite``), LightGBM's
own ``pred_contrib`` (LightGBM models only), and the NumPy TreeSHAP over
scikit-learn's tree arrays of :mod:`registry.treeshap`, which the service
uses. For each: what it adds to the service's image (the installed files of
the packages the service does not already have), the time to import it into
a process that already has scikit-learn (median of ``--repeat`` fresh
interpreters), the time to build an explainer, and the time per row, one row
at a time (an inline ``"explain": true``) and in a batch of ``--rows``
synthetic rows. Every model of ``models/`` with trees is measured, plus a
small LightGBM pipeline trained here on synthetic rows. ``shap`` and
``lightgbm`` come from the dev requirements; a missing one is reported as such.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.common import MIB, PROJECT_ROOT

SHAP_PACKAGES = ("shap", "numba", "llvmlite", "slicer", "tqdm")
"""What ``pip install shap`` adds to the service's requirements (the rest it needs is there already)."""
LIGHTGBM_PACKAGES = ("lightgbm",)


def installed_bytes(packages: Sequence[str]) -> int | None:
    """The size of the installed files of ``packages`` (None when one is not installed)."""
    total = 0
    for name in packages:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        for file in distribution.files or []:
            try:
                total += distribution.locate_file(file).stat().st_size
            except OSError:
                pass
    return total


def import_seconds(module: str, repeat: int) -> float | None:
    """Median time to import ``module`` in a fresh interpreter that already imported scikit-learn's ensembles."""
    code = ("import time, sklearn.ensemble, sklearn.pipeline, pandas; started = time.perf_counter(); "
            f"import {module}; print(time.perf_counter() - started)")
    times = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            return None
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def best_seconds(work: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``work``: the least disturbed by other processes."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def lightgbm_pipeline(rows: list[dict[str, Any]]) -> Any:
    """A small LightGBM pipeline fit on synthetic rows and a synthetic target."""
    import lightgbm
    from sklearn.pipeline import Pipeline

    from registry.runner import employee_frame
    from training.pipelines import preprocessing

    labels = [int(r["heure_supplementaires"] == "Oui" and r["satisfaction_employee_environnement"] < 3)
              for r in rows]
    pipeline = Pipeline([("preprocess", preprocessing(scale_numeric=False)), ("classifier", lightgbm.LGBMClassifier(
        n_estimators=100, num_leaves=15, random_state=0, verbose=-1))])
    return pipeline.fit(employee_frame(rows), labels)


Figure = tuple[str, str, float, float, float]


def measure(name: str, pipeline: Any, rows: list[dict[str, Any]], repeat: int) -> list[Figure]:
    """``(model, method, build s, ms per row alone, ms per row in the batch)`` for each method that covers it."""
    from registry import treeshap
    from registry.runner import employee_frame

    classifier = pipeline.steps[-1][1]
    matrix = np.asarray(pipeline[:-1].transform(employee_frame(rows)), dtype=np.float64)
    one = matrix[:1]
    methods: list[tuple[str, Callable[[], Any], Callable[[Any, np.ndarray], Any]]] = []
    kind = type(classifier).__name__
    if kind == "RandomForestClassifier":
        methods.append(("registry.treeshap", lambda: treeshap.forest_paths(classifier.estimators_, matrix.shape[1]),
                        lambda paths, x: treeshap.shap_values(paths, x.astype(np.float32).astype(np.float64))))
    elif kind == "HistGradientBoostingClassifier":
        methods.append(("registry.treeshap", lambda: treeshap.boosting_paths(
            [trees[0] for trees in classifier._predictors], float(np.ravel(classifier._baseline_prediction)[0]),
            matrix.shape[1]), treeshap.shap_values))
    elif kind == "LGBMClassifier":
        methods.append(("lightgbm pred_contrib", lambda: classifier.booster_,
                        lambda booster, x: booster.predict(x, pred_contrib=True)))
    else:
        return []
    try:
        import shap

        methods.append(("shap.TreeExplainer", lambda: shap.TreeExplainer(classifier),
                        lambda explainer, x: explainer.shap_values(x, check_additivity=False)))
    except ImportError:
        pass
    results = []
    for method, build, explain in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            built = build()
            build_s = time.perf_counter() - started
            explain(built, one)  # the first call pays one-time costs (compilation, caches)
            alone = best_seconds(lambda: explain(built, one), repeat) * 1000
            batch = best_seconds(lambda: explain(built, matrix), max(1, repeat // 2)) * 1000 / len(matrix)
        results.append((name, method, build_s, alone, batch))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the three tables: sizes, import times, time per row."""
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.explainers", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="rows of the batch measurement (default 200)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure, the best is kept (default 5)")
    args = parser.parse_args(argv)
    from attrition.synthetic import synthetic_employees
    from registry.trust import load_artifact

    print("installed size added to the service image:")
    for label, packages in (("shap (+ numba, llvmlite, slicer, tqdm)", SHAP_PACKAGES),
                            ("lightgbm (needed anyway to serve a LightGBM model)", LIGHTGBM_PACKAGES),
                            ("registry/treeshap.py (NumPy, already there)", ())):
        size = installed_bytes(packages)
        print(f"  {label:<52} {'not installed' if size is None else f'{size / MIB:,.1f} MiB'}")
    print("import time after scikit-learn (median of fresh interpreters):")
    for module in ("shap", "lightgbm", "registry.treeshap"):
        seconds = import_seconds(module, args.repeat)
        print(f"  {module:<52} {'not installed' if seconds is None else f'{seconds * 1000:,.0f} ms'}")
    rows = synthetic_employees(args.rows, seed=17)
    results = []
    for folder in sorted((PROJECT_ROOT / "models").glob("*/*/model.joblib")):
        tag = f"{folder.parent.parent.name}:{folder.parent.name}"
        results += measure(tag, load_artifact(tag, folder), rows, args.repeat)  # pinned artifacts only
    try:
        results += measure("lightgbm (synthetic, 100 trees)", lightgbm_pipeline(synthetic_employees(600, seed=5)),
                           rows, args.repeat)
    except ImportError:
        print("lightgbm not installed: no LightGBM figures")
    print(f"time per row (best of {args.repeat}; batch of {args.rows} synthetic rows):")
    print(f"  {'model':<34} {'method':<22} {'build s':>8} {'ms/row alone':>13} {'ms/row batch':>13}")
    for name, method, build_s, alone, batch in results:
        print(f"  {name:<34} {method:<22} {build_s:8.2f} {alone:13.2f} {batch:13.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
