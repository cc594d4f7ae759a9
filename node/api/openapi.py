"""The API's route table as data, and the OpenAPI 3 document assembled from it.

    STATUS = Route("public", "GET", "/v1/status", get_status, "Node and chain status", {200: obj({...})})
    table = RouteTable((STATUS, ...))                     # the served routes, in matching order
    table = table.extend(more_routes, {"Name": schema})   # routes and named schemas from a registry
    document = compute_openapi_document(table)            # what GET /openapi.json answers

Each route module declares its routes next to their handlers; the server builds both listeners'
applications and the document from one table, so the document always lists exactly the served routes.
Named schemas land in `components.schemas` (refer to them with `ref(name)`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"
MAX_INT64 = 2**63 - 1
RATE_LIMIT_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# =============================================================================================
# schema building blocks
# =============================================================================================
def obj(required: Schema, **optional: Any) -> Schema:
    """An object schema whose listed properties are all required."""
    return {"type": "object", "required": list(required), "properties": {**required, **optional}}


def param(name: str, where: str, schema: Schema, required: bool = False) -> Schema:
    """An OpenAPI parameter (`where`: "path" or "query"; path parameters are always required)."""
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema}


def ref(name: str) -> Schema:
    """A reference to the named schema `name` of the table (`components.schemas`)."""
    return {"$ref": f"#/components/schemas/{name}"}


INT: Schema = {"type": "integer"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJ: Schema = {"type": "object"}
COIN = obj({"amount": INT, "denom": STR})  # a money object (SPEC §1)
ERROR = obj({"error": obj({"code": STR, "message": STR})})
PENDING = obj({"tx_hash": STR, "status": {"type": "string", "enum": ["pending"]}})


# =============================================================================================
# routes
# =============================================================================================
@dataclass(frozen=True)
class Route:
    """One served route and its OpenAPI description."""

    listener: str  # "public" or "admin"
    method: str
    path: str
    handler: Handler
    summary: str
    responses: dict[int, Schema]
    params: tuple[Schema, ...] = ()
    body: Schema | None = None
    media: str | tuple[str, ...] = JSON_TYPE  # the success responses' media type (or the types they may have)


@dataclass(frozen=True)
class RouteTable:
    """The served routes of both listeners (in matching order: a literal path before a templated one it
    would also match) and the named schemas they refer to."""

    routes: tuple[Route, ...]
    schemas: Mapping[str, Schema] = field(default_factory=dict)

    def extend(self, routes: Iterable[Route] = (), schemas: Mapping[str, Schema] | None = None) -> RouteTable:
        """This table with `routes` appended and `schemas` added; ValueError on a route or a schema name
        that is already there."""
        routes = tuple(routes)
        schemas = dict(schemas or {})
        served = {(r.method, r.path) for r in self.routes}
        twice = [f"{r.method} {r.path}" for r in routes if (r.method, r.path) in served]
        twice += [f"schema {name}" for name in schemas if name in self.schemas]
        if twice or len({(r.method, r.path) for r in routes}) != len(routes):
            raise ValueError(f"already in the route table: {', '.join(twice) or 'a route given twice'}")
        return RouteTable((*self.routes, *routes), {**self.schemas, **schemas})

    def for_listener(self, listener: str) -> tuple[Route, ...]:
        """The routes served by `listener` ("public" or "admin"), in order."""
        return tuple(route for route in self.routes if route.listener == listener)


# =============================================================================================
# the document
# =============================================================================================
def resolve(document: Schema, schema: Schema) -> Schema:
    """`schema`, or the named schema of `document` it refers to (KeyError if the name is not there)."""
    target = schema.get("$ref")
    if target is None:
        return schema
    return document["components"]["schemas"][target.removeprefix("#/components/schemas/")]


def compute_operation_name(route: Route) -> str:
    """A route's name for its schemas: method and path words in CamelCase (`GET /v1/epochs/{n}`: GetEpochsN)."""
    words = [route.method.lower(), *(w.strip("{}") for w in route.path.split("/") if w and w != "v1")]
    return "".join(part.capitalize() for word in words for part in word.replace(".", "_").replace("-", "_").split("_"))


