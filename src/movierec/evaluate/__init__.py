"""Evaluation: pure ranking and rating metrics, a Recommender scored on a split, and the
published protocols (``u1``, 5-fold) that put movierec beside Surprise on the same rows."""
