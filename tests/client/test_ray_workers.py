"""Each Ray worker's share of max_concurrency (a pure function: no Ray needed)."""

from __future__ import annotations

import pytest

from attrprompt_builder.client.ray_workers import concurrency_shares


@pytest.mark.parametrize(("max_concurrency", "workers"), [(16, 1), (16, 2), (16, 3), (17, 4), (5, 5), (64, 7), (1, 1)])
def test_concurrency_shares_add_up_exactly_to_max_concurrency(max_concurrency, workers):
    shares = concurrency_shares(max_concurrency, workers)
    assert len(shares) == workers
    assert sum(shares) == max_concurrency
    assert min(shares) >= 1
    assert max(shares) - min(shares) <= 1  # as even as whole numbers allow
