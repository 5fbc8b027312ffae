"""bench/prefill_pause.py's arithmetic: re-warm lengths read from the command line, and each regime's ratio line."""

import argparse
import sys
from pathlib import Path

import pytest
from helpers import load_script

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def prefill_pause():
    sys.path.insert(0, str(BENCH))  # the script imports its neighbour overhead.py as the bench folder runs it
    try:
        yield load_script(BENCH / "prefill_pause.py", "prefill_pause")
    finally:
        sys.path.remove(str(BENCH))


def test_rewarm_lengths_are_seconds_within_bounds(prefill_pause):
    assert prefill_pause.rewarm_lengths("0.3,1") == [0.3, 1.0]
    for bad in ("0", "0.3,-1", "11"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"{bad}: give re-warm lengths above 0 s"):
            prefill_pause.rewarm_lengths(bad)


def test_a_regime_is_given_as_its_paired_ratio_to_back_to_back(prefill_pause):
    speeds = {"back-to-back": [200.0, 100.0, 300.0, 250.0, 150.0, 120.0],
              "idle": [190.0, 95.0, 150.0, 237.5, 142.5, 114.0]}  # 0.95 of back-to-back, but 0.5 in the third cycle
    assert prefill_pause.regime_line("back-to-back", speeds) == "back-to-back   median  175.0 tokens/s"
    # paired by cycle: the centre stays 0.95 (the ratio of the medians would be 146.25 / 175 = 0.836); with 6
    # cycles the interval runs from the smallest Walsh average (the 0.5 cycle with itself) to the largest
    assert prefill_pause.regime_line("idle", speeds) == ("idle           median  146.2 tokens/s, ratio 0.950 "
                                                         "(95% interval 0.500–0.950)")
