"""Evaluation: metrics (:mod:`speechret.evaluate.metrics`)."""
