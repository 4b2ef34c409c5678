from collections import Counter

from miresga_policies.round_robin import RoundRobin, smooth_weighted_schedule

from miresga_core import Address, Backend


def backends(*weights):
    return [Backend(Address("10.0.0.1", 1000 + i), w, index=i) for i, w in enumerate(weights)]


def test_weights_exact_over_a_cycle_and_smooth():
    assert smooth_weighted_schedule([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]
    rr = RoundRobin(backends(3, 2, 1))
    picks = Counter(rr.pick(None, None).index for _ in range(600))
    assert picks == {0: 300, 1: 200, 2: 100}


def test_exclude_and_empty():
    rr = RoundRobin(backends(1, 1))
    assert {rr.pick(None, None, frozenset({0})).index for _ in range(4)} == {1}
    assert rr.pick(None, None, frozenset({0, 1})) is None
    assert RoundRobin([]).pick(None, None) is None
