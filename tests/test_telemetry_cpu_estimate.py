"""The CPU estimate: on this machine's real /proc/stat, and on written files with known answers."""

import math
import time

import pytest

from energytui.engine.telemetry import ESTIMATED, CpuEstimateSource, Unavailable, load_tdp_table
from energytui.engine.telemetry.cpu_estimate import (
    GENERIC_WATTS_PER_THREAD, match_cpu, parse_cpu_times, read_cpuinfo,
)

EPYC_CPUINFO = "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\nflags\t\t: fpu hypervisor avx2\n"


def proc_stat(user, system, idle, cpus=2, steal=0, guest=0):
    per_cpu = "".join(f"cpu{i} 1 0 1 1 0 0 0 0 0 0\n" for i in range(cpus))
    return f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} {guest} 0\n{per_cpu}intr 1 2 3\n"


def test_estimate_on_this_machines_proc_stat():
    source = CpuEstimateSource.probe()
    assert not isinstance(source, Unavailable), source
    busy_until = time.monotonic() + 0.1
    while time.monotonic() < busy_until:
        pass  # keep one CPU busy so the interval has clock ticks
    samples = source.read(time.monotonic_ns())
    source.close()
    assert len(samples) == 1
    sample = samples[0]
    assert sample.source == ESTIMATED and sample.device == "cpu" and sample.energy_j is None
    assert math.isfinite(sample.power_w) and sample.power_w >= 0
    assert sample.power_w <= source.model.watts_per_thread * source.visible_cpus + 1e-9
    assert source.method.startswith("estimated: CPU utilisation × ")
    assert f"{source.model.tdp_w:g} W / {source.model.threads} threads" in source.method
    assert source.update_period_s == pytest.approx(0.01, rel=0.5)


def test_table_entry_gives_tdp_per_thread_and_known_power(tmp_path):
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(user=1000, system=0, idle=1000))
    cpuinfo.write_text(EPYC_CPUINFO)
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo))
    assert source.method == "estimated: CPU utilisation × 280 W / 128 threads (AMD EPYC 7763, config/cpu_tdp.yaml)"
    assert "virtual machine" in source.assumption
    stat.write_text(proc_stat(user=1120, system=30, idle=1050))  # 150 busy of 200 jiffies on 2 CPUs
    (sample,) = source.read(1)
    assert sample.power_w == pytest.approx(1.5 * 280 / 128)
    (repeat,) = source.read(2)  # no tick since: the last interval's power stands
    assert repeat.power_w == sample.power_w
    source.close()


def test_user_tdp_beats_the_table_and_generic_default_is_declared(tmp_path):
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(1, 1, 1, cpus=4))
    cpuinfo.write_text("model name\t: Mystery CPU 9000\nflags\t: fpu\n")
    user = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo), cpu_tdp_w=65)
    assert "65 W / 4 threads (user-given --cpu-tdp" in user.method
    generic = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo))
    assert f"{GENERIC_WATTS_PER_THREAD * 4:g} W / 4 threads" in generic.method
    assert "generic default" in generic.assumption and "'Mystery CPU 9000' is not in" in generic.assumption
    assert "virtual machine" not in generic.assumption
    bad = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo), cpu_tdp_w=-5)
    assert isinstance(bad, Unavailable) and "positive" in bad.reason
    for source in (user, generic):
        source.close()


def test_steal_counts_as_not_ours_and_guest_is_not_counted_twice():
    busy, total = parse_cpu_times(proc_stat(user=100, system=50, idle=200, steal=30, guest=40).encode())
    assert (busy, total) == (150, 380)


@pytest.mark.parametrize("model_name, expected", [
    ("13th Gen Intel(R) Core(TM) i9-13900K", "Intel Core i9-13900K"),
    ("13th Gen Intel(R) Core(TM) i9-13900KF", "Intel Core i9-13900K"),
    ("13th Gen Intel(R) Core(TM) i9-13900KS", None),  # a 150 W part, not in the table
    ("AMD Ryzen 5 3600 6-Core Processor", "AMD Ryzen 5 3600"),
    ("AMD Ryzen 5 3600X 6-Core Processor", None),
    ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Platinum 8480+"),
    ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4"),
    ("AMD EPYC", None),
])
def test_table_patterns_match_real_model_names(model_name, expected):
    entry = match_cpu(model_name, load_tdp_table())
    assert (entry.name if entry else None) == expected


def test_table_entries_are_all_valid():
    table = load_tdp_table()
    assert len(table) >= 20
    assert all(entry.tdp_w > 0 and entry.threads > 0 for entry in table)


def test_cpuinfo_parsing(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(EPYC_CPUINFO + "\nprocessor\t: 1\nmodel name\t: other\n")
    assert read_cpuinfo(path) == ("AMD EPYC 7763 64-Core Processor", True)
