"""The OpenAPI document Powertools generates, made into the contract an API publishes."""

from __future__ import annotations

import json
import re
from typing import Any


def tidy_openapi(document: dict[str, Any]) -> None:
    """Drop Powertools' own 422 validation answer (ENS's APIs answer 400 with a problem document) and
    the schemas no path refers to, so the committed spec lists exactly what the API answers."""
    for operations in document["paths"].values():
        for operation in operations.values():
            default_422 = operation["responses"].get("422", {})
            if "HTTPValidationError" in json.dumps(default_422):
                del operation["responses"]["422"]
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = [json.dumps(document["paths"])]
    while pending:
        for name in re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", pending.pop()):
            if name not in used:
                used.add(name)
                pending.append(json.dumps(schemas[name]))
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(used)}
