"""The CPU estimate: on this machine's real /proc/stat, and on written files with known answers."""

import math
import time

import pytest

from energytui.engine.telemetry import ESTIMATED, CpuEstimateSource, Unavailable, load_tdp_table
from energytui.engine.telemetry.cpu_estimate import (
    GENERIC_WATTS_PER_THREAD, EstimateParameters, load_static_power, match_cpu, parse_cpu_times, parse_method,
    read_cpuinfo,
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
    assert sample.source == ESTIMATED and sample.device == "cpu" and sample.energy_j > 0  # cumulative, like a counter
    assert math.isfinite(sample.power_w) and sample.power_w >= source.model.static_w(source.visible_cpus) > 0
    assert sample.power_w <= source.model.watts_per_thread * source.visible_cpus + 1e-9
    assert source.method.startswith("estimated: ") and " W static (" in source.method
    assert f"of {source.model.tdp_w:g} W TDP" in source.method and f"/ {source.model.threads} threads" in source.method
    assert source.update_period_s == pytest.approx(0.01, rel=0.5)


def test_table_entry_gives_tdp_per_thread_and_known_power(tmp_path):
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(user=1000, system=0, idle=1000))
    cpuinfo.write_text(EPYC_CPUINFO)
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo))
    # The VM sees 2 of the EPYC's 128 threads: it is charged 2/128 of the package's static 36 %.
    assert source.method == ("estimated: 1.57 W static (36% of 280 W TDP × 2/128 CPUs visible) + CPU utilisation × "
                             "1.4 W per busy thread (the other 64% / 128 threads); TDP: AMD EPYC 7763, "
                             "config/cpu_tdp.yaml; static share: AMD EPYC 7763's own, config/cpu_tdp.yaml; energy: "
                             "the model over the busy share of the clock ticks between readings at each window's edges")
    assert "virtual machine" in source.assumption and "AnandTech" in source.assumption
    assert "idle power is 1.57 W" in source.assumption
    stat.write_text(proc_stat(user=1120, system=30, idle=1050))  # 150 busy of 200 jiffies on 2 CPUs
    (sample,) = source.read(1)
    assert sample.power_w == pytest.approx(0.36 * 280 * 2 / 128 + 1.5 * 0.64 * 280 / 128)
    (repeat,) = source.read(2)  # no tick since: the last interval's power stands
    assert repeat.power_w == sample.power_w
    source.close()


def test_energy_adds_each_interval_at_the_power_of_its_own_ticks(tmp_path):
    """--cpu-tdp 20 on 2 CPUs, static share 0.3: 6 W idle, 20 W with both busy. The energy is cumulative, like a
    counter's, so a window's energy is the difference of the readings at its edges."""
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(user=1000, system=0, idle=1000))
    cpuinfo.write_text("model name\t: Mystery CPU 9000\n")
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo), cpu_tdp_w=20, cpu_static_share=0.3)
    t0 = time.monotonic_ns()
    stat.write_text(proc_stat(user=1200, system=0, idle=1000))  # both CPUs busy
    (busy,) = source.read_edge(t0 + 2 * 10**9)
    assert busy.power_w == pytest.approx(20.0) and busy.energy_j >= 20.0 * 2  # opened before t0
    opened_j = busy.energy_j - 20.0 * 2
    (same,) = source.read(t0 + 3 * 10**9)  # no tick since: the interval goes at the last power
    assert same.energy_j == pytest.approx(opened_j + 60.0)
    stat.write_text(proc_stat(user=1250, system=0, idle=1150))  # 50 busy of 200 jiffies: 6 + 0.25 × 2 × 7 W
    (quarter,) = source.read(t0 + 5 * 10**9)
    assert quarter.power_w == pytest.approx(9.5) and quarter.energy_j == pytest.approx(opened_j + 60.0 + 19.0)
    (early,) = source.read(t0)  # a reading stamped before the last one (another thread): never backwards
    assert early.t_ns == quarter.t_ns and early.energy_j == quarter.energy_j
    stat.write_text(proc_stat(user=1300, system=0, idle=1150))  # 50 busy of 50 (a counter stepping oddly)
    (capped,) = source.read(t0 + 6 * 10**9)
    assert capped.power_w == pytest.approx(20.0)  # never above every visible CPU busy
    source.close()


def test_user_tdp_beats_the_table_and_generic_default_is_declared(tmp_path):
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(1, 1, 1, cpus=4))
    cpuinfo.write_text("model name\t: Mystery CPU 9000\nflags\t: fpu\n")
    user = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo), cpu_tdp_w=65)
    assert "of 65 W TDP)" in user.method and "/ 4 threads); TDP: user-given --cpu-tdp" in user.method
    generic = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo))
    assert f"of {GENERIC_WATTS_PER_THREAD * 4:g} W TDP)" in generic.method and "/ 4 threads)" in generic.method
    # an unknown name shows no class: the table's unknown class (desktop), said to be assumed
    assert "static share: desktop class (assumed: its name shows no class)" in generic.method
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


def _power_at(tmp_path, cpuinfo_text, busy_jiffies, **options) -> tuple[float, CpuEstimateSource]:
    """Power of the estimate with `busy_jiffies` of 200 busy on 2 CPUs (0: idle), and the source."""
    stat, cpuinfo = tmp_path / "stat", tmp_path / "cpuinfo"
    stat.write_text(proc_stat(user=1000, system=0, idle=1000))
    cpuinfo.write_text(cpuinfo_text)
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(cpuinfo), **options)
    stat.write_text(proc_stat(user=1000 + busy_jiffies, system=0, idle=1200 - busy_jiffies))
    (sample,) = source.read(1)
    source.close()
    return sample.power_w, source


