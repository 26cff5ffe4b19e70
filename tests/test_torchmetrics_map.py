"""Our tie-aware mAP (speechret/metrics.py, paper B eq. 17-18) against torchmetrics'
``RetrievalMAP`` on random tie-free distances: without ties the tie-aware expectation is the
plain AP, so both must agree to 1e-6 -- per query, in the mean, with queries that have no relevant
item left out (torchmetrics ``empty_target_action="skip"``) and with excluded pairs dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import retrieval_average_precision
from torchmetrics.retrieval import RetrievalMAP

from speechret.metrics import average_precisions, mean_average_precision


def _torchmetrics_map(distances: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None) -> float:
    keep = np.ones_like(relevant, dtype=bool) if exclude is None else ~exclude
    q_idx = np.broadcast_to(np.arange(distances.shape[0])[:, None], distances.shape)
    metric = RetrievalMAP(empty_target_action="skip")
    # score = 1 - distance (distances in [0, 1)): higher is closer.  Not -distance: torchmetrics 1.9's
    # RetrievalMAP.compute returned 0.0 for all-negative scores here.
    metric.update(torch.from_numpy(1.0 - distances[keep]), torch.from_numpy(relevant[keep]),
                  indexes=torch.from_numpy(q_idx[keep].astype(np.int64)))
    return float(metric.compute())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_equals_torchmetrics_retrieval_map_without_ties(seed):
    rng = np.random.default_rng(seed)
    q, n = 25, 60
    distances = rng.random((q, n))
    assert len(np.unique(distances)) == distances.size  # tie-free
    relevant = rng.random((q, n)) < 0.15
    relevant[3] = False  # a query with no relevant item: left out by both
    ours = mean_average_precision(distances, relevant)
    assert ours["n_queries_without_relevant"] >= 1
    assert ours["map"] == pytest.approx(_torchmetrics_map(distances, relevant), abs=1e-6)
    aps = average_precisions(distances, relevant)
    for i in range(q):
        if relevant[i].any():
            ref = retrieval_average_precision(torch.from_numpy(1.0 - distances[i]), torch.from_numpy(relevant[i]))
            assert aps[i] == pytest.approx(float(ref), abs=1e-6)
    # stable tie handling is the same thing when there are no ties
    assert mean_average_precision(distances, relevant, ties="stable")["map"] == pytest.approx(ours["map"], abs=1e-12)


def test_map_with_excluded_pairs_equals_torchmetrics_on_the_kept_pairs():
    rng = np.random.default_rng(7)
    distances = rng.random((12, 40))
    relevant = rng.random((12, 40)) < 0.2
    exclude = rng.random((12, 40)) < 0.1
    ours = mean_average_precision(distances, relevant, exclude=exclude)["map"]
    assert ours == pytest.approx(_torchmetrics_map(distances, relevant, exclude), abs=1e-6)
    assert ours != pytest.approx(mean_average_precision(distances, relevant)["map"], abs=1e-6)  # exclusion matters
