"""Schemathesis fuzzes every operation of the OpenAPI schema: no input may cause a 5xx.

The cases come from each operation's Hypothesis strategy (valid and invalid data alike) and are
sent to the app in-process; every answer must be a JSON 2xx/4xx without a traceback.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from movierec.serving import create_app
from tests.serving import make_run

OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/users/{user_id}/recommendations"),
    ("GET", "/items/{item_id}/similar"),
    ("GET", "/predict"),
    ("GET", "/items"),
    ("POST", "/recommendations"),
    ("POST", "/admin/reload"),
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    app = create_app(make_run(tmp_path_factory.mktemp("fuzz") / "run"), admin_token="fuzz-token")
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_the_fuzzed_operations_are_all_the_operations(api_schema):
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_input_causes_a_server_error(api_schema, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call()
        assert response.status_code < 500, f"{method} {case.formatted_path}: {response.text}"
        content_type = response.headers.get("content-type", [""])
        assert content_type[0].startswith("application/json"), content_type
        if response.status_code >= 400:
            assert "Traceback" not in response.text
            assert response.json()["detail"]

    check()