@pytest.mark.parametrize("busy, watts", [(0, 0.3 * 20), (100, 0.3 * 20 + 0.7 * 10), (200, 20.0)])
def test_static_plus_dynamic_power_with_a_user_share(tmp_path, busy, watts):
    """--cpu-tdp 20 on 2 CPUs, --cpu-static-share 0.3: 6 W idle, +7 W per busy CPU, 20 W with both busy."""
    power, source = _power_at(tmp_path, "model name\t: Mystery CPU 9000\n", busy, cpu_tdp_w=20, cpu_static_share=0.3)
    assert power == pytest.approx(watts)
    assert source.method.startswith("estimated: 6 W static (30% of 20 W TDP) + CPU utilisation × 7 W per busy "
                                    "thread (the other 70% / 2 threads)")
    assert "static share: user-given --cpu-static-share" in source.method


@pytest.mark.parametrize("model_name, share, origin", [
    ("AMD EPYC 7763 64-Core Processor", 0.36, "AMD EPYC 7763's own"),
    ("13th Gen Intel(R) Core(TM) i9-13900K", 0.20, "desktop class, config"),
    ("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz", 0.10, "laptop class, config"),
    ("Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", 0.20, "desktop class (assumed"),  # not recognised: said so
    ("AMD Ryzen 7 7840U w/ Radeon 780M Graphics", 0.10, "laptop class, config"),  # not in the table: by its name
    ("Intel(R) Xeon(R) Processor @ 2.50GHz", 0.25, "server class, config"),
])
def test_static_share_comes_from_the_entry_its_class_or_its_name(tmp_path, model_name, share, origin):
    _, source = _power_at(tmp_path, f"model name\t: {model_name}\n", 0)
    assert source.model.static_share == pytest.approx(share)
    assert f"static share: {origin}" in source.method


def test_every_static_share_names_its_source_and_the_range_holds_them():
    static = load_static_power()
    assert (static.low, static.high) == (0.10, 0.50) and "Barroso" in static.range_source
    for cpu_class in static.classes.values():
        assert static.low <= cpu_class.share <= static.high and len(cpu_class.source) > 40
        assert "judgement" in cpu_class.source or "AnandTech" in cpu_class.source
    for entry in load_tdp_table():
        assert entry.cpu_class in static.classes
        if entry.static_share is not None:
            assert static.low <= entry.static_share <= static.high and entry.static_source


@pytest.mark.parametrize("bad, message", [
    ("static_power: {classes: {desktop: {share: 1.2, source: x}}, unknown_class: desktop,\n"
     "  range: {low: 0.1, high: 0.5, source: x}}\ncpus: []\n",
     "static_power.classes.desktop.share 1.2: give the share of TDP"),
    ("static_power: {classes: {desktop: {share: 0.2, source: x}}, unknown_class: laptop,\n"
     "  range: {low: 0.1, high: 0.5, source: x}}\ncpus: []\n", "unknown_class 'laptop' is not one of its classes"),
    ("static_power: {classes: {desktop: {share: 0.2, source: x}}, unknown_class: desktop,\n"
     "  range: {low: 0.6, high: 0.5, source: x}}\ncpus: []\n", "range: needs 0 ≤ low < high < 1"),
    ("static_power: {classes: {desktop: {share: 0.2, source: x}}, unknown_class: desktop,\n"
     "  range: {low: 0.1, high: 0.5, source: x}}\n"
     "cpus: [{match: a, name: A, tdp_w: 5, threads: 2, class: phone}]\n", "class 'phone' is not one of"),
    ("static_power: {classes: {desktop: {share: 0.2, source: x}}, unknown_class: desktop,\n"
     "  range: {low: 0.1, high: 0.5, source: x}}\n"
     "cpus: [{match: a, name: A, tdp_w: 5, threads: 2, class: desktop, static_share: 0.3}]\n",
     "static_share without static_source"),
    ("cpus: []\n", "static_power is invalid"),
])
def test_a_bad_table_is_refused_naming_the_key(tmp_path, bad, message):
    table = tmp_path / f"tdp{abs(hash(bad))}.yaml"
    table.write_text(bad)
    stat = tmp_path / "stat"
    stat.write_text(proc_stat(1, 1, 1))
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(tmp_path / "none"), tdp_table=table)
    assert isinstance(source, Unavailable) and message in source.reason and "--cpu-static-share" in source.remedy


def test_a_bad_user_share_is_refused(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(proc_stat(1, 1, 1))
    source = CpuEstimateSource.probe(proc_stat=str(stat), cpuinfo=str(tmp_path / "none"), cpu_static_share=1.0)
    assert isinstance(source, Unavailable) and "--cpu-static-share 1: give the share of TDP" in source.reason


@pytest.mark.parametrize("options", [dict(cpu_tdp_w=20, cpu_static_share=0.3), dict(cpu_tdp_w=37.5),
                                     dict(cpu_static_share=0.0), dict(cpu_static_share=0.125)])
def test_the_method_line_reads_back_as_its_numbers(tmp_path, options):
    _, source = _power_at(tmp_path, EPYC_CPUINFO, 0, **options)
    read = parse_method(f"gpu0: counter: NVML energy\ncpu: {source.method}")
    assert read == EstimateParameters(pytest.approx(source.model.static_share),
                                      pytest.approx(source.model.watts_per_thread), 2)


def test_a_method_from_before_static_power_reads_as_no_static_power():
    old = "cpu: estimated: CPU utilisation × 10 W / 2 threads (generic default 5 W per hardware thread)"
    assert parse_method(old) == EstimateParameters(0.0, 5.0, None)
    assert parse_method("wall: integrated: a meter") is None and parse_method(None) is None
