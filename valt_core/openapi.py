"""Builds the OpenAPI document from the registered routes, so it cannot drift from them."""

from __future__ import annotations

import re
from typing import Any

from quart import Quart

from . import __version__

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}


def build_openapi(app: Quart) -> dict[str, Any]:
    """An OpenAPI 3.1 document for every ``/api/v1`` route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        path = _PARAM.sub(r"{\2}", rule.rule)
        params = [
            {"name": name, "in": "path", "required": True, "schema": _TYPES.get(conv or "", {"type": "string"})}
            for conv, name in _PARAM.findall(rule.rule)
        ]
        doc = (view.__doc__ or "").strip()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint.split('.')[-1]}_{method.lower()}",
                "summary": doc.splitlines()[0] if doc else rule.endpoint,
                "responses": {"200": {"description": "OK"}, "4XX": {"description": "Error (JSON body)"}},
            }
            if params:
                op["parameters"] = params
            permission = getattr(view, "valt_permission", None)
            if permission:
                op["security"] = [{"bearer": []}, {"cookie": []}]
                op["x-valt-permission"] = permission
            else:
                op["security"] = []
            model = getattr(view, "valt_body", None)
            if model is not None:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Valt API", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "valt_session"},
            },
        },
    }
