"""Shared expectations of the canonical schema, for the reader tests of each layout."""

from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).parent / "fixtures"
RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def assert_canonical(ratings: pd.DataFrame, id_dtype=np.int64) -> None:
    assert list(ratings.columns) == RATING_COLUMNS
    assert ratings["rating"].dtype == np.float32
    assert ratings["timestamp"].dtype == np.int64
    for column in ("user_id", "item_id"):
        if id_dtype is str:
            assert pd.api.types.is_string_dtype(ratings[column].dtype)
        else:
            assert ratings[column].dtype == id_dtype
    assert isinstance(ratings.index, pd.RangeIndex)
