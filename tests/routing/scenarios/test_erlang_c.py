"""The engine against Erlang C by simulation."""

from __future__ import annotations

import pytest

from routing.scenarios.erlang_c import TOLERANCE, simulate_erlang_c


def test_engine_reproduces_erlang_c() -> None:
    """M/M/2 at occupancy 0.5 through the real engine: converges fast enough to make a
    5 % comparison meaningful with 300,000 arrivals (its 95 % intervals are ~1 % and ~3 %)."""
    r = simulate_erlang_c(agents=2, load=0.5, arrivals=300_000, seed=11)
    assert r.theory_p_wait == pytest.approx(1 / 3)
    # the comparison means something only if the simulation's own noise is well below 5 %
    assert r.p_wait.half_width < TOLERANCE / 2 * r.theory_p_wait
    assert r.mean_wait.half_width < TOLERANCE * r.theory_mean_wait
    assert r.p_wait_error <= TOLERANCE, r.as_dict()
    assert r.mean_wait_error <= TOLERANCE, r.as_dict()
    assert r.passed
