"""The prediction layer without a server: typed answers, traces stored before the answer, domain errors."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from attrition.errors import (BatchTooLarge, DefaultModelUnavailable, InvalidRequest, TraceNotStored, UnknownEmployee,
                              UnknownModel, UnknownRequest)
from attrition.schema import Employee
from attrition.synthetic import EXAMPLE_EMPLOYEE, synthetic_employees
from persistence.database.schema import employees as employees_table
from persistence.database.schema import prediction_traces
from predictions.answers import Prediction, PredictionBatch
from registry.catalogue import ModelCatalogue
from registry.runner import employee_frame
from registry.store import import_models
from registry.trust import COMMITTED_MANIFEST, load_artifact
from tests.predictions.conftest import BATCH_CAP, MODELS_DIR, running_layer
from tests.registry.conftest import copy_version, trust

EARLIER = datetime(2030, 1, 1, tzinfo=timezone.utc)
LATER = datetime(2030, 1, 2, tzinfo=timezone.utc)


def employee(row: dict) -> Employee:
    return Employee.model_validate(row)


def stored(layer, request_id: str) -> dict:
    with layer.layer.engine.connect() as connection:
        return dict(connection.execute(sa.select(prediction_traces).where(
            prediction_traces.c.request_id == request_id)).mappings().one())


def test_predict_answers_a_typed_prediction_whose_trace_is_stored_before_it_returns(layer, catalogue):
    answer = layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "random_forest"))
    assert isinstance(answer, Prediction)
    assert (answer.model, answer.requested_model) == ("random_forest", "random_forest")
    # The name alone resolves to the latest version; the answer says which one served.
    assert answer.model_version == max((p.name for p in (MODELS_DIR / "random_forest").glob("v*")),
                                       key=lambda version: int(version[1:]))
    model = load_artifact(f"random_forest:{answer.model_version}",
                          MODELS_DIR / "random_forest" / answer.model_version / "model.joblib")
    assert answer.probability == pytest.approx(model.predict_proba(employee_frame([EXAMPLE_EMPLOYEE]))[0, 1], abs=1e-6)
    assert answer.label == ("Oui" if answer.prediction else "Non")
    trace = stored(layer, answer.request_id)
    assert trace["inputs"] == EXAMPLE_EMPLOYEE and trace["probability"] == answer.probability
    assert trace["model_sha256"] == catalogue.resolve("random_forest").card.artifact_sha256
    assert trace["endpoint"] == "predict" and trace["batch_index"] is None and trace["status"] == "ok"
    record = layer.layer.trace(answer.request_id)
    assert record.outputs.prediction == answer.prediction and record.model == "random_forest"


def test_a_batch_answers_in_order_with_one_trace_per_row(layer):
    rows = synthetic_employees(BATCH_CAP, seed=4)
    batch = layer.run(layer.layer.predict_batch([employee(r) for r in rows], None))
    assert isinstance(batch, PredictionBatch) and len({p.request_id for p in batch.predictions}) == BATCH_CAP
    for index, (row, answer) in enumerate(zip(rows, batch.predictions)):
        trace = stored(layer, answer.request_id)
        assert (trace["batch_index"], trace["inputs"], trace["probability"]) == (index, row, answer.probability)


def test_request_errors_are_domain_errors_naming_the_field(layer):
    with pytest.raises(UnknownModel) as unknown:
        layer.run(layer.layer.predict(employee(EXAMPLE_EMPLOYEE), None, "nope"))
    assert "logistic_regression" in unknown.value.valid
    with pytest.raises(InvalidRequest) as neither:
        layer.run(layer.layer.predict(None, None, None))
    assert neither.value.detail[0]["field"] == "employee"
    with pytest.raises(UnknownEmployee):
        layer.run(layer.layer.predict(None, 424242, None))
    rows = [employee(r) for r in synthetic_employees(BATCH_CAP + 1, seed=2)]
    with pytest.raises(BatchTooLarge):
        layer.run(layer.layer.predict_batch(rows, None))
    with pytest.raises(InvalidRequest):
        layer.run(layer.layer.predict_batch([], None))
    with pytest.raises(UnknownRequest):
        layer.layer.trace("no-such-request")
    with pytest.raises(InvalidRequest):
        layer.layer.traces(None, LATER, EARLIER, 10, 0)  # a period that ends before it starts
    with layer.layer.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(prediction_traces)).scalar_one() == 0


def test_a_stored_employee_is_scored_by_id_and_the_trace_carries_the_id(layer):
    row = synthetic_employees(1, seed=8)[0]
    with layer.layer.engine.begin() as connection:
        connection.execute(sa.insert(employees_table), [{"id_employee": 77, **row, "a_quitte_l_entreprise": "Non"}])
    answer = layer.run(layer.layer.predict(None, 77, None))
    trace = stored(layer, answer.request_id)
    assert trace["employee_id"] == 77 and trace["inputs"] == row
    page = layer.layer.traces(77, None, None, 10, 0)
    assert page.total == 1 and page.items[0].request_id == answer.request_id


def _corrupted_catalogue(tmp_path: Path, default_ref: str | None = None) -> ModelCatalogue:
    models = tmp_path / "models"
    folder = copy_version(models, "corrupted_layer_model")
    (folder / "model.joblib").write_bytes(b"not a model")
    card = json.loads((folder / "card.json").read_text())
    from registry.store import sha256_of
    card["artifact_sha256"] = sha256_of(folder / "model.joblib")
    (folder / "card.json").write_text(json.dumps(card))
    (models / "aliases.json").write_text((MODELS_DIR / "aliases.json").read_text())
    # Trusted (pinned in a manifest of its own), so that it reaches the loader and fails there.
    manifest_path = shutil.copy(COMMITTED_MANIFEST, tmp_path / COMMITTED_MANIFEST.name)
    manifest = trust(Path(manifest_path), folder)
    import_models(models, manifest)
    return ModelCatalogue.from_store(models, default_ref, manifest)


def test_a_broken_model_is_answered_by_the_default_visibly_and_traced_as_such(tmp_path, sqlite_url):
    catalogue = _corrupted_catalogue(tmp_path)
    running = running_layer(sqlite_url, tmp_path, catalogue)
    try:
        batch = running.run(running.layer.predict_batch([employee(r) for r in synthetic_employees(3)],
                                                        "corrupted_layer_model"))
        assert [p.model for p in batch.predictions] == [catalogue.default.name] * 3
        assert all(p.fallback and p.requested_model == "corrupted_layer_model" for p in batch.predictions)
        summary = {m.tag: m for m in running.layer.models().models}["corrupted_layer_model:v1"]
        assert not summary.valid and "failed to load" in summary.invalid_reason
        trace = stored(running, batch.predictions[0].request_id)
        assert trace["status"] == "error" and trace["fallback"] and "corrupted_layer_model:v1" in trace["error"]
    finally:
        running.close()


def test_an_invalid_default_model_raises_and_the_failure_is_traced(tmp_path, sqlite_url):
    catalogue = _corrupted_catalogue(tmp_path, default_ref="corrupted_layer_model")
    running = running_layer(sqlite_url, tmp_path, catalogue)
    try:
        with pytest.raises(DefaultModelUnavailable):
            running.run(running.layer.predict(employee(EXAMPLE_EMPLOYEE), None, None))
        assert not running.layer.ready
        with running.layer.engine.connect() as connection:
            failed = connection.execute(sa.select(prediction_traces)).mappings().all()
        assert [(t["status"], t["prediction"]) for t in failed] == [("error", None)]
    finally:
        running.close()


def test_no_answer_leaves_when_its_trace_can_be_stored_nowhere(tmp_path, catalogue):
    # A database that is gone and a journal directory that cannot be created: the trace has nowhere to go.
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    running = running_layer(url, tmp_path, catalogue)
    (tmp_path / "traces.db").unlink()
    (tmp_path / "traces.db").mkdir()  # the file's path is now a directory: SQLite cannot open it
    (tmp_path / "journal").write_text("a file where the journal directory should be")
    running.layer.engine.dispose()
    try:
        with pytest.raises(TraceNotStored):
            running.run(running.layer.predict(employee(EXAMPLE_EMPLOYEE), None, None))
    finally:
        running.close()
