"""benchmarks/ranking.py's per-(row, seed) cache: a killed run resumes without training again."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ranking  # the harness lives in benchmarks/, not in the package


def test_a_cached_run_is_read_back_and_a_changed_one_trains_again(tmp_path, monkeypatch):
    trained = []

    def fake_run_one(name, objective, options, seed, device, epochs):
        trained.append((name, seed, epochs))
        return {"ndcg@10": 0.1 * seed + (epochs or 0), "seed": seed}

    monkeypatch.setattr(ranking, "run_one", fake_run_one)
    cache = tmp_path / "cache"
    first = ranking.run_all([0, 1], "cpu", 2, only=["popularity"], cache=cache)
    assert trained == [("popularity", 0, 2), ("popularity", 1, 2)]
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".json"]  # no partial left

    again = ranking.run_all([0, 1, 2], "cpu", 2, only=["popularity"], cache=cache)
    assert trained[2:] == [("popularity", 2, 2)]  # only the new seed trains
    assert again[0]["runs"][:2] == first[0]["runs"]

    ranking.run_all([0], "cpu", 3, only=["popularity"], cache=cache)  # another epoch cap
    assert trained[3:] == [("popularity", 0, 3)]
    monkeypatch.setattr(ranking, "code_version", lambda: "another commit")
    ranking.run_all([0], "cpu", 3, only=["popularity"], cache=cache)  # other code
    assert trained[4:] == [("popularity", 0, 3)]


def test_without_a_cache_every_run_trains(monkeypatch):
    trained = []
    monkeypatch.setattr(ranking, "run_one", lambda *task: trained.append(task) or {"seed": 0})
    ranking.run_all([0], "cpu", 1, only=["popularity"])
    ranking.run_all([0], "cpu", 1, only=["popularity"])
    assert len(trained) == 2
