"""The HTTP API through FastAPI's TestClient: every endpoint, every error, reload under load."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from movierec.artifacts import WEIGHTS, load_run
from movierec.serving import create_app, serve
from movierec.serving.app import MAX_BODY_BYTES
from tests.serving import make_run

TOKEN = "correct horse battery staple"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("api") / "run")


@pytest.fixture(scope="module")
def client(run_dir) -> TestClient:
    with TestClient(create_app(run_dir, admin_token=TOKEN)) as client:
        yield client


@pytest.fixture(scope="module")
def recommender(run_dir):
    return load_run(run_dir)[0]


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if error is not None:
        assert body["error"] == error
    return body


# -- health, page, headers -----------------------------------------------------------------------


def test_health_names_the_model_and_sizes(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["model"] == "embedding-net"
    assert body["dataset"] == "synthetic"
    assert (body["n_users"], body["n_items"]) == (60, 40)
    assert body["rating_scale"] == [1.0, 5.0]
    assert body["version"] == __import__("movierec").__version__


def test_the_page_and_its_assets_are_served_with_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="user-id"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


def test_openapi_docs_describe_every_endpoint(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/health",
        "/users/{user_id}/recommendations",
        "/items/{item_id}/similar",
        "/predict",
        "/items",
        "/recommendations",
        "/admin/reload",
    } <= set(paths)


def test_cors_is_off_unless_configured(client, run_dir):
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with TestClient(create_app(run_dir, cors_origins=["https://example.org"])) as allowed:
        response = allowed.get("/health", headers=origin)
    assert response.headers["access-control-allow-origin"] == "https://example.org"


def test_serve_binds_to_localhost_by_default():
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


# -- known users ---------------------------------------------------------------------------------


def test_recommendations_match_the_recommender(client, recommender):
    body = client.get("/users/1/recommendations?k=5").json()
    expected = recommender.top_n(1, 5)
    assert body["user"] == 1 and body["k"] == 5 and body["exclude_seen"] is True
    assert [i["item"] for i in body["items"]] == [r.item for r in expected]
    assert [i["title"] for i in body["items"]] == [r.title for r in expected]
    first = body["items"][0]
    assert first["genres"] == ["Drama", "Comedy"]
    assert first["predicted_rating"] == pytest.approx(expected[0].score, abs=1e-3)
    # The cached answer is the same answer.
    assert client.get("/users/1/recommendations?k=5").json() == body


def test_recommendations_leave_out_seen_items_unless_asked(client, recommender):
    user = 1
    seen = set(recommender.encoder.decode_items(recommender.seen.items_of(0)).tolist())
    shown = client.get(f"/users/{user}/recommendations?k=40").json()["items"]
    assert seen and not seen & {i["item"] for i in shown}
    every = client.get(f"/users/{user}/recommendations?k=40&exclude_seen=false").json()["items"]
    assert len(every) == 40


@pytest.mark.parametrize("user", ["99999", "-1", "abc", "ユーザー", "1.5"])
def test_an_unknown_user_is_a_404_naming_the_id(client, user):
    body = assert_error(client.get(f"/users/{user}/recommendations"), 404, "unknown_user")
    assert body["id"] == user
    assert user in body["detail"] or "not in the model" in body["detail"]


@pytest.mark.parametrize("k", ["0", "-3", "1001", "10000000000000000000000", "ten", "1.5"])
def test_k_outside_1_to_1000_is_a_422(client, k):
    body = assert_error(client.get(f"/users/1/recommendations?k={k}"), 422, "invalid_request")
    assert "k" in body["detail"]


def test_a_huge_id_is_refused_before_lookup(client):
    assert_error(client.get("/users/" + "9" * 5000 + "/recommendations"), 422)


# -- items ---------------------------------------------------------------------------------------


def test_similar_items_exclude_the_item_itself(client):
    body = client.get("/items/1/similar?k=5").json()
    assert body["item"]["title"] == "Toy Story (1995)"
    assert len(body["items"]) == 5
    assert 1 not in [i["item"] for i in body["items"]]
    sims = [i["similarity"] for i in body["items"]]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)


def test_similar_items_errors(client):
    assert assert_error(client.get("/items/4242/similar"), 404, "unknown_item")["id"] == "4242"
    assert_error(client.get("/items/1/similar?k=1001"), 422)


def test_cosine_similarity_needs_embeddings_but_jaccard_does_not(tmp_path):
    with TestClient(create_app(make_run(tmp_path / "bias", "bias"))) as client:
        assert_error(client.get("/items/1/similar?similarity=cosine"), 409, "unsupported")
        body = client.get("/items/1/similar?k=3").json()  # jaccard: who rated both
        assert len(body["items"]) == 3 and 1 not in [i["item"] for i in body["items"]]
        assert_error(client.get("/items/1/similar?similarity=euclid"), 422)


def test_predict_matches_the_recommender(client, recommender):
    body = client.get("/predict?user=2&item=3").json()
    assert body["user"] == 2 and body["item"]["item"] == 3
    expected = recommender.predict([2], [3], unknown="error")[0]
    assert body["predicted_rating"] == pytest.approx(expected, abs=1e-3)


def test_predict_errors_name_the_unknown_side(client):
    assert assert_error(client.get("/predict?user=999&item=3"), 404, "unknown_user")["id"] == "999"
    assert assert_error(client.get("/predict?user=2&item=999"), 404, "unknown_item")["id"] == "999"
    assert_error(client.get("/predict?user=2"), 422, "invalid_request")


def test_title_search_is_case_insensitive_and_prefix_first(client):
    body = client.get("/items?query=TOY").json()
    assert [i["title"] for i in body["items"]] == ["Toy Story (1995)"]
    body = client.get("/items?query=movie 1&limit=3").json()
    assert body["total"] == 10  # Movie 10 .. Movie 19 (item 1 is Toy Story)
    assert len(body["items"]) == 3
    titles = [i["title"] for i in client.get("/items?query=e&limit=100").json()["items"]]
    assert titles[0] == "GoldenEye (1995)"  # not a prefix match for 'e', catalogue order then
    assert client.get("/items?query=(1995").json()["total"] == 4


@pytest.mark.parametrize("query", ["zzzz", "ü🎬", "%00", "<script>"])
def test_title_search_finds_nothing_without_failing(client, query):
    response = client.get("/items", params={"query": query})
    assert response.status_code == 200 and response.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "status"),
    [({"query": "x" * 101}, 422), ({"query": ""}, 422), ({"query": "   "}, 422), ({}, 422)],
)
def test_title_search_bad_queries(client, params, status):
    assert_error(client.get("/items", params=params), status)


def test_a_very_long_url_is_a_4xx(client):
    assert client.get("/items", params={"query": "y" * 20_000}).status_code == 422


# -- new visitors --------------------------------------------------------------------------------


def visitor(client, ratings, k=10, **kwargs):
    return client.post("/recommendations", json={"ratings": ratings, "k": k}, **kwargs)


def test_a_new_visitor_gets_unrated_recommendations(client):
    rated = [{"item": 1, "rating": 5}, {"item": 2, "rating": 4.5}, {"item": 3, "rating": 1}]
    body = visitor(client, rated, k=8).json()
    assert body["k"] == 8 and len(body["items"]) == 8 and body["method"] == "adam"
    assert not {1, 2, 3} & {i["item"] for i in body["items"]}
    scores = [i["predicted_rating"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(1 <= s <= 5 for s in scores)


def test_visitor_item_ids_may_be_strings(client):
    assert visitor(client, [{"item": "1", "rating": 5}], k=3).status_code == 200


def test_visitor_k_is_capped_by_the_unrated_catalogue(client):
    rated = [{"item": i, "rating": 3} for i in range(1, 31)]
    assert len(visitor(client, rated, k=1000).json()["items"]) == 10


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({"ratings": [{"item": 4242, "rating": 5}]}, 404, "unknown_item"),
        ({"ratings": [{"item": 1, "rating": 6}]}, 422, "invalid_rating"),
        ({"ratings": [{"item": 1, "rating": 0.5}]}, 422, "invalid_rating"),
        ({"ratings": [{"item": 1, "rating": 5}, {"item": 1, "rating": 4}]}, 422, None),
        ({"ratings": []}, 422, None),
        ({"ratings": [{"item": 1, "rating": 5}], "k": 0}, 422, None),
        ({"ratings": [{"item": 1, "rating": 5}], "k": 1001}, 422, None),
        ({"ratings": [{"item": 1, "rating": "five"}]}, 422, None),
        ({"ratings": [{"item": 1.5, "rating": 5}]}, 422, None),
        ({"ratings": [{"item": None, "rating": 5}]}, 422, None),
        ({"ratings": [{"item": 1}]}, 422, None),
        ({"ratings": [{"item": 1, "rating": 5}], "run_dir": "/etc"}, 422, None),
        ([{"item": 1, "rating": 5}], 422, None),
        ("ratings", 422, None),
        (None, 415, "unsupported_media_type"),  # no body, no content type
    ],
)
def test_bad_visitor_bodies_are_4xx(client, payload, status, error):
    response = client.post("/recommendations", json=payload)
    body = assert_error(response, status, error)
    if error == "unknown_item":
        assert body["id"] == 4242


@pytest.mark.parametrize(
    "raw", [b"{bad json", b'{"ratings": [{"item": 1, "rating": NaN}]}', b"\xff\xfe", b""]
)
def test_malformed_json_is_a_422(client, raw):
    response = client.post(
        "/recommendations", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/recommendations", content=b'{"ratings": []}', headers=headers)
    assert_error(response, 415, "unsupported_media_type")


def test_oversized_bodies_are_a_413_declared_or_streamed(client):
    big = b'{"ratings": [' + b" " * (1 << 20) + b"]}"
    headers = {"Content-Type": "application/json"}
    assert_error(client.post("/recommendations", content=big, headers=headers), 413)

    def chunks():  # no Content-Length: the size is only known while streaming
        for _ in range(20):
            yield b" " * 8192

    assert_error(client.post("/recommendations", content=chunks(), headers=headers), 413)
    just_fits = b'{"ratings": [{"item": 1, "rating": 5}]}'
    just_fits += b" " * (MAX_BODY_BYTES - len(just_fits))
    assert client.post("/recommendations", content=just_fits, headers=headers).status_code == 200


def test_a_lying_content_length_is_refused(client):
    response = client.post("/recommendations", content=b"{}", headers={"Content-Length": "abc"})
    assert response.status_code == 400


def test_wrong_methods_and_paths_are_json_4xx(client):
    assert_error(client.delete("/health"), 405, "method_not_allowed")
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


# -- no stack traces -----------------------------------------------------------------------------


def test_an_unexpected_error_is_a_generic_500_logged_server_side(run_dir, caplog):
    app = create_app(run_dir)
    recommender = app.state.holder.current.recommender

    class Exploding:  # whatever the endpoint asks of it fails like a bug would
        def __getattr__(self, name):
            raise RuntimeError("secret internals /home/someone/model.py")

    recommender.seen = Exploding()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/users/1/recommendations")
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert body["detail"] == "the server hit an unexpected error; it was logged"
    assert "secret internals" in caplog.text


# -- reload --------------------------------------------------------------------------------------


@pytest.fixture()
def fresh(tmp_path):
    """A server of its own whose run directory the test may replace or break."""
    run = make_run(tmp_path / "run")
    with TestClient(create_app(run, admin_token=TOKEN)) as client:
        yield client, run


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_reload_is_disabled_without_a_configured_token(run_dir):
    for token in (None, ""):
        with TestClient(create_app(run_dir, admin_token=token)) as client:
            body = assert_error(client.post("/admin/reload", headers=auth()), 404, "admin_disabled")
        assert "MOVIEREC_ADMIN_TOKEN" in body["detail"]


@pytest.mark.parametrize(
    "headers",
    [{}, auth("wrong"), auth(TOKEN + "x"), {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
def test_reload_needs_the_right_token(client, headers):
    response = client.post("/admin/reload", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_reload_swaps_in_the_run_on_disk(fresh):
    client, run = fresh
    assert client.get("/health").json()["model"] == "embedding-net"
    make_run(run, "mf", seed=6)  # a training job replaces the run atomically
    assert client.get("/health").json()["model"] == "embedding-net"
    body = client.post("/admin/reload", headers=auth()).json()
    assert body["status"] == "reloaded" and body["model"] == "mf"
    assert client.get("/health").json()["model"] == "mf"
    assert (
        client.post("/recommendations", json={"ratings": [{"item": 1, "rating": 5}]}).json()[
            "method"
        ]
        == "ridge"
    )


def test_reload_ignores_any_path_in_the_request(fresh, tmp_path):
    client, _ = fresh
    other = make_run(tmp_path / "other", "bias")
    response = client.post("/admin/reload", headers=auth(), json={"run_dir": str(other)})
    assert response.json()["model"] == "embedding-net"


def test_a_bad_run_on_disk_keeps_the_old_model_serving(fresh):
    client, run = fresh
    before = client.get("/users/1/recommendations").json()
    data = bytearray((run / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (run / WEIGHTS).write_bytes(bytes(data))
    body = assert_error(client.post("/admin/reload", headers=auth()), 409, "bad_run")
    assert "keeps serving" in body["detail"] and "SHA-256" in body["detail"]
    assert client.get("/users/1/recommendations").json() == before
    (run / "run.json").unlink()
    assert_error(client.post("/admin/reload", headers=auth()), 409, "bad_run")
    assert client.get("/health").status_code == 200


def test_requests_during_reloads_never_fail(fresh):
    client, run = fresh
    failures: list[str] = []
    stop = threading.Event()

    def hammer(path: str) -> None:
        while not stop.is_set():
            response = client.get(path)
            if response.status_code != 200:
                failures.append(f"{path}: {response.status_code} {response.text}")

    paths = ["/users/1/recommendations?k=5", "/items/2/similar", "/predict?user=3&item=4"]
    threads = [threading.Thread(target=hammer, args=(p,)) for p in paths * 2]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(4):
            make_run(run, "mf" if round_ % 2 else "embedding-net", seed=round_)
            assert client.post("/admin/reload", headers=auth()).status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


def test_served_scores_are_finite_for_every_user(client, recommender):
    for user in recommender.encoder.user_ids[:10]:
        items = client.get(f"/users/{user}/recommendations?k=3").json()["items"]
        assert np.isfinite([i["predicted_rating"] for i in items]).all()


def test_health_is_not_ready_when_the_model_answers_nan(run_dir, monkeypatch):
    import movierec.serving.app as serving_app

    def diverged(path):
        recommender, run = load_run(path)
        with torch.no_grad():
            for parameter in recommender.model.parameters():
                parameter.fill_(float("nan"))
        return recommender, run

    monkeypatch.setattr(serving_app, "load_run", diverged)
    with TestClient(create_app(run_dir)) as nan_client:
        response = nan_client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "not-ready"
