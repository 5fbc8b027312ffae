"""The kernel probe: llama.cpp's own CPU matrix kernels timed per weight type, in a child process."""

import math

import pytest

from energytui.advisor.features import kernel_seconds_per_flop
from energytui.advisor.service import host_kernels
from energytui.engine import kernels
from energytui.engine.store import Store


def test_the_probe_times_each_type_at_every_row_count_through_the_real_llama_cpp():
    import llama_cpp

    result = kernels.probe(["Q4_1", "Q8_0", "Q4_K_M", "Q4_K_S"], [1])
    assert result["llama_cpp"] == llama_cpp.__version__
    assert set(result["rates"]) == {"Q4_1", "Q8_0", "Q4_K_M", "Q4_K_S"}
    for quant, by_rows in result["rates"].items():
        assert set(by_rows) == {str(r) for r in kernels.ROWS}
        for by_threads in by_rows.values():
            assert set(by_threads) == {"1"}
            assert all(math.isfinite(v) and 0 < v < 1e-6 for v in by_threads.values()), quant
    assert result["rates"]["Q4_K_M"] == result["rates"]["Q4_K_S"]  # one ggml type, timed once


def test_a_probe_that_cannot_run_says_why(monkeypatch):
    monkeypatch.setattr(kernels.sys, "executable", "/bin/false")
    with pytest.raises(kernels.KernelProbeFailed, match="the kernel probe failed"):
        kernels.probe(["Q4_1"], [1])


def test_rates_between_probed_points_follow_amdahl_and_the_rows():
    """Probed at 1 and 4 threads: serial 1 + parallel 3 (units of 1e-11 s/FLOP); rows log-linear between."""
    table = {"Q8_0": {"1": {"1": 4e-11, "4": 1.75e-11}, "4": {"1": 1e-11, "4": 1e-11}}}
    assert kernel_seconds_per_flop(table, "Q8_0", 1, 2) == pytest.approx(2.5e-11)
    assert kernel_seconds_per_flop(table, "Q8_0", 2, 1) == pytest.approx(2e-11)  # halfway in log rows
    assert kernel_seconds_per_flop(table, "Q8_0", 64, 4) == pytest.approx(1e-11)  # flat beyond the probe
    assert kernel_seconds_per_flop(table, "Q4_0", 1, 1) is None
    assert kernel_seconds_per_flop({"F16": {"1": {"2": 3e-11}}}, "F16", 1, 3) == pytest.approx(2e-11)


def test_another_hosts_trials_get_no_probe(tmp_path):
    store = Store(tmp_path / "t.db")
    store.upsert_host({"id": "imp-1", "hostname": "a-laptop-elsewhere", "cores": 8, "llama_cpp": "0.2.0",
                       "imported": 1})
    assert host_kernels(store, "imp-1") == ({}, "no kernel probe (another host's trials)")
    assert store.kernel_rates("imp-1") == (None, {})


def test_stored_rates_belong_to_the_llama_cpp_version_that_timed_them(tmp_path):
    store = Store(tmp_path / "t.db")
    store.upsert_host({"id": "h1", "hostname": "here", "cores": 2, "llama_cpp": "0.3.36"})
    store.save_kernel_rates("h1", "0.3.36", {"Q4_1": {"1": {"1": 3e-11}}})
    store.save_kernel_rates("h1", "0.3.99", {"Q4_1": {"1": {"1": 9e-11}}})  # another build's timing
    assert store.kernel_rates("h1") == ("0.3.36", {"Q4_1": {"1": {"1": 3e-11}}})


def test_a_failed_probe_leaves_the_advisor_on_kernel_families(tmp_path, monkeypatch):
    import socket
    from importlib.metadata import version

    def broken(*_args, **_kwargs):
        raise kernels.KernelProbeFailed("the kernel probe failed (a stand-in crash)")

    monkeypatch.setattr(kernels, "probe", broken)
    store = Store(tmp_path / "t.db")
    store.upsert_host({"id": "h1", "hostname": socket.gethostname(), "cores": 2,
                       "llama_cpp": version("llama_cpp_python")})
    table, note = host_kernels(store, "h1")
    assert table == {} and "a stand-in crash" in note and "borrow their kernel family's speed" in note


def test_with_llama_cpps_amx_kernels_built_in_weights_are_held_as_models_load_them(monkeypatch):
    """Such a build loads models without extra buffer types (llama_backend): the probe's AMX buffer failed with
    'amx repack tensor of type q4_K' on this project's Xeon VM, and it would time kernels no trial runs."""
    from energytui.engine import llama_backend

    monkeypatch.setattr(llama_backend, "system_info", lambda: "CPU : AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 |")
    assert kernels._Ggml().extra_bufts == []
    monkeypatch.setattr(llama_backend, "system_info", lambda: "CPU : AVX2 = 1 | REPACK = 1 |")
    assert kernels._Ggml().extra_bufts  # this build's CPU_REPACK buffer
