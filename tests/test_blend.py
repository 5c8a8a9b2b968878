"""The blend's ridge on hand-made numbers: known weights recovered, the penalty shrinks them,
cross-validation picks no penalty for exact data and a large one for noise."""

import numpy as np
import pytest

from movierec.blend import ALPHAS, cross_validate, ridge


@pytest.fixture(scope="module")
def columns():
    """Three correlated "members": a common signal plus each one's own error."""
    rng = np.random.default_rng(0)
    signal = rng.uniform(1, 5, 2000)
    return signal[:, None] + rng.normal(0, 0.3, (2000, 3))


def test_least_squares_recovers_known_weights_and_intercept(columns):
    target = 0.4 + columns @ np.array([0.2, 0.5, 0.3])
    weights, intercept = ridge(columns, target, alpha=0.0)
    np.testing.assert_allclose(weights, [0.2, 0.5, 0.3], atol=1e-9)
    assert intercept == pytest.approx(0.4, abs=1e-9)


def test_the_intercept_is_not_penalised_and_the_penalty_shrinks_the_weights(columns):
    target = 0.4 + columns @ np.array([0.2, 0.5, 0.3])
    norms, predicted_means = [], []
    for alpha in (0.0, 0.01, 0.1, 1.0, 100.0):
        weights, intercept = ridge(columns, target, alpha)
        norms.append(float(np.linalg.norm(weights)))
        predicted_means.append(float((columns @ weights + intercept).mean()))
    assert norms == sorted(norms, reverse=True) and norms[-1] < 0.05 * norms[0]
    # However hard the weights are pushed to zero, the fit stays centred on the target.
    np.testing.assert_allclose(predicted_means, target.mean(), atol=1e-9)


def test_duplicate_members_share_their_weight(columns):
    doubled = np.column_stack([columns[:, 0], columns[:, 0]])
    target = 1.0 + 0.8 * columns[:, 0]
    weights, intercept = ridge(doubled, target, alpha=0.0)
    np.testing.assert_allclose(weights, [0.4, 0.4], atol=1e-9)
    assert intercept == pytest.approx(1.0, abs=1e-9)


def test_cross_validation_picks_no_penalty_for_exact_data_and_a_large_one_for_noise(columns):
    exact = 0.4 + columns @ np.array([0.2, 0.5, 0.3])
    assert cross_validate(columns, exact) == (0.0, pytest.approx(0.0, abs=1e-9))
    noise = np.random.default_rng(1).normal(3, 1, len(columns))  # unrelated to every column
    chosen, error = cross_validate(columns, noise)
    assert chosen >= 0.1 and chosen in ALPHAS
    assert error == pytest.approx(1.0, abs=0.05)  # the noise's own spread: nothing explained
