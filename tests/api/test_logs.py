"""BentoML's log lines of failed requests and its access log keep no input value."""
from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from api.logs import RouteOnlyAccess, ValueFreeExceptions, route_of
from attrition.schema import EXAMPLE_EMPLOYEE, Employee


def record_of(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("bentoml.serve", logging.ERROR, __file__, 1, message, args, exc_info)


def test_a_validation_failure_is_logged_by_its_count_of_problems_never_its_values():
    with pytest.raises(ValidationError) as refused:
        Employee.model_validate({**EXAMPLE_EMPLOYEE, "revenu_mensuel": 98765, "annees_dans_l_entreprise": 11})
    record = record_of("Exception on %s [%s]", "/predict", "POST", exc_info=(ValidationError, refused.value, None))
    assert ValueFreeExceptions().filter(record)
    line = logging.Formatter().format(record)
    assert "98765" not in line and "input_value" not in line and "1 validation problem(s)" in line


def test_another_exception_is_logged_by_its_type_and_stack_without_its_message():
    message = "Failing row contains (zzmodel-1234)"  # as a database's error would quote a value
    try:
        raise RuntimeError(message)
    except RuntimeError as error:
        record = record_of("Exception on %s [%s]", "/models/zzmodel-1234", "GET", exc_info=(RuntimeError, error, None))
    ValueFreeExceptions().filter(record)
    line = logging.Formatter().format(record)
    assert "zzmodel-1234" not in line and "RuntimeError" in line and "test_logs.py" in line
    assert "/models/{name}" in line


@pytest.mark.parametrize("path, route", [("/predictions/zz-5678", "/predictions/{request_id}"),
                                         ("/models/zzmodel-1234", "/models/{name}"), ("/predictions", "/predictions"),
                                         ("/zz-secret-path", "/{other}")])
def test_the_access_log_writes_route_templates(path, route):
    record = logging.LogRecord("bentoml.access", logging.INFO, __file__, 1, "%s (%s) (%s) %.3fms",
                               ("127.0.0.1:5", f"scheme=http,method=GET,path={path},type=,length=", "status=404", 1.0),
                               None)
    RouteOnlyAccess().filter(record)
    assert f"path={route}," in record.getMessage() and route_of(path) == route
