"""Every API's body refuses a key its signature does not declare, and the document says so."""
from __future__ import annotations

import bentoml
import pytest
from pydantic import ValidationError

from api.bodies import closed, refuse_unknown_keys
from attrition.synthetic import EXAMPLE_EMPLOYEE
from service import AttritionService, build_openapi_document


def refused_keys(body_model, body: dict) -> list[tuple]:
    """The locations of the keys ``body_model`` refuses as undeclared in ``body``."""
    with pytest.raises(ValidationError) as refused:
        body_model.model_validate(body)
    return [error["loc"] for error in refused.value.errors() if error["type"] == "extra_forbidden"]


@pytest.mark.parametrize("name", sorted(AttritionService.apis))
def test_every_api_body_refuses_an_undeclared_key_by_name(name):
    body_model = AttritionService.apis[name].input_spec
    assert refused_keys(body_model, {"zz_undeclared": 1}) == [("zz_undeclared",)]


@pytest.mark.parametrize("body, unknown", [
    ({"employee": EXAMPLE_EMPLOYEE, "modle": "random_forest"}, "modle"),
    ({"employee_id": 12, "explian": True}, "explian"),
])
def test_predict_refuses_a_misspelt_or_unknown_key_and_takes_its_declared_ones(body, unknown):
    body_model = AttritionService.apis["predict"].input_spec
    assert refused_keys(body_model, body) == [(unknown,)]
    body.pop(unknown)
    assert body_model.model_validate(body)


def test_a_declared_key_of_the_wrong_type_is_refused_by_its_name_not_ignored():
    body_model = AttritionService.apis["predict"].input_spec
    with pytest.raises(ValidationError) as refused:
        body_model.model_validate({"employee_id": 12, "explain": "yes"})
    assert [error["loc"] for error in refused.value.errors()] == [("explain",)]


def test_predict_batch_refuses_an_undeclared_key():
    body_model = AttritionService.apis["predict_batch"].input_spec
    assert refused_keys(body_model, {"employees": [EXAMPLE_EMPLOYEE], "modle": "random_forest"}) == [("modle",)]
    assert body_model.model_validate({"employees": [EXAMPLE_EMPLOYEE], "model": "random_forest"})


def test_a_parameter_added_to_a_signature_is_a_declared_key_at_once():
    @bentoml.service
    class Explaining:
        @bentoml.api
        def predict(self, employee_id: int, explain: bool = False) -> dict:
            return {"employee_id": employee_id, "explain": explain}

    refuse_unknown_keys(Explaining)
    body_model = Explaining.apis["predict"].input_spec
    assert body_model.model_validate({"employee_id": 1, "explain": True}).explain is True
    assert refused_keys(body_model, {"employee_id": 1, "explian": True}) == [("explian",)]
    assert closed(body_model) is body_model


def test_the_document_shows_every_api_body_closed():
    schemas = build_openapi_document()["components"]["schemas"]
    for name in AttritionService.apis:
        assert schemas[f"{name}_request"]["additionalProperties"] is False, name
    assert schemas["Employee"]["additionalProperties"] is False
