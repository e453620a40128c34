"""The OpenAPI document of the runner's API, generated from the handlers and the wire schema."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nbremote import __version__
from nbremote.wire.http import ErrorResponse


def _path(pattern: str) -> tuple[str, list[dict[str, Any]]]:
    """``/sessions/(?P<session_id>[A-Za-z0-9_-]+)/channel`` -> ``/sessions/{session_id}/channel``
    and its parameters (each with the pattern the route matches)."""
    params: list[dict[str, Any]] = []

    def name(group: re.Match[str]) -> str:
        params.append(
            {
                "name": group.group(1),
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": f"^{group.group(2)}$"},
            }
        )
        return "{" + group.group(1) + "}"

    path = re.sub(r"\(\?P<(\w+)>([^)]*)\)", name, pattern)
    if "(" in path:
        raise ValueError(f"route {pattern!r}: name its groups (?P<name>...) for the document")
    return path, params


def _successes(op: Any) -> list[tuple[int, str]]:
    found = [(200, "it was already there")] if op.existing else []
    return [*found, (op.status, "success")]


def openapi_document(routes: list[tuple[str, Any]]) -> dict[str, Any]:
    """OpenAPI 3.1 for ``routes`` (pattern, handler class with an ``api`` table)."""
    models: set[type[BaseModel]] = {ErrorResponse}
    for _, handler in routes:
        for op in handler.api.values():
            models.update(m for m in (op.request, op.response) if m is not None)
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            }
        }

    paths: dict[str, Any] = {}
    for pattern, handler in routes:
        path, params = _path(pattern)
        for method, op in handler.api.items():
            entry: dict[str, Any] = {
                "summary": op.summary,
                "parameters": params,
                "responses": {
                    str(status): {"description": what, **(ref(op.response) if op.response else {})}
                    for status, what in _successes(op)
                }
                | {"default": {"description": "error", **ref(ErrorResponse)}},
            }
            if op.request is not None:
                entry["requestBody"] = {"required": True, **ref(op.request)}
            if not handler.public:
                entry["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "nbremote runner", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
