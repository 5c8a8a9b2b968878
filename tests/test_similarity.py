"""Item-item similarity: Jaccard co-occurrence by hand, cosine as before, the neighbour lists."""

import pandas as pd
import pytest
import torch

from movierec.errors import ConfigError, MovieRecError
from movierec.similarity import CoOccurrence, CosineOfVectors, check_similarity, neighbours
from tests.factories import build_recommender, everything


def _seen(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    prepared = everything(frame)
    return prepared


def test_jaccard_by_hand():
    # Item 10 rated by users 1, 2, 3; item 20 by 2, 3; item 30 by 4.
    rows = [(1, 10, 4.0), (2, 10, 5.0), (3, 10, 3.0), (2, 20, 4.0), (3, 20, 2.0), (4, 30, 5.0)]
    prepared = _seen(rows)
    enc = prepared.encoder
    source = CoOccurrence(prepared.seen, enc.n_items)
    i10, i20, i30 = (enc.item_index(i) for i in (10, 20, 30))
    row = source.rows(torch.tensor([i10]))[0]
    assert row[i20].item() == pytest.approx(2 / 3)  # |{2,3}| / |{1,2,3}|
    assert row[i30].item() == 0.0
    assert row[i10].item() == pytest.approx(1.0)
    near = neighbours(source, enc.n_items, 1)
    assert near[i20].item() == i10 and near[i10].item() == i20


def test_cosine_rows_are_the_cosine_of_the_vectors():
    vectors = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    rows = CosineOfVectors(vectors).rows(torch.tensor([0]))[0]
    assert rows.tolist() == pytest.approx([1.0, 2**-0.5, 0.0])


def test_similar_items_default_to_jaccard_and_choose_cosine(ratings=None):
    from movierec.data.synthetic import synthetic_ratings

    frame = synthetic_ratings(60, 40, 1500, seed=3)
    rec = build_recommender("mf", frame)
    item = rec.encoder.item_ids[0]
    jaccard = rec.similar_items(item, k=5)
    cosine = rec.similar_items(item, k=5, similarity="cosine")
    assert item not in [r.item for r in jaccard + cosine]
    scores = [r.score for r in jaccard]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    with pytest.raises(ConfigError, match="similarity must be one of jaccard, cosine"):
        rec.similar_items(item, similarity="ease-weights")
    bias = build_recommender("bias", frame)
    assert len(bias.similar_items(item, k=3)) == 3
    with pytest.raises(MovieRecError, match="no item embeddings"):
        bias.similar_items(item, similarity="cosine")
    assert check_similarity("cosine") == "cosine"
