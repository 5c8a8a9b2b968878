"""A new visitor's list and the explanations of a list: one Recommender method behind Python,
the command line and HTTP, correct for each model family."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

from movierec.artifacts import load_run
from movierec.cli import app
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError, UnknownIdError
from movierec.experiment import save_recommender
from movierec.models.base import FoldInOptions
from movierec.serving import create_app
from tests.cli.invoke import fails_cleanly, runner
from tests.factories import build_recommender

VISITOR = {3: 5.0, 7: 4.0, 11: 1.0, 20: 4.5}
FAMILIES = [("mf", "rating", {}), ("ease", "rating", {}), ("mf", "bpr", {})]


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(60, 40, 1500, seed=5)


@pytest.fixture(scope="module", params=FAMILIES, ids=[f"{m}-{o}" for m, o, _ in FAMILIES])
def saved(request, ratings, tmp_path_factory):
    name, objective, options = request.param
    fitted = build_recommender(name, ratings, objective=objective, **options)
    run_dir = save_recommender(fitted, tmp_path_factory.mktemp("visitor") / "run")
    return fitted, run_dir


def visitor_csv(path, ratings=VISITOR):
    pd.DataFrame({"item": list(ratings), "rating": list(ratings.values())}).to_csv(
        path, index=False
    )
    return path


def test_python_cli_and_http_give_the_same_list(saved, tmp_path):
    fitted, run_dir = saved
    loaded = load_run(run_dir)[0]
    assert loaded.objective == fitted.objective
    python = loaded.recommend_for_ratings(VISITOR, k=8)
    assert [r.item for r in fitted.recommend_for_ratings(VISITOR, k=8)] == [r.item for r in python]

    result = runner.invoke(
        app,
        [
            *("recommend", str(run_dir), "--ratings", str(visitor_csv(tmp_path / "v.csv"))),
            *("-k", "8", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)

    with TestClient(create_app(run_dir)) as client:
        body = [{"item": i, "rating": r} for i, r in VISITOR.items()]
        response = client.post("/recommendations", json={"ratings": body, "k": 8})
    assert response.status_code == 200, response.text
    http = response.json()

    items = [r.item for r in python]
    assert len(items) == 8
    assert [row["item"] for row in cli] == items
    assert [row["item"] for row in http["items"]] == items
    np.testing.assert_allclose([row["score"] for row in cli], [r.score for r in python])
    np.testing.assert_allclose(
        [row["predicted_rating"] for row in http["items"]], [r.score for r in python], atol=1e-4
    )
    assert http["method"] == loaded.fold_in_method


def test_a_visitors_rated_items_never_come_back(saved):
    fitted, _ = saved
    everything = fitted.recommend_for_ratings(VISITOR, k=1000)
    found = [r.item for r in everything]
    assert not set(VISITOR) & set(found)
    assert len(found) == fitted.encoder.n_items - len(VISITOR) == len(set(found))


def test_the_list_is_ordered_by_the_fold_in_and_shows_ratings_in_scale(saved):
    fitted, _ = saved
    found = fitted.recommend_for_ratings(VISITOR, k=1000)
    scores = [r.score for r in found]
    if fitted.predicts_ratings:  # a rating run: clipped ratings shown, unclipped ones rank
        low, high = fitted.rating_scale
        assert all(low <= s <= high for s in scores)
    else:
        assert scores == sorted(scores, reverse=True)


def test_ease_fold_in_is_the_exact_formula(ratings):
    rec = build_recommender("ease", ratings)
    rated = torch.from_numpy(rec.encoder.encode_items(np.array(list(VISITOR), dtype=object)))
    history = torch.zeros(rec.model.n_items)
    history[rated] = 1.0
    exact = (history.double() @ rec.model.weights.double()).float()
    exact[rated] = float("-inf")
    order = torch.sort(exact, descending=True, stable=True).indices[:10]
    found = rec.recommend_for_ratings(VISITOR, k=10)
    assert [r.item for r in found] == rec.encoder.decode_items(order.numpy()).tolist()
    np.testing.assert_allclose([r.score for r in found], exact[order].numpy(), rtol=1e-5)
    assert rec.fold_in_method == "exact"


def test_a_rating_run_ranks_by_the_unclipped_rating_fold_in(ratings):
    rec = build_recommender("mf", ratings)
    items = torch.from_numpy(rec.encoder.encode_items(np.array(list(VISITOR), dtype=object)))
    values = torch.tensor(list(VISITOR.values()), dtype=torch.float64)
    unclipped = rec.model.fold_in(items, values, rec.fallback, FoldInOptions()).float()
    unclipped[items] = float("-inf")
    order = torch.sort(unclipped, descending=True, stable=True).indices[:10]
    found = rec.recommend_for_ratings(VISITOR, k=10)
    assert [r.item for r in found] == rec.encoder.decode_items(order.numpy()).tolist()
    assert rec.fold_in_method == "ridge"


@pytest.mark.parametrize(
    ("name", "objective", "options", "vectors"),
    [
        ("mf", "bpr", {}, "user_factors"),
        ("mf", "joint", {"ranking_head": True}, "user_factors"),
        ("embedding-net", "joint", {"ranking_head": True, "rank_factors": 8}, "tower"),
        ("embedding-net", "softmax", {}, "user_embedding"),
        ("embedding-net", "bce", {"biases": True}, "user_embedding"),
    ],
)
def test_the_ranking_fold_in_fits_the_vector_the_ranking_score_reads(
    ratings, name, objective, options, vectors
):
    """A known user's own vector through the visitor's scorer ranks as the run ranks them."""
    rec = build_recommender(name, ratings, objective=objective, **options)
    ranker = rec.model.visitor_ranker(rec.item_side())
    rows = {
        "user_factors": lambda m: m.user_factors.weight,
        "tower": lambda m: m.rank_tower.user_factors.weight,
        "user_embedding": lambda m: m.user_embedding.weight,
    }[vectors](rec.model).detach()
    torch.testing.assert_close(ranker.start, rows.mean(dim=0))
    with torch.no_grad():
        mine = ranker.scores(rows[5])
        ranked = rec.score_users(torch.tensor([5]))[0]
    if rec.objective == "joint":  # the ranking head's logit itself
        torch.testing.assert_close(mine, ranked, atol=1e-5, rtol=1e-5)
    else:  # the same order (they differ by the user's own bias, or a monotone sigmoid)
        order = torch.argsort(mine, descending=True, stable=True)
        assert torch.equal(order, torch.argsort(ranked, descending=True, stable=True))
    assert rec.fold_in_method.endswith("-adam")


@pytest.mark.parametrize("loss", ["bpr", "bce", "softmax"])
def test_fitting_the_visitor_vector_ranks_the_rated_items_first(loss):
    from movierec.coldstart import fit_visitor_vector
    from movierec.models.base import VisitorRanker

    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(50, 6, generator=generator)
    liked = torch.tensor([3, 17, 41])  # three films alike: one taste explains them
    factors[liked] = 2 * torch.randn(6, generator=generator) + 0.1 * factors[liked]
    ranker = VisitorRanker(torch.zeros(6), lambda user: factors @ user, reg=1e-3)
    fitted = fit_visitor_vector(ranker, liked, loss, FoldInOptions(steps=100, lr=0.1))
    ranks = torch.argsort(torch.argsort(-(factors @ fitted)))
    assert sorted(ranks[liked].tolist()) == [0, 1, 2]  # first of 50 items


def test_ties_go_to_the_better_baseline_then_the_lower_item_index(ratings):
    rec = build_recommender("popularity", ratings)
    found = rec.recommend_for_ratings({1: 5.0}, k=1000)
    baseline = rec.fallback.global_mean + rec.fallback.item_bias.double()
    index = [int(rec.encoder.item_index(r.item)) for r in found]
    keys = [(-r.score, -float(baseline[i].float()), i) for r, i in zip(found, index, strict=True)]
    assert keys == sorted(keys)
    assert len({r.score for r in found}) < len(found)  # there are ties to break


DISLIKES = {3: 1.0, 7: 1.0, 11: 2.0}  # nothing at or above the middle of the scale


def test_a_visitor_who_liked_nothing_gets_the_baseline_list_everywhere(saved, tmp_path):
    from movierec.coldstart import visitor_top_k

    fitted, run_dir = saved
    found = fitted.recommend_for_ratings(DISLIKES, k=10)
    baseline = (fitted.fallback.global_mean + fitted.fallback.item_bias.double()).float()
    baseline = baseline.clamp(*fitted.rating_scale)
    key = baseline - fitted.shrink_penalty()
    key[torch.from_numpy(fitted.encoder.encode_items(np.array(list(DISLIKES))))] = -np.inf
    order = torch.sort(key, descending=True, stable=True).indices[:10]
    assert [r.item for r in found] == fitted.encoder.decode_items(order.numpy()).tolist()
    np.testing.assert_allclose([r.score for r in found], baseline[order].numpy(), rtol=1e-6)
    assert len({round(r.score, 4) for r in found}) > 1  # not ten 1.0s
    assert visitor_top_k(fitted, list(DISLIKES), list(DISLIKES.values()), 10).method == "baseline"
    path = visitor_csv(tmp_path / "dislikes.csv", DISLIKES)
    cli = json.loads(
        runner.invoke(app, ["recommend", str(run_dir), "--ratings", str(path), "--json"]).stdout
    )
    assert [row["item"] for row in cli] == [r.item for r in found]
    with TestClient(create_app(run_dir)) as client:
        body = [{"item": i, "rating": r} for i, r in DISLIKES.items()]
        http = client.post("/recommendations", json={"ratings": body, "k": 10}).json()
    assert [row["item"] for row in http["items"]] == [r.item for r in found]
    assert http["method"] == "baseline"  # the answer says how the list came, as Python does


def test_a_saturated_fold_in_is_ordered_by_its_key_then_the_baseline(ratings):
    from movierec.coldstart import visitor_scores

    rec = build_recommender("embedding-net", ratings)
    with torch.no_grad():  # push the output sigmoid into float32 saturation
        rec.model.output.weight.mul_(200.0)
    liked = {3: 5.0, 7: 5.0, 11: 5.0}
    scores = visitor_scores(rec, list(liked), list(liked.values()))
    assert int((scores.key == scores.key.max()).sum()) > 10  # ties a plain sort cannot order
    found = rec.recommend_for_ratings(liked, k=1000)
    index = [rec.encoder.item_index(r.item) for r in found]
    keys = [
        (-float(scores.key[i]), -float(scores.tie_break[i]), i) for i in index
    ]  # the unclipped key, then the item's baseline, then the lower index
    assert keys == sorted(keys)
    low, high = rec.rating_scale
    assert all(low <= r.score <= high for r in found)  # shown clipped, ranked unclipped


def test_a_frame_of_ratings_gives_the_same_list_as_a_mapping(ratings):
    rec = build_recommender("mf", ratings)
    frame = pd.DataFrame({"item_id": list(VISITOR), "rating": list(VISITOR.values())})
    assert rec.recommend_for_ratings(frame, 5) == rec.recommend_for_ratings(VISITOR, 5)
    with pytest.raises(ConfigError, match="rating column"):
        rec.recommend_for_ratings(pd.DataFrame({"item": [1]}), 5)
    with pytest.raises(UnknownIdError, match="4242"):
        rec.recommend_for_ratings({4242: 5.0}, 5)
    with pytest.raises(ConfigError, match="outside"):
        rec.recommend_for_ratings({1: 9.0}, 5)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("item,rating\n1,7\n", "outside the model's rating scale"),
        ("item,rating\n4242,5\n", "4242"),
        ("item,stars\n1,5\n", "rating column"),
        ("item,rating\n1,5\n1,4\n", "more than once"),
    ],
)
def test_bad_visitor_files_are_one_line_and_exit_2(saved, tmp_path, rows, match):
    _, run_dir = saved
    path = tmp_path / "visitor.csv"
    path.write_text(rows)
    message = fails_cleanly(["recommend", str(run_dir), "--ratings", str(path)], match)
    assert str(path) in message


def test_ratings_and_user_together_are_refused(saved, tmp_path):
    _, run_dir = saved
    path = visitor_csv(tmp_path / "v.csv")
    fails_cleanly(["recommend", str(run_dir), "--ratings", str(path), "--user", "1"], "--ratings")


# -- explanations --------------------------------------------------------------------------------


def test_ease_contributions_are_exact_and_sum_to_the_score(ratings):
    rec = build_recommender("ease", ratings)
    user_id = rec.encoder.user_ids[3]
    user = rec.encoder.user_index(user_id)
    top = rec.top_n(user_id, 3)
    for item in top:
        index = rec.encoder.item_index(item.item)
        every = rec.explain(user_id, item.item, n=1000)
        rated = rec.seen.items_of(user)
        assert len(every) == len(rated)
        score = float(rec.model.score_items(torch.tensor([user]))[0, index])
        assert sum(e.score for e in every) == pytest.approx(score, abs=1e-5)
        weights = rec.model.weights
        for e in every:
            assert e.score == pytest.approx(float(weights[rec.encoder.item_index(e.item), index]))
        best = rec.explain(user_id, item.item)
        assert [e.item for e in best] == [e.item for e in every[:3]]
        assert [e.score for e in best] == sorted((e.score for e in best), reverse=True)


def test_mf_explains_by_the_cosine_of_its_item_vectors(ratings):
    rec = build_recommender("mf", ratings)
    user_id = rec.encoder.user_ids[0]
    item = rec.top_n(user_id, 1)[0].item
    found = rec.explain(user_id, item, n=3)
    rated = rec.seen.items_of(rec.encoder.user_index(user_id))
    unit = torch.nn.functional.normalize(rec.model.item_vectors().detach(), dim=1)
    cosine = unit[rated] @ unit[rec.encoder.item_index(item)]
    best = rated[torch.sort(cosine, descending=True, stable=True).indices[:3]]
    assert [e.item for e in found] == rec.encoder.decode_items(best.numpy()).tolist()
    assert set(e.item for e in found) <= set(rec.encoder.decode_items(rated.numpy()).tolist())
    with pytest.raises(ConfigError, match="at least 1"):
        rec.explain(user_id, item, n=0)


def test_explanations_on_the_command_line_and_the_api(saved):
    fitted, run_dir = saved
    user = str(fitted.encoder.user_ids[0])
    table = runner.invoke(app, ["recommend", str(run_dir), "--user", user, "--explain"])
    assert table.exit_code == 0, table.output
    assert "because you liked" in table.stdout
    rows = json.loads(
        runner.invoke(
            app, ["recommend", str(run_dir), "--user", user, "--explain", "--json"]
        ).stdout
    )
    first = rows[0]
    expected = fitted.explain(user, first["item"])
    assert [b["item"] for b in first["because"]] == [e.item for e in expected]
    assert [b["title"] for b in first["because"]] == [e.title for e in expected]

    with TestClient(create_app(run_dir)) as client:
        plain = client.get(f"/users/{user}/recommendations?k=5").json()
        explained = client.get(f"/users/{user}/recommendations?k=5&explain=true").json()
    assert all("because" not in item for item in plain["items"])
    assert [i["item"] for i in explained["items"]] == [i["item"] for i in plain["items"]]
    for item in explained["items"]:
        expected = fitted.explain(user, item["item"])
        assert [b["item"] for b in item["because"]] == [e.item for e in expected]
        assert all(b["title"] for b in item["because"])
    fails_cleanly(["recommend", str(run_dir), "--all", "--explain"], "--explain")
