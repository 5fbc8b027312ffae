"""bench/overhead.py's verdict: the median paired ratio's distribution-free interval against each target."""

import math
from pathlib import Path

import pytest
from helpers import load_script

overhead = load_script(Path(__file__).resolve().parent.parent / "bench" / "overhead.py", "overhead")


def _coverage(n: int, k: int) -> float:
    """The chance that the k-th smallest and k-th largest of n values hold their median."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n


@pytest.mark.parametrize(("n", "k"), [(6, 1), (8, 1), (9, 2), (10, 2), (20, 6), (30, 10), (40, 14)])
def test_the_interval_is_the_narrowest_pair_of_order_statistics_with_95_percent(n, k):
    values = [float(v) for v in range(n, 0, -1)]  # given out of order: the interval sorts them
    assert overhead.median_interval(values) == (k, n + 1 - k)
    assert _coverage(n, k) >= 0.95 > _coverage(n, k + 1)


def test_under_six_rounds_no_pair_holds_the_median_with_95_percent():
    assert _coverage(5, 1) < 0.95
    assert overhead.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None


@pytest.mark.parametrize(("interval", "outcome"), [
    ((0.99, 1.01), "PASS"), ((0.98, 0.99), "PASS"),  # at the target counts as meeting it
    ((0.97, 1.01), "UNDECIDED"), ((0.97, 0.98), "UNDECIDED"),
    ((0.90, 0.979), "FAIL"), (None, "UNDECIDED"),
])
def test_verdict_needs_the_whole_interval_on_one_side_of_the_target(interval, outcome):
    assert overhead.verdict(interval, 0.98) == outcome
