"""Encoded tensors and the seen-items index."""

import pandas as pd
import torch

from movierec.data.encoder import IdEncoder
from movierec.data.tensors import RatingTensors, SeenItems


def test_from_frame_encodes_and_drops_unknown_ids():
    train = pd.DataFrame({"user_id": [1, 2], "item_id": [5, 6], "rating": [4.0, 3.0]})
    encoder = IdEncoder.fit(train)
    test = pd.DataFrame({"user_id": [2, 3, 1], "item_id": [5, 5, 7], "rating": [1.0, 2.0, 5.0]})
    tensors = RatingTensors.from_frame(test, encoder)
    assert tensors.user_idx.tolist() == [1]
    assert tensors.item_idx.tolist() == [0]
    assert tensors.rating.dtype == torch.float32
    assert tensors.n_unknown == 2


def test_seen_items_mask_matches_the_ratings():
    users = torch.tensor([2, 0, 2, 2, 0])
    items = torch.tensor([3, 1, 0, 3, 2])
    seen = SeenItems.from_tensors(RatingTensors(users, items, torch.ones(5)), n_users=4, n_items=5)
    assert sorted(seen.items_of(2).tolist()) == [0, 3, 3]
    mask = seen.mask(torch.tensor([2, 1, 0]))
    expected = torch.zeros(3, 5, dtype=torch.bool)
    expected[0, [0, 3]] = True
    expected[2, [1, 2]] = True
    assert torch.equal(mask, expected)
