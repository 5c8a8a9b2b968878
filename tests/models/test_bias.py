"""The closed-form biases: an exact fit without shrinkage, and shrinkage toward zero."""

import pytest
import torch

from movierec.models.bias import fit_biases


def test_closed_form_biases_recover_planted_offsets():
    # Every user rates every item: r = 3 + u_bias + i_bias exactly; no shrinkage -> exact fit.
    user_bias = torch.tensor([-1.0, 0.0, 1.0])
    item_bias = torch.tensor([0.5, -0.5])
    users = torch.arange(3).repeat_interleave(2)
    items = torch.arange(2).repeat(3)
    ratings = 3 + user_bias[users] + item_bias[items]
    fitted = fit_biases(users, items, ratings, 3, 2, reg_user=0, reg_item=0, iterations=20)
    assert fitted.global_mean == pytest.approx(3.0)
    torch.testing.assert_close(fitted.user_bias, user_bias)
    torch.testing.assert_close(fitted.item_bias, item_bias)


def test_bias_shrinkage_pulls_rare_items_toward_zero():
    users = torch.tensor([0, 1, 2, 0])
    items = torch.tensor([0, 0, 0, 1])
    ratings = torch.tensor([5.0, 5.0, 5.0, 5.0 - 4.0])
    fitted = fit_biases(users, items, ratings, 3, 2, reg_user=0, reg_item=10)
    raw_item_1 = 1.0 - float(ratings.mean())
    assert abs(float(fitted.item_bias[1])) < abs(raw_item_1)
