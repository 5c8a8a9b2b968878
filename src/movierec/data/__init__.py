"""Data: the MovieLens catalogue and cache, downloads, the offline mirror, and the readers.

- :mod:`~movierec.data.catalogue`: :data:`CATALOGUE`, :func:`cache_dir`, :func:`cached_path`,
  :func:`fetch`.
- :mod:`~movierec.data.download`: HTTP download with checksums, safe atomic zip extraction.
- :mod:`~movierec.data.mirror`: ml-100k rebuilt from the ``recbole`` wheel on PyPI.
- :mod:`~movierec.data.schema`: :class:`RatingsData`, the canonical
  ``user_id, item_id, rating, timestamp`` frame every reader returns.
- :mod:`~movierec.data.policies`: :class:`DataPolicy` (duplicates, rating scale, out-of-scale
  ratings) and the one step that applies it.
- :mod:`~movierec.data.parsing`: reading text with pandas' C parser; where in a file a problem is.
- :mod:`~movierec.data.movielens`, :mod:`~movierec.data.netflix`, :mod:`~movierec.data.files`:
  one reader per layout (:func:`read_movielens`, :func:`read_ratings_file`; a DataFrame through
  the same checks: :func:`~movierec.data.files.read_frame`).
- :mod:`~movierec.data.metadata`: item and user metadata from a frame, any file, or the
  MovieLens item file beside a ratings file.
- :mod:`~movierec.data.loading`: :func:`load_data` for a name, folder, file or DataFrame.
"""

from movierec.data.catalogue import (
    CATALOGUE,
    DatasetSpec,
    FetchResult,
    cache_dir,
    cached_path,
    fetch,
)
from movierec.data.files import read_ratings_file
from movierec.data.loading import load_data
from movierec.data.mirror import build_ml100k_from_recbole
from movierec.data.movielens import read_movielens
from movierec.data.policies import DataPolicy
from movierec.data.schema import RatingsData

__all__ = [
    "CATALOGUE",
    "DataPolicy",
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
