"""Blending runs trained and saved from Python (no recorded job): the weights are fitted without
the data (features need it: `auto` stays plain and says why), and with ``data=`` the
feature-weighted blend is weighed and the test set scored."""

import pytest
import torch

from movierec import fit_recommender
from movierec.blend import blend_runs, fit_blend
from movierec.config import RunOptions
from movierec.data import RatingsData
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ArtifactError
from movierec.experiment import save_recommender


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("python-runs")
    data = RatingsData.from_frame(synthetic_ratings(120, 80, 6000, seed=3))
    torch.set_num_threads(1)
    options = RunOptions(seed=0, progress=False, threads=1)
    for name, spec in (("bias", "bias"), ("mf", "mf")):
        recommender = fit_recommender(data, spec, options, split="random:0.2")
        save_recommender(recommender, folder / name)
    return folder, data


def test_auto_is_plain_without_data_and_weighs_the_features_with_it(saved):
    folder, data = saved
    runs = [folder / "bias", folder / "mf"]
    plain = fit_blend(runs)
    assert plain.features is None and plain.features_from.startswith("plain: the runs record")
    assert set(plain.cv_rmse) == {"plain"}
    with pytest.raises(ArtifactError, match="pass data= to blend_runs"):
        blend_runs(runs, folder / "no-data")
    report = blend_runs(runs, folder / "blend", data=data)
    assert report["features_from"] == "cross-validation"
    assert set(report["cv_rmse"]) == {"plain", "features"}
    assert report["test"]["n_test"] > 0
