"""The API's route table as data: a registry extends it with routes and named schemas, which the
OpenAPI document and the served application then include; and the API package reaches the node only
through `ports.ApiNode` (no import of `node.node`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiohttp import web

import node.api
from node.api import ROUTE_TABLE, ApiState, Route, build_app, build_openapi, compute_openapi_document
from node.api.openapi import INT, obj, ref, resolve


async def get_moniker(request: web.Request) -> web.Response:
    return web.json_response({"moniker": "x"})


MONIKER = Route("public", "GET", "/v1/moniker", get_moniker, "The moniker", {200: ref("Moniker")})


def test_a_registry_adds_routes_and_named_schemas_to_the_document_and_the_served_app():
    table = ROUTE_TABLE.extend([MONIKER], {"Moniker": obj({"moniker": INT})})
    document = compute_openapi_document(table)
    assert document["components"]["schemas"]["Moniker"] == obj({"moniker": INT})
    operation = document["paths"]["/v1/moniker"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Moniker"
    }
    assert list(document["paths"])[: len(build_openapi()["paths"])] == list(build_openapi()["paths"])
    assert "Moniker" not in build_openapi()["components"]["schemas"]
    served = {r.resource.canonical for r in build_app(ApiState.__new__(ApiState), "public", table).router.routes()}
    assert "/v1/moniker" in served
    assert "/v1/moniker" not in {
        r.resource.canonical for r in build_app(ApiState.__new__(ApiState), "admin", table).router.routes()
    }


def test_the_table_refuses_a_route_or_schema_it_already_has():
    with pytest.raises(ValueError, match="GET /v1/status"):
        ROUTE_TABLE.extend([Route("public", "GET", "/v1/status", get_moniker, "again", {200: INT})])
    table = ROUTE_TABLE.extend(schemas={"Moniker": INT})
    with pytest.raises(ValueError, match="schema Moniker"):
        table.extend(schemas={"Moniker": INT})
    with pytest.raises(ValueError):
        ROUTE_TABLE.extend([MONIKER, MONIKER])


def test_the_api_package_never_imports_the_node_module():
    package = Path(node.api.__file__).parent
    for path in sorted(package.glob("*.py")):
        for item in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(item, ast.ImportFrom):
                names = [("." * item.level) + (item.module or "") + "." + a.name for a in item.names]
            elif isinstance(item, ast.Import):
                names = [a.name for a in item.names]
            else:
                continue
            for name in names:
                assert not name.startswith(("node.node", "..node.", "...node")), f"{path.name} imports {name}"


def test_the_document_states_the_numbers_rule_and_the_pricing_twins():
    document = build_openapi()
    assert "null past 2^53 - 1" in document["info"]["description"] and "below 2^63" in document["info"]["description"]
    pricing = document["paths"]["/v1/pricing"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert pricing == {"$ref": "#/components/schemas/GetPricingResponse"}
    pricing = resolve(document, pricing)
    assert {"unit_of_compute_price", "unit_of_compute_price_str"} <= set(pricing["required"])
    model = pricing["properties"]["models"]["items"]
    assert model["properties"]["price_per_token"] == {
        "type": "integer",
        "nullable": True,
        "maximum": 2**53 - 1,
        "description": "null past 2^53 - 1: read price_per_token_str",
    }
    assert model["properties"]["price_per_token_str"]["pattern"] == "^[0-9]+$"


@pytest.mark.parametrize("listener", ["public", "admin", "metrics"])
def test_each_listener_documents_exactly_its_own_routes_with_named_schemas(listener):
    document = build_openapi(listener=listener)
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    served = {(r.method, r.resource.canonical) for r in build_app(ApiState.__new__(ApiState), listener).router.routes()}
    heads = {("HEAD", path) for method, path in documented if method == "GET"}  # HEAD of a GET: implied, served
    assert documented | heads == served and ("GET", "/openapi.json") in served
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for response in operation["responses"].values():
                for content in response.get("content", {}).values():
                    schema = content["schema"]
                    assert "$ref" in schema or schema.get("type") in ("string", "integer"), (path, schema)
                    resolve(document, schema)
    assert (listener == "admin") == any(path.startswith("/v1/admin/") for path in document["paths"])


def test_every_response_schema_of_the_whole_table_has_a_name():
    document = build_openapi(listener=None)
    names = document["components"]["schemas"]
    assert {"Error", "GetPricingResponse", "GetStatusResponse", "PostTxsRequest"} <= set(names)
