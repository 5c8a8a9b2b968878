"""Recommender: a trained model behind raw IDs.

The package: :mod:`~movierec.recommend.recommender` (the :class:`Recommender`),
:mod:`~movierec.recommend.ranking` (the ranking key, blocks of users),
:mod:`~movierec.recommend.results` (:class:`Recommendation`, list frames, raw IDs as plain
Python values), :mod:`~movierec.recommend.filters` (allow- and deny-lists),
:mod:`~movierec.recommend.visitor` (a visitor's ratings read and their fold-in ranked) and
:mod:`~movierec.recommend.explain` (similar items, explanations).

Raw IDs go in and come out; the :class:`IdEncoder` is the only thing that converts.

Ratings or scores: a run trained with the ``rating`` objective (the constructor's
``objective``, ``"rating"`` by default) by a model that predicts ratings predicts ratings,
clipped to the rating scale, and :meth:`Recommender.top_n` scores are predicted ratings; so
does a ``joint`` run, which ranks on the unclipped scores and shows them clipped. A run
trained with ``bpr`` or ``bce``, or a ranking-only model (``ease``, ``popularity``), produces
scores that only order items: :meth:`top_n` returns them raw (unclipped, labelled ``score``)
and :meth:`Recommender.predict` raises :class:`MovieRecError` saying the run predicts scores,
not ratings (:attr:`Recommender.predicts_ratings` tells which case holds).

Every list (:meth:`Recommender.top_n`, :meth:`Recommender.recommend`,
:meth:`Recommender.similar_items`, :meth:`Recommender.recommend_for_ratings`) takes an
allow-list (``items``) and a deny-list (``filter_items``) of raw item IDs; unknown IDs in either
are refused (:mod:`movierec.recommend.filters`).

A visitor the model never saw gets a list from a handful of ratings
(:meth:`Recommender.recommend_for_ratings`: the fold-in of :mod:`movierec.coldstart`, as the
run was trained; ranked on the unclipped score, ties to the better baseline; a visitor who
liked nothing gets the baseline list), and :meth:`Recommender.explain` says which rated items
a recommendation came from.

Serving precomputes every known user's scores once (:meth:`Recommender.precompute_scores`,
in blocks of users); :meth:`Recommender.top_indices` then ranks the stored rows, bit for bit
what it would compute: scoring is batch-invariant (a user's scores are the same bits alone or
in a block of any others, :meth:`Ranking._score <movierec.recommend.ranking.Ranking._score>`),
so ``top_n``, ``recommend``, evaluation and the stored matrix agree. ``Recommender.precision``
(``fp32``, exact, by default; ``auto``) says whether a deep network's per-pair layers may run
in bf16 where the CPU has native bf16 units.

Unknown-ID policy (documented in README):

- :meth:`Recommender.predict` with ``unknown="fallback"`` (evaluation's choice) scores a (user,
  item) pair the model never saw with the bias baseline fitted on the same training ratings:
  ``mu + b_u + b_i``, where an unknown side contributes 0. No untrained embedding row is used.
- ``unknown="error"`` (the CLI's and the API's choice for single lookups), :meth:`top_n` and
  :meth:`similar_items` raise :class:`UnknownIdError` naming the ID.
"""

from movierec.recommend.recommender import SCORE_ROWS, Recommender
from movierec.recommend.results import Recommendation

__all__ = ["SCORE_ROWS", "Recommendation", "Recommender"]
