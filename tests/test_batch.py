"""Batch files: IDs and pairs read with clear errors, tables written whole or not at all."""

import pandas as pd
import pytest

from movierec.batch import predict_pairs, read_ids, read_pairs, write_table
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError, DataError, UnknownIdsError
from tests.factories import build_recommender


@pytest.fixture(scope="module")
def recommender():
    return build_recommender("mf", synthetic_ratings(30, 20, 400, seed=1))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_table_round_trips_by_suffix(tmp_path, suffix):
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4], "score": [0.5, 0.25]})
    path = write_table(frame, tmp_path / f"t{suffix}")
    read = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    pd.testing.assert_frame_equal(read, frame)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"a": [1]}), path)
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error for an object column
        write_table(pd.DataFrame({"a": [object()]}), path)
    assert pd.read_parquet(path)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_write_table_refuses_an_unknown_suffix_or_folder(tmp_path):
    with pytest.raises(ConfigError, match="suffix"):
        write_table(pd.DataFrame(), tmp_path / "t.json")
    with pytest.raises(ConfigError, match="does not exist"):
        write_table(pd.DataFrame(), tmp_path / "nope" / "t.csv")


def test_read_ids_with_or_without_a_header(tmp_path):
    plain, headed = tmp_path / "plain.txt", tmp_path / "headed.csv"
    plain.write_text("5\n3\n\n")
    headed.write_text("name,user_id\nx,7\ny,8\n")
    assert read_ids(plain).tolist() == ["5", "3"]
    assert read_ids(headed).tolist() == ["7", "8"]
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_ids(tmp_path / "empty.txt")


def test_read_pairs_needs_user_and_item_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("user,movie\n1,2\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_pairs(path)


def test_predict_pairs_names_unknown_users_and_items_together(recommender):
    pairs = pd.DataFrame({"user": ["1", "424242"], "item": ["1", "999"]})
    with pytest.raises(UnknownIdsError, match=r"424242.*999"):
        predict_pairs(recommender, pairs, "in pairs.csv")
    known = pd.DataFrame({"user": ["1", "2"], "item": ["1", "2"]})
    predicted = predict_pairs(recommender, known, "in pairs.csv")
    assert predicted["prediction"].tolist() == pytest.approx(
        recommender.predict([1, 2], [1, 2]).tolist()
    )


def test_id_list_reads_a_file_or_ids_separated_by_commas(tmp_path):
    from movierec.batch import id_list

    path = tmp_path / "items.csv"
    path.write_text("item,title\n50,Star Wars\n181,Return of the Jedi\n")
    assert id_list(str(path), "--only").tolist() == ["50", "181"]
    assert id_list("50, 181,,172", "--only").tolist() == ["50", "181", "172"]
    with pytest.raises(DataError, match=r"--only .*nope\.txt: no such file"):
        id_list(str(tmp_path / "nope.txt"), "--only")
    with pytest.raises(ConfigError, match="--exclude names no item IDs"):
        id_list(",", "--exclude")


def test_predicted_pairs_keep_the_datasets_id_type(recommender):
    predicted = predict_pairs(recommender, pd.DataFrame({"user": ["01"], "item": ["2"]}), "here")
    assert predicted[["user", "item"]].values.tolist() == [[1, 2]]
    assert predicted["user"].dtype.kind == "i"
