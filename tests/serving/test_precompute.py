"""The precomputed score matrix: the same answers as ``Recommender.top_n``, rebuilt on reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from movierec.artifacts import load_run
from movierec.serving import create_app
from movierec.serving.app import load_served
from tests.serving import make_run

TOKEN = "token"


@pytest.fixture(scope="module", params=["embedding-net", "mf", "ease"])
def run_dir(request, tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("precompute") / "run", request.param)


def ranked(recommender, raw_user, k: int, exclude_seen: bool) -> tuple[list, list[float]]:
    found = recommender.top_n(raw_user, k, exclude_seen=exclude_seen)
    return [r.item for r in found], [r.score for r in found]


@pytest.mark.parametrize("budget", [None, 0], ids=["precomputed", "per-request"])
def test_top_k_is_exactly_top_n(run_dir, budget):
    served = load_served(run_dir) if budget is None else load_served(run_dir, budget)
    assert (served.recommender.precomputed_scores is None) == (budget == 0)
    recommender = load_run(run_dir)[0]
    users = recommender.encoder.user_ids.tolist()
    for raw_user in users[:: max(1, len(users) // 8)]:
        user = served.user_index(str(raw_user))
        for exclude_seen in (True, False):
            for k in (1, 5, 40, 1000):
                items, scores = served.top_k(user, k, exclude_seen)
                got = ([served.raw_items[i] for i in items], scores)
                # Exactly: the same items in the same order, and bit-identical float scores.
                assert got == ranked(recommender, raw_user, k, exclude_seen)


def test_the_api_answers_as_top_n(run_dir):
    recommender = load_run(run_dir)[0]
    with TestClient(create_app(run_dir)) as client:
        for raw_user in recommender.encoder.user_ids.tolist()[:6]:
            for exclude_seen in (True, False):
                body = client.get(
                    f"/users/{raw_user}/recommendations",
                    params={"k": 12, "exclude_seen": exclude_seen},
                ).json()
                items, scores = ranked(recommender, raw_user, 12, exclude_seen)
                assert [i["item"] for i in body["items"]] == items
                assert [i["predicted_rating"] for i in body["items"]] == [
                    round(s, 4) for s in scores
                ]


def test_user_ids_resolve_as_the_encoder_resolves_them(run_dir):
    served = load_served(run_dir)
    encoder = served.recommender.encoder
    for idx, raw in enumerate(encoder.user_ids.tolist()):
        assert served.user_index(str(raw)) == idx == encoder.user_index(str(raw))
    # Spellings the fast lookup does not hold still follow the encoder's rules.
    first = encoder.user_ids.tolist()[0]
    assert served.user_index(f"0{first}") == encoder.user_index(f"0{first}")


def test_a_matrix_over_the_budget_is_not_built(run_dir):
    encoder = load_run(run_dir)[0].encoder
    need = 4 * encoder.n_users * encoder.n_items
    assert load_served(run_dir, need).recommender.precomputed_scores is not None
    assert load_served(run_dir, need - 1).recommender.precomputed_scores is None


def test_reload_recomputes_the_scores(tmp_path):
    run = make_run(tmp_path / "run", seed=1)
    app = create_app(run, admin_token=TOKEN)
    holder = app.state.holder
    with TestClient(app) as client:
        before = holder.current.recommender.precomputed_scores
        make_run(run, "mf", seed=2)  # a different model on disk
        reloaded = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reloaded.status_code == 200, reloaded.text
        recommender = holder.current.recommender
        after = recommender.precomputed_scores
        assert after is not before
        one_at_a_time = [
            recommender.score_users(torch.tensor([u])) for u in range(recommender.encoder.n_users)
        ]
        assert torch.equal(after, torch.cat(one_at_a_time))
        assert not torch.equal(after, before)
        body = client.get("/users/3/recommendations?k=7").json()
        assert [i["item"] for i in body["items"]] == ranked(recommender, 3, 7, True)[0]
