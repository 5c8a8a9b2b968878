"""Item to item: similar movies, and the rated items a recommendation came from.

- :class:`SimilaritySources`: the item-item scorers of one run (Jaccard co-occurrence in
  training, cosine of the model's item vectors), each built once, on first use.
- :func:`similar_indices`: the items most like one item (itself and banned items left out).
- :func:`explain_indices`: which of a user's rated items weigh most in their score of an item.
"""

from __future__ import annotations

import torch

from movierec.data.tensors import SeenItems
from movierec.errors import MovieRecError
from movierec.models.base import RatingModel
from movierec.similarity import DEFAULT_SIMILARITY, CoOccurrence, CosineOfVectors, check_similarity


class SimilaritySources:
    """The item-item similarity scorers of one run, built once per kind.

    Args:
        model: The trained model (its item vectors, for ``cosine``).
        seen: The training ratings (their co-occurrence, for ``jaccard``).
        model_name: How error messages name the model.
    """

    def __init__(self, model: RatingModel, seen: SeenItems, model_name: str):
        self._model, self._seen, self._name = model, seen, model_name
        self._built: dict[str, CoOccurrence | CosineOfVectors] = {}

    def get(self, similarity: str | None = None) -> CoOccurrence | CosineOfVectors:
        """The scorer of ``similarity`` (default :data:`DEFAULT_SIMILARITY`).

        Raises:
            ConfigError: An unknown similarity.
            MovieRecError: ``cosine`` for a model without item vectors.
        """
        name = check_similarity(similarity or DEFAULT_SIMILARITY)
        if name not in self._built:
            if name == "jaccard":
                self._built[name] = CoOccurrence(self._seen, self._model.n_items)
            else:
                vectors = self._model.item_vectors()
                if vectors is None:
                    raise MovieRecError(
                        f"model {self._name!r} has no item embeddings to compare; use "
                        f"--similarity jaccard, or an embedding-net or mf run"
                    )
                self._built[name] = CosineOfVectors(vectors)
        return self._built[name]


@torch.inference_mode()
def similar_indices(
    source: CoOccurrence | CosineOfVectors,
    item: int,
    k: int,
    banned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` items most similar to ``item``: ``(item_idx [<=k], similarity [<=k])``.

    Best first, ties to the lower item index; the item itself and ``banned`` items (bool
    ``[n_items]``) are never listed.
    """
    scores = source.rows(torch.tensor([item]))[0].clone()
    scores[item] = float("-inf")
    if banned is not None:
        scores[banned] = float("-inf")
    # A stable sort, not topk: Jaccard ties a lot, and ties must go the same way (the lower
    # item index first) whatever else a filter took out.
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    order = order[torch.isfinite(scores[order])]
    return order, scores[order]


@torch.inference_mode()
def explain_indices(
    model: RatingModel, seen: SeenItems, sources: SimilaritySources, user: int, item: int, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``user``'s rated items that weigh most in their score of ``item``:
    ``(item_idx [<=n] int64, weight [<=n] float32)``, largest first (ties: lower index).

    The model's exact contributions where it has them (EASE), else the cosine of its item
    vectors, else Jaccard co-occurrence (see ``Recommender.explain``).
    """
    exact = model.explain_weights(user, item)
    if exact is not None:
        rated, weights = exact[0], exact[1].float()
    else:
        rated = seen.items_of(user)
        kind = "cosine" if model.item_vectors() is not None else "jaccard"
        weights = sources.get(kind).rows(torch.tensor([item]))[0][rated].float()
    order = torch.sort(weights, descending=True, stable=True).indices[:n]
    return rated[order], weights[order]
