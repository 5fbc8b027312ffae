"""bench/overhead.py's verdict: the paired ratios' signed-rank interval against each target."""

from pathlib import Path

import pytest
from helpers import load_script

overhead = load_script(Path(__file__).resolve().parent.parent / "bench" / "overhead.py", "overhead")


# Two-sided 5 % critical values T of the Wilcoxon signed-rank test from published tables (the largest T with
# P(T <= t) <= 0.025): the interval is the (T + 1)-th smallest and largest Walsh averages.
PUBLISHED_CRITICAL_T = {6: 0, 7: 2, 8: 3, 9: 5, 10: 8, 12: 13, 15: 25, 20: 52, 25: 89, 30: 137}


@pytest.mark.parametrize(("n", "critical"), sorted(PUBLISHED_CRITICAL_T.items()))
def test_the_interval_takes_the_walsh_averages_the_published_critical_value_names(n, critical):
    values = [float(2 ** i) for i in range(n, 0, -1)]  # distinct Walsh averages, given out of order
    walsh = overhead.walsh_averages(values)
    assert len(walsh) == n * (n + 1) // 2 and walsh == sorted(walsh)
    assert overhead.signed_rank_interval(values) == (walsh[critical], walsh[-critical - 1])


def test_the_null_distribution_counts_every_sign_pattern_once():
    counts = overhead.signed_rank_distribution(4)
    assert sum(counts) == 2 ** 4 and len(counts) == 4 * 5 // 2 + 1
    assert counts == [1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1]  # T = 0..10 for ranks 1..4, by hand


def test_under_six_rounds_no_interval_holds_the_centre_with_95_percent():
    assert overhead.signed_rank_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # P(T = 0) = 1/32 > 0.025


def test_the_estimate_is_the_median_of_the_walsh_averages():
    assert overhead.hodges_lehmann([0.0, 1.0, 5.0]) == 1.75  # averages, sorted: 0, 0.5, 1, 2.5, 3, 5
    # sorted: -0.1 -0.05 0 0 0.05 | 0.1 4.95 5 5.05 10; one wild round moves the centre little (the mean is 2.5)
    assert overhead.hodges_lehmann([-0.1, 0.0, 0.1, 10.0]) == pytest.approx(0.075)


@pytest.mark.parametrize(("interval", "outcome"), [
    ((0.99, 1.01), "PASS"), ((0.98, 0.99), "PASS"),  # at the target counts as meeting it
    ((0.97, 1.01), "UNDECIDED"), ((0.97, 0.98), "UNDECIDED"),
    ((0.90, 0.979), "FAIL"), (None, "UNDECIDED"),
])
def test_verdict_needs_the_whole_interval_on_one_side_of_the_target(interval, outcome):
    assert overhead.verdict(interval, 0.98) == outcome
