"""docs/openapi.json is what the devices API's resolver generates, and says what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ens.core.registrations import DecisionView, DeviceRegistration, DeviceView
from ens_local.functions import LoadedFunction, load_template_function
from ens_local.template import Template

pytestmark = pytest.mark.unit
SPEC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def function() -> LoadedFunction:
    return load_template_function(Template.load(), "DevicesFunction")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return document


def test_the_committed_spec_is_what_the_resolver_generates_now(function: LoadedFunction) -> None:
    # On failure: `make openapi`, and review the diff of docs/openapi.json.
    assert function.module.openapi_document() == SPEC_PATH.read_text(encoding="utf-8")


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations}


def test_every_route_of_the_resolver_is_in_the_spec_and_nothing_else(
    function: LoadedFunction, spec: dict[str, Any]
) -> None:
    app = function.module.app
    routes = {
        (route.method, re.sub(r"<(\w+)>", r"{\1}", route.path))
        for route in app._static_routes + app._dynamic_routes
    }

    assert routes == _operations(spec)


def test_every_route_of_the_template_is_in_the_spec_but_the_catch_all(spec: dict[str, Any]) -> None:
    (devices,) = [f for f in Template.load().functions() if f.logical_id == "DevicesFunction"]
    routes = {(route.method, route.path) for route in devices.routes if "+}" not in route.path}

    assert routes == _operations(spec)


def test_every_operation_needs_a_bearer_jwt_and_documents_its_problem_answers(spec: dict[str, Any]) -> None:
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {code for code in operation["responses"] if code.startswith(("4", "5"))}
            assert {"400", "401", "403", "404", "500", "503"} <= errors, (method, path)
            for code in errors:
                content = operation["responses"][code]["content"]
                assert content == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    put = spec["paths"]["/v1/devices/{deviceId}"]["put"]["responses"]
    assert {"200", "201", "413", "415", "422"} <= set(put)
    assert "Retry-After" in put["503"]["headers"]
    assert "WWW-Authenticate" in put["401"]["headers"]


def _without_null_defaults(schema: Any) -> Any:
    """Powertools leaves out `"default": null`, which pydantic writes for optional fields."""
    if isinstance(schema, dict):
        return {
            key: _without_null_defaults(value)
            for key, value in schema.items()
            if not (key == "default" and value is None)
        }
    if isinstance(schema, list):
        return [_without_null_defaults(item) for item in schema]
    return schema


def _schema(spec: dict[str, Any], name: str, mode: str) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    suffixed = f"{name}-{'Input' if mode == 'validation' else 'Output'}"
    found = schemas.get(suffixed, schemas.get(name))
    assert found is not None, name
    # The spec names a model used both ways Model-Input / Model-Output; pydantic alone names it Model.
    return dict(json.loads(re.sub(r'(#/components/schemas/\w+)-(Input|Output)"', r'\1"', json.dumps(found))))


@pytest.mark.parametrize(
    ("model", "mode"),
    [(DeviceRegistration, "validation"), (DeviceView, "serialization"), (DecisionView, "serialization")],
)
def test_each_schema_of_the_spec_is_its_pydantic_models_schema(
    spec: dict[str, Any], model: type[BaseModel], mode: str
) -> None:
    generated = _without_null_defaults(
        model.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    )
    definitions = generated.pop("$defs", {})

    assert _schema(spec, model.__name__, mode) == generated
    for name, definition in definitions.items():
        assert _schema(spec, name, mode) == definition


def test_the_problem_schema_is_the_handlers_problem_model(
    function: LoadedFunction, spec: dict[str, Any]
) -> None:
    generated = _without_null_defaults(
        function.module.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    generated.pop("$defs", None)

    assert spec["components"]["schemas"]["Problem"] == generated
