"""The OpenAPI document and the running routes describe the same api."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from filmstrip.protocols import openapi
from filmstrip.services.api.app import create_app
from tests.api.conftest import Api, api_settings

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app answers."""
    routes = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        # aiohttp adds a HEAD twin to every GET (HEAD is GET without a body by definition),
        # so only an explicitly documented HEAD is compared.
        if route.method == "HEAD":
            continue
        routes.add((route.method, resource.canonical))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in openapi.paths().items()
        for method in operations
        if method in _METHODS and method != "head"
    }


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path, "redis://127.0.0.1:1/0"), background=False)
    served, documented = served_routes(app), documented_routes()
    assert served - documented == set(), "routes missing from protocols/openapi.py"
    assert documented - served == set(), "documented routes the app does not serve"
    # The comparison is only worth something if it saw the api.
    assert ("DELETE", "/v1/photos/{photo_id}") in served
    assert ("GET", "/v1/queues/photo-processing/jobs") in served


def test_every_operation_documents_its_errors_with_the_error_body() -> None:
    doc = openapi.document()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            assert any(code.startswith("2") for code in responses), (method, path)
            for code, response in responses.items():
                if code.startswith(("4", "5")) and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
            authenticated = op.get("security", doc["security"]) != []
            if authenticated:
                assert "401" in responses, (method, path)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_no_schema_reference_dangles() -> None:
    doc = openapi.document()
    names = set(doc["components"]["schemas"])
    refs: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.add(ref.rsplit("/", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs and refs <= names, refs - names


async def test_the_served_document_is_the_generated_one(api: Api) -> None:
    resp = await api.http.get(f"{api.url}/v1/openapi.json")
    assert resp.status == 200
    assert await resp.json() == openapi.document()
