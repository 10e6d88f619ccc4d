"""Builds the OpenAPI document from the registered routes, so it cannot drift from them.

Each route's declarations (:func:`~valt_core.api.guard.body`, :func:`~valt_core.api.guard.query`,
:func:`~valt_core.api.guard.responds`, :func:`~valt_core.api.guard.headers_in`,
:func:`~valt_core.api.guard.raw_body`, its guard) become its parameters, request body and
answers. Error answers that follow from how a route is built are inferred, so they are never
forgotten: 401/403 on a guarded route, 404 where the path holds ids, 400 (and 413) where there is
a body or query, 503 on every route (the database may be unavailable).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from quart import Quart

from . import __version__
from .api.guard import MAX_ID, Response

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_TYPES = {"int": {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID},
          "float": {"type": "number"}}
_REF = "#/components/schemas/{model}"

#: What each error status means, for the document's descriptions.
ERROR_MEANINGS = {
    400: "The body or the parameters are not valid (`invalid_request`, with `details.fields`).",
    401: "Not signed in, or the token has expired.",
    403: "The caller's role may not do this, or a cookie session sent no CSRF token.",
    404: "No such object, or one the caller may not see.",
    409: "The request clashes with the current state (a name taken, a recording running).",
    410: "The upload expired or was refused; its bytes are gone.",
    412: "The request's `Tus-Resumable` is not `1.0.0`.",
    413: "The body is larger than 16 MiB, or an upload is over the size limit or the caller's quota.",
    415: "The body's Content-Type is not the one the route takes.",
    416: "The byte range is beyond the end of the file.",
    422: "An uploaded file is not a playable video, or not the SHA-256 declared; the upload is refused.",
    423: "The account is locked after too many wrong passwords.",
    429: "Too many attempts or jobs; `Retry-After` may say when to try again.",
    460: "tus: the chunk's `Upload-Checksum` does not match; nothing was appended.",
    501: "The camera's driver or device does not offer this.",
    502: "The camera did not answer, or refused the credentials.",
    503: "The database is unavailable, or the server is at a bound of its own; retry shortly.",
    507: "The storage failed, or its free space is below the floor.",
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "A code, e.g. `invalid_request`."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "details": {"type": "object", "description": "More to say; `fields` for invalid bodies."},
    },
}


def _schema_for(schema: Any, schemas: dict[str, Any], mode: str = "serialization") -> dict[str, Any]:
    """A JSON schema for a pydantic model, a type such as ``list[Model]``, or a schema dict.

    Models go to ``components/schemas`` and are referenced from there.
    """
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        found = schema.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        schemas.update(found.pop("$defs", {}))
        schemas[schema.__name__] = found
        return {"$ref": _REF.format(model=schema.__name__)}
    found = TypeAdapter(schema).json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
    schemas.update(found.pop("$defs", {}))
    return found


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    # A query parameter is left out to mean "none"; it has no null value to send.
    options = schema.get("anyOf")
    if options:
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            merged.update(rest[0])
            return merged
    return {k: v for k, v in schema.items() if not (k == "default" and v is None)}


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    full = model.model_json_schema(ref_template=_REF, mode="validation")
    schemas.update(full.pop("$defs", {}))
    required = set(full.get("required", []))
    params = []
    for name, prop in full.get("properties", {}).items():
        prop = _without_null(dict(prop))
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": {k: v for k, v in prop.items() if k not in ("title", "description")}}
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    return params


def _content(answer: Response, schemas: dict[str, Any]) -> dict[str, Any] | None:
    if answer.media_type is None:
        return None
    if answer.media_type == "application/json":
        schema = _schema_for(answer.schema, schemas) if answer.schema is not None else {}
        return {"application/json": {"schema": schema}}
    types = (answer.media_type,) if isinstance(answer.media_type, str) else answer.media_type
    return {t: {"schema": {"type": "string", "format": "binary"}} for t in types}


def _responses(view: Any, has_ids: bool, schemas: dict[str, Any]) -> dict[str, Any]:
    declared: list[Response] = list(getattr(view, "valt_responses", ())) or [Response(200)]
    out: dict[str, Any] = {}
    for answer in declared:
        entry: dict[str, Any] = {"description": answer.description or "OK"}
        content = _content(answer, schemas)
        if content:
            entry["content"] = content
        if answer.headers:
            entry["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                for name, text in answer.headers.items()}
        out[str(answer.status)] = entry
    errors = set(getattr(view, "valt_errors", ()))
    # Any route may meet an unavailable database (or a server at one of its bounds).
    errors.add(503)
    if getattr(view, "valt_permission", None):
        errors |= {401, 403}
    if has_ids:
        errors.add(404)
    if getattr(view, "valt_body", None) is not None or getattr(view, "valt_raw_body", None) is not None:
        errors |= {400, 413}
    if getattr(view, "valt_headers", None):
        errors.add(400)
    if getattr(view, "valt_query", None) is not None:
        errors.add(400)
    for status in sorted(errors):
        out[str(status)] = {"description": ERROR_MEANINGS.get(status, "Error."),
                            "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}}
    return dict(sorted(out.items()))


def build_openapi(app: Quart) -> dict[str, Any]:
    """An OpenAPI 3.1 document for every ``/api/v1`` route of ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        path = _PARAM.sub(r"{\2}", rule.rule)
        converters = _PARAM.findall(rule.rule)
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": _TYPES.get(conv or "", {"type": "string"})}
            for conv, name in converters
        ]
        query_model = getattr(view, "valt_query", None)
        if query_model is not None:
            params += _query_parameters(query_model, schemas)
        # Request headers a protocol route reads (tus): name -> (description, required, schema).
        for name, (text, required, schema) in getattr(view, "valt_headers", {}).items():
            params.append({"name": name, "in": "header", "required": required, "description": text,
                           "schema": schema})
        doc = (view.__doc__ or "").strip()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "operationId": f"{rule.endpoint.split('.')[-1]}_{method.lower()}",
                "summary": doc.splitlines()[0] if doc else rule.endpoint,
                "responses": _responses(view, bool(converters), schemas),
            }
            if doc and len(doc.splitlines()) > 1:
                op["description"] = doc
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
                optional = getattr(view, "valt_body_optional", False)
                schema = _schema_for(model, schemas, "validation")
                op["requestBody"] = {
                    "required": not optional,
                    # An optional body may also be sent as JSON null (what many clients send for "none").
                    "content": {"application/json": {"schema": {"anyOf": [schema, {"type": "null"}]}
                                                      if optional else schema}},
                }
            raw = getattr(view, "valt_raw_body", None)
            if raw is not None:
                media_type, text, optional = raw
                op["requestBody"] = {"required": not optional, "description": text,
                                     "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Valt API", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "valt_session"},
            },
        },
    }
