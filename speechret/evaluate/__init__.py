"""Evaluation (``evaluate.py``): protocols and studies, the honest evaluation set, retrieval
systems and baselines, reports. Metrics live in :mod:`speechret.metrics` (used by training too)."""
