"""The simulation's statistics: percentiles and batch means."""

from __future__ import annotations

import pytest

from routing.simulation import batch_means, percentile


def test_statistics_helpers() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 90) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    est = batch_means([float(i % 2) for i in range(4000)])
    assert est.value == pytest.approx(0.5)
    assert est.half_width == pytest.approx(0.0, abs=1e-12)