class SchemaNames:
    """Named schemas for `components.schemas`: each distinct inline object schema gets one name (the first
    route that uses it names it), and a route refers to it by `$ref`."""

    def __init__(self, named: Mapping[str, Schema]) -> None:
        self.schemas: dict[str, Schema] = dict(named)
        self._by_content: dict[str, str] = {json.dumps(v, sort_keys=True): k for k, v in named.items()}

    def name(self, schema: Schema, name: str) -> Schema:
        """A `$ref` to `schema` under `name` (or the name it already has); refs and non-objects stay inline."""
        if "$ref" in schema or schema.get("type") not in ("object", "array") and "anyOf" not in schema:
            return schema
        key = json.dumps(schema, sort_keys=True)
        known = self._by_content.get(key)
        if known is None:
            known = self._by_content[key] = name
            self.schemas[name] = schema
        return ref(known)


def describe_operation(route: Route, names: SchemaNames) -> Schema:
    """The OpenAPI operation of a route, its schemas named in `names`."""
    operation_name = compute_operation_name(route)
    error = names.name(ERROR, "Error")
    responses: dict[str, Any] = {
        str(status): {
            "description": "success" if status == 200 else "accepted, not yet committed",
            "content": {
                media: {"schema": names.name(schema, operation_name + ("Response" if status == 200 else str(status)))}
                for media in ((route.media,) if isinstance(route.media, str) else route.media)
            },
        }
        for status, schema in route.responses.items()
    }
    if route.listener == "public":
        responses["429"] = {
            "description": "over the per-client rate limit ([api] rate_limit_per_s); retry after Retry-After seconds",
            "headers": {name: {"schema": INT} for name in RATE_LIMIT_HEADERS},
            "content": {JSON_TYPE: {"schema": error}},
        }
    if route.listener == "admin":
        responses["401"] = {
            "description": "the Authorization: Bearer <HOME/admin_token> header is missing or wrong",
            "content": {JSON_TYPE: {"schema": error}},
        }
    responses["default"] = {"description": "error", "content": {JSON_TYPE: {"schema": error}}}
    operation: dict[str, Any] = {
        "operationId": route.method.lower()
        + "_"
        + "".join(c if c.isalnum() else "_" for c in route.path.strip("/") or "root"),
        "summary": route.summary,
        "tags": [route.listener],
        "responses": responses,
    }
    if route.params:
        operation["parameters"] = list(route.params)
    if route.body is not None:
        body = names.name(route.body, operation_name + "Request")
        operation["requestBody"] = {"required": True, "content": {JSON_TYPE: {"schema": body}}}
    if route.listener == "admin":
        operation["security"] = [{"adminToken": []}]
        operation["description"] = "Admin listener ([api] admin); needs Authorization: Bearer <HOME/admin_token>."
    return operation


LISTENER_TEXT = {
    "public": "The public listener ([api] public): reads, transaction submission; rate limited per client.",
    "admin": "The admin listener ([api] admin): every request needs Authorization: Bearer <HOME/admin_token>.",
    "metrics": "The metrics listener ([instrumentation] prometheus_listen_addr): Prometheus metrics.",
}


NUMBERS_RULE = (
    "Numbers: every integer the chain stores (amounts, prices, stakes, powers, units) is below 2^63 and served "
    "as a JSON number (exact in int64 clients; JavaScript needs a big-integer parser past 2^53 - 1). The price "
    "per token (units x unit price, up to 2^126) and /v1/pricing's unit price also come as an exact decimal "
    "string, NAME_str; their number is null past 2^53 - 1."
)


def compute_openapi_document(table: RouteTable, listener: str | None = None) -> Schema:
    """The OpenAPI 3 document of the routes of `listener` in `table` (None: every listener's), every
    object schema named in `components.schemas`."""
    names = SchemaNames(table.schemas)
    paths: dict[str, dict[str, Any]] = {}
    for route in table.for_listener(listener) if listener else table.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = describe_operation(route, names)
    components: dict[str, Any] = {"schemas": names.schemas}
    if listener in (None, "admin"):
        components["securitySchemes"] = {"adminToken": {"type": "http", "scheme": "bearer"}}
    text = LISTENER_TEXT.get(listener or "", "Every listener of the node (tags: public, admin, metrics).")
    return {
        "openapi": "3.0.3",
        "info": {"title": "uoc node API", "version": "1", "description": f"{text} {NUMBERS_RULE}"},
        "paths": paths,
        "components": components,
    }


__all__ = [
    "ANY_OBJ",
    "BOOL",
    "COIN",
    "ERROR",
    "INT",
    "JSON_TYPE",
    "MAX_INT64",
    "PENDING",
    "RATE_LIMIT_HEADERS",
    "STR",
    "Handler",
    "Route",
    "RouteTable",
    "Schema",
    "compute_openapi_document",
    "resolve",
    "describe_operation",
    "obj",
    "param",
    "ref",
]
