"""movierec: a deep-learning movie recommender (the EmbeddingNet) with honest baselines.

Public API::

    from movierec import load_data, train, load_run
    result = train(data="ml-100k", split="u1", model="embedding-net", out="runs/demo")
    recommender, _ = load_run("runs/demo")
    recommender.top_n(196, k=10)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
