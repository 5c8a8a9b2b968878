"""Each metric against an example computed by hand."""

import math

import numpy as np
import pytest

from movierec.evaluate import metrics

# Three users, top-3 lists. User A: hits at ranks 1 and 3 of 2 relevant; B: nothing of 1;
# C: a hit at rank 2 of 3 relevant.
HITS = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=bool)
N_RELEVANT = np.array([2, 1, 3])


def test_rmse_and_mae_by_hand():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert metrics.rmse([4.0], [4.0]) == 0.0


def test_precision_by_hand():
    assert metrics.precision_at_k(HITS, N_RELEVANT) == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)


def test_recall_by_hand():
    assert metrics.recall_at_k(HITS, N_RELEVANT) == pytest.approx((1 + 0 + 1 / 3) / 3)


def test_hit_rate_by_hand():
    assert metrics.hit_rate_at_k(HITS, N_RELEVANT) == pytest.approx(2 / 3)


def test_ndcg_by_hand():
    user_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    user_c = (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert metrics.ndcg_at_k(HITS, N_RELEVANT) == pytest.approx((user_a + 0 + user_c) / 3)


def test_ndcg_is_one_for_a_perfect_list():
    assert metrics.ndcg_at_k([[1, 1, 0]], [2]) == pytest.approx(1.0)


def test_map_by_hand():
    user_a = (1 / 1 + 2 / 3) / 2
    user_c = (1 / 2) / 3
    assert metrics.map_at_k(HITS, N_RELEVANT) == pytest.approx((user_a + 0 + user_c) / 3)


def test_coverage_by_hand():
    assert metrics.coverage([[0, 1], [1, 2]], 5) == pytest.approx(3 / 5)


def test_ranking_metrics_refuse_users_without_relevant_items():
    with pytest.raises(ValueError, match="at least one relevant"):
        metrics.recall_at_k([[1, 0]], [0])


def test_ranking_metrics_check_shapes():
    with pytest.raises(ValueError, match="must be"):
        metrics.precision_at_k([1, 0], [1])


def test_popularity_rank_by_hand():
    # Counts 5, 9, 5, 1: item 1 is first; items 0 and 2 share ranks 2-3; item 3 is fourth.
    assert metrics.popularity_rank([5, 9, 5, 1]).tolist() == [2.5, 1.0, 2.5, 4.0]


def test_novelty_by_hand():
    counts = [5, 9, 5, 1]
    assert metrics.novelty([[1, 3], [0, 1]], counts) == pytest.approx((1 + 4 + 2.5 + 1) / 4)
    assert metrics.novelty([1], counts) == 1.0
    with pytest.raises(ValueError):
        metrics.novelty([], counts)


def test_long_tail_share_and_median_item_ratings_by_hand():
    counts = [50, 9, 10, 1]  # items 1 and 3 have fewer than 10 training ratings
    shown = [[0, 1], [3, 2], [1, 0]]
    assert metrics.long_tail_share(shown, counts) == pytest.approx(3 / 6)
    assert metrics.long_tail_share(shown, counts, threshold=2) == pytest.approx(1 / 6)
    assert metrics.median_item_ratings(shown, counts) == pytest.approx((9 + 10) / 2)
    with pytest.raises(ValueError, match="at least one"):
        metrics.long_tail_share([], counts)
    with pytest.raises(ValueError, match="at least one"):
        metrics.median_item_ratings([], counts)
