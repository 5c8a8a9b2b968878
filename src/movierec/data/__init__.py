"""Data: the MovieLens catalogue and cache, downloads, the offline mirror, and the readers.

- :mod:`~movierec.data.catalogue`: :data:`CATALOGUE`, :func:`cache_dir`, :func:`cached_path`,
  :func:`fetch`.
- :mod:`~movierec.data.download`: HTTP download with checksums, safe atomic zip extraction.
- :mod:`~movierec.data.mirror`: ml-100k rebuilt from the ``recbole`` wheel on PyPI.
- :mod:`~movierec.data.readers`: every MovieLens layout and generic ratings files, normalised to
  ``user_id, item_id, rating, timestamp``; :func:`load_data` for a name, folder or file.
"""

from movierec.data.catalogue import (
    CATALOGUE,
    DatasetSpec,
    FetchResult,
    cache_dir,
    cached_path,
    fetch,
)
from movierec.data.mirror import build_ml100k_from_recbole
from movierec.data.readers import RatingsData, load_data, read_movielens, read_ratings_file

__all__ = [
    "CATALOGUE",
    "DatasetSpec",
    "FetchResult",
    "RatingsData",
    "build_ml100k_from_recbole",
    "cache_dir",
    "cached_path",
    "fetch",
    "load_data",
    "read_movielens",
    "read_ratings_file",
]
