"""Start-up, reload, Host names, the admin token and the title search, in-process.

The connection-level attacks (oversized heads, slow clients) run against a real uvicorn in
``test_connection_limits.py``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import movierec.serving.app as serving_app
from movierec.errors import ArtifactError, ConfigError
from movierec.recommend import Recommender
from movierec.serving import create_app, serve
from movierec.serving.app import MAX_HEADERS, check_admin_token
from movierec.serving.routes import fold_text
from movierec.serving.server import LOOPBACK_NAMES, allowed_hosts_for, serving_threads
from tests.serving import TITLES, make_run

TOKEN = "s3cret-token_with.punctuation~"
ACCENTED = ["Cérémonie, La (1995)", "Ōkami (1999)", "Straße (2001)", "ﬁnal cut (1998)"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("hardening") / "run", titles=[*TITLES, *ACCENTED])


@pytest.fixture(scope="module")
def client(run_dir):
    with TestClient(create_app(run_dir)) as client:
        yield client


# -- start-up ------------------------------------------------------------------------------------


@pytest.fixture()
def held_precompute(monkeypatch):
    """Make the precompute wait for ``release.set()``; yields the event."""
    release = threading.Event()
    original = Recommender.precompute_scores

    def waiting(self, budget):
        assert release.wait(30), "the test never released the precompute"
        return original(self, budget)

    monkeypatch.setattr(Recommender, "precompute_scores", waiting)
    return release


def test_the_server_answers_at_once_and_the_same_while_the_scores_are_precomputed(
    run_dir, held_precompute
):
    app = create_app(run_dir, warm_in_background=True)
    users = [str(u) for u in app.state.holder.current.raw_users[:8]]

    def lists(client):
        return [client.get(f"/users/{u}/recommendations", params={"k": 15}).json() for u in users]

    with TestClient(app) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["scores"] == "precomputing"
        assert app.state.holder.current.recommender.precomputed_scores is None
        per_request = lists(client)
        assert all(body["items"] for body in per_request), per_request
        assert client.get("/items", params={"query": "toy"}).status_code == 200
        held_precompute.set()
        deadline = time.monotonic() + 30
        while client.get("/health").json()["scores"] != "precomputed":
            assert time.monotonic() < deadline, "the scores were never precomputed"
            time.sleep(0.05)
        assert app.state.holder.current.recommender.precomputed_scores is not None
        assert lists(client) == per_request  # the same items, in the same order, same scores


def test_health_says_per_request_when_the_matrix_does_not_fit(run_dir):
    app = create_app(run_dir, score_budget=0, warm_in_background=True)
    with TestClient(app) as client:
        assert client.get("/health").json()["scores"] == "per-request"
    with TestClient(create_app(run_dir)) as client:
        assert client.get("/health").json()["scores"] == "precomputed"


def test_a_reload_during_the_precompute_waits_for_it_and_counts_the_wait(run_dir, held_precompute):
    app = create_app(run_dir, admin_token=TOKEN, warm_in_background=True)
    with TestClient(app) as client:
        threading.Timer(0.3, held_precompute.set).start()
        started = time.perf_counter()
        body = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        took = time.perf_counter() - started
        assert 0.3 <= body["seconds"] <= took
        assert client.get("/health").json()["scores"] == "precomputed"


def test_a_bad_run_fails_before_the_server_starts(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ArtifactError):
        create_app(tmp_path / "run", warm_in_background=True)


def test_the_precompute_is_logged_before_and_after(run_dir, caplog):
    with caplog.at_level(logging.INFO, logger="movierec.serving"):
        create_app(run_dir)
    messages = [r.getMessage() for r in caplog.records if r.name == "movierec.serving"]
    assert "scoring 60 users x 40 items..." in messages
    assert any(m.startswith("scores ready in ") and m.endswith(" s") for m in messages)


def test_a_run_over_the_budget_says_it_is_scored_per_request(run_dir, caplog):
    with caplog.at_level(logging.INFO, logger="movierec.serving"):
        create_app(run_dir, score_budget=0)
    assert "scores are computed per request" in caplog.text


def test_the_precompute_scores_on_the_threads_requests_use(run_dir, monkeypatch):
    # oneDNN's last bits depend on the thread count: the matrix and a per-request list must
    # come from the same one.
    seen: list[int] = []
    original = Recommender.precompute_scores

    def recording(self, budget):
        seen.append(torch.get_num_threads())
        return original(self, budget)

    monkeypatch.setattr(Recommender, "precompute_scores", recording)
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            create_app(run_dir)
            assert seen[-1] == threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_worker_scores_on_one_torch_thread_unless_told():
    assert serving_threads() == 1
    assert serving_threads(3) == 3
    assert serving_threads(0) == 1


def test_reload_reports_the_time_of_the_whole_swap(run_dir, monkeypatch):
    app = create_app(run_dir, admin_token=TOKEN)
    original = serving_app._precompute

    def slow(recommender, budget):
        time.sleep(0.3)
        original(recommender, budget)

    monkeypatch.setattr(serving_app, "_precompute", slow)
    with TestClient(app) as client:
        started = time.perf_counter()
        body = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        took = time.perf_counter() - started
    assert 0.3 <= body["seconds"] <= took


# -- the admin token -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("token ", "whitespace"),
        (" token", "whitespace"),
        ("token\n", "whitespace"),
        ("tökén", "U+00F6"),
        ("to\tken", "U+0009"),
        ("clé🔑", "U+00E9"),
    ],
)
def test_an_admin_token_no_request_can_match_is_refused_at_start_up(run_dir, token, why):
    with pytest.raises(ConfigError, match=re.escape(why)) as raised:
        create_app(run_dir, admin_token=token)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match=re.escape(why)):
        serve(run_dir, admin_token=token)  # before loading or binding anything


def test_a_usable_admin_token_is_kept(run_dir):
    assert check_admin_token(TOKEN) == TOKEN
    assert check_admin_token("correct horse battery staple") == "correct horse battery staple"
    assert check_admin_token("") is None and check_admin_token(None) is None
    with TestClient(create_app(run_dir, admin_token=TOKEN)) as client:
        ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


# -- Host names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1", "localhost", "[::1]"]),
        ("localhost", ["localhost", "127.0.0.1", "[::1]"]),
        ("::1", ["[::1]", "localhost", "127.0.0.1"]),
        ("127.0.0.2", ["127.0.0.2", *LOOPBACK_NAMES]),
        ("192.168.1.20", ["192.168.1.20"]),
        ("fe80::1", ["[fe80::1]"]),
        ("Recs.Example.org", ["recs.example.org"]),
    ],
)
def test_the_default_allowed_hosts_are_the_bound_host(host, expected):
    assert allowed_hosts_for(host) == expected


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", ""])
def test_a_wildcard_bind_needs_an_explicit_allowed_host(host):
    with pytest.raises(ConfigError, match="--allowed-host"):
        allowed_hosts_for(host)
    assert allowed_hosts_for(host, ["recs.example.org", "*.example.org"]) == [
        "recs.example.org",
        "*.example.org",
    ]
    assert allowed_hosts_for(host, ["*"]) == ["*"]
    assert allowed_hosts_for(host, ["::1"]) == ["[::1]"]


@pytest.mark.parametrize("pattern", ["", "api.*.org", "*example.org", "localhost:8000", "a*"])
def test_a_host_pattern_the_check_cannot_use_is_one_line(pattern):
    with pytest.raises(ConfigError, match="--allowed-host"):
        allowed_hosts_for("127.0.0.1", [pattern])


def test_a_wildcard_bind_without_allowed_host_fails_before_loading(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("--host 0.0.0.0")):
        serve(tmp_path / "no-such-run", host="0.0.0.0")


def test_the_app_answers_only_its_allowed_hosts(run_dir):
    app = create_app(run_dir, allowed_hosts=["recs.example.org"])
    with TestClient(app, base_url="http://recs.example.org") as client:
        assert client.get("/health").status_code == 200
        rebound = client.get("/health", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400
        assert "model" not in rebound.text


# -- headers -------------------------------------------------------------------------------------


def test_more_headers_than_the_limit_are_a_431(client):
    many = {f"x-h{i}": "v" for i in range(MAX_HEADERS + 1)}
    response = client.get("/health", headers=many)
    assert response.status_code == 431
    assert response.json()["error"] == "too_many_headers"
    assert client.get("/health", headers=dict(list(many.items())[:50])).status_code == 200


# -- the title search ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("Ceremonie", "Cérémonie, La (1995)"),
        ("CÉRÉMONIE", "Cérémonie, La (1995)"),
        ("cérémonie", "Cérémonie, La (1995)"),
        ("okami", "Ōkami (1999)"),
        ("strasse", "Straße (2001)"),
        ("final", "ﬁnal cut (1998)"),
        ("toy", "Toy Story (1995)"),
    ],
)
def test_the_title_search_ignores_case_and_accents(client, query, title):
    body = client.get("/items", params={"query": query}).json()
    assert [i["title"] for i in body["items"]] == [title]


@pytest.mark.parametrize("query", ["\x00", "toy\x00", "\x00toy", "\x1b[31m", "a\nb"])
def test_a_control_character_in_the_query_is_a_422(client, query):
    response = client.get("/items", params={"query": query})
    assert response.status_code == 422, response.text
    assert "control characters" in response.json()["detail"]


@pytest.mark.parametrize("query", ["\u0301", " \u0301 "])
def test_a_query_that_folds_to_nothing_is_a_422(client, query):
    assert client.get("/items", params={"query": query}).status_code == 422


def test_fold_text():
    assert fold_text("Cérémonie") == "ceremonie"
    assert fold_text("ÅNGSTRÖM") == "angstrom"
    assert fold_text("Toy Story (1995)") == "toy story (1995)"


# -- the page ------------------------------------------------------------------------------------


def test_the_favicon_is_served(client):
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.text.startswith("<svg")
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/").text


# -- the command line ----------------------------------------------------------------------------


def test_movierec_serve_refuses_unsafe_settings_in_one_line(run_dir, monkeypatch):
    from tests.cli.invoke import fails_cleanly

    fails_cleanly(["serve", str(run_dir), "--host", "0.0.0.0"], "--allowed-host")
    fails_cleanly(
        ["serve", str(run_dir), "--host", "0.0.0.0", "--allowed-host", "a*"], "--allowed-host"
    )
    monkeypatch.setenv("MOVIEREC_ADMIN_TOKEN", "s3cret ")
    fails_cleanly(["serve", str(run_dir)], "whitespace")


def test_movierec_serve_passes_the_score_budget_in_mib(run_dir, monkeypatch):
    import movierec.serving
    from movierec.cli import app
    from tests.cli.invoke import fails_cleanly, runner

    calls = []
    monkeypatch.setattr(movierec.serving, "serve", lambda *a, **kw: calls.append(kw))
    assert runner.invoke(app, ["serve", str(run_dir)]).exit_code == 0
    assert runner.invoke(app, ["serve", str(run_dir), "--score-budget-mib", "0.5"]).exit_code == 0
    assert [c["score_budget"] for c in calls] == [serving_app.DEFAULT_SCORE_BUDGET, 2**19]
    fails_cleanly(["serve", str(run_dir), "--score-budget-mib", "-1"], "--score-budget-mib")
    fails_cleanly(["serve", str(run_dir), "--score-budget-mib", "inf"], "--score-budget-mib")
