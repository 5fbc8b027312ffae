"""A host is its machine and its llama.cpp build: a rebuild with other CPU features (AMX, repacking) is another host,
so its trials, kernel probe and calibration never mix with the other build's; a database recorded before builds
were keeps its host."""

import hashlib
import socket
from importlib.metadata import version

from energytui.advisor.service import host_kernels, local_host_id
from energytui.engine import host, llama_backend
from energytui.engine.store import Store
from helpers import run_cli

INSTALLED = llama_backend.system_info()
REBUILT = INSTALLED + " A_REBUILD_STAND_IN = 1 |"  # the installed line plus one: whatever loads models stays as is

TINY = """defaults:
  model: {model}
  threads: 1
  n_ctx: 64
  max_tokens: 3
runs:
  - id: tiny
    prompt_tokens: [8]
"""


def legacy_facts(**changes) -> dict:
    """This machine's facts as recorded before builds were: no build, the id of the same facts without it."""
    facts = {**host.describe_host(), **changes}
    del facts["legacy_id"], facts["build"]
    identity = "|".join(str(facts[k]) for k in ("hostname", "cpu", "cores", "ram_gb", "gpu", "llama_cpp",
                                                 "gpu_offload"))
    return {**facts, "id": hashlib.sha256(identity.encode()).hexdigest()[:12]}


def test_the_id_follows_the_build_and_the_legacy_id_is_the_one_hosts_had_before(monkeypatch):
    installed = host.describe_host()
    assert installed["build"] == INSTALLED
    assert installed["legacy_id"] == legacy_facts()["id"] != installed["id"]
    monkeypatch.setattr(llama_backend, "system_info", lambda: REBUILT)
    rebuilt = host.describe_host()
    assert rebuilt["id"] != installed["id"] and rebuilt["legacy_id"] == installed["legacy_id"]
    assert host.describe_host("worker-a")["id"] not in (rebuilt["id"], host.describe_host("worker-b")["id"])


def test_a_host_recorded_before_builds_is_the_first_build_that_runs_there(tmp_path, monkeypatch):
    store = Store(tmp_path / "t.db")
    old = legacy_facts()
    store.upsert_host(old)
    assert store.host_row(old["id"])["build"] is None

    assert store.upsert_host(host.describe_host()) == old["id"]  # adopted: the upgrade keeps its host
    assert store.host_row(old["id"])["build"] == INSTALLED
    monkeypatch.setattr(llama_backend, "system_info", lambda: REBUILT)
    rebuilt = host.describe_host()
    assert store.resolve_host(rebuilt)["id"] == rebuilt["id"] != old["id"]  # the row is the other build's now
    assert store.upsert_host(rebuilt) == rebuilt["id"]
    assert store.host_row(rebuilt["id"])["build"] == REBUILT
    monkeypatch.setattr(llama_backend, "system_info", lambda: INSTALLED)
    assert store.upsert_host(host.describe_host()) == old["id"]  # and back
    assert len(store.hosts()) == 2


def test_runs_of_two_builds_are_two_hosts_and_advise_takes_the_latest(tmp_path, monkeypatch, model_path, capsys):
    manifest, db = tmp_path / "tiny.yaml", tmp_path / "t.db"
    manifest.write_text(TINY.format(model=model_path))
    store = Store(db)
    old = legacy_facts()
    store.upsert_host(old)  # a database from before builds were recorded
    store.close()

    assert run_cli(capsys, "run", manifest, "--db", db, "--idle-s", "0.05")[0] == 0
    monkeypatch.setattr(llama_backend, "system_info", lambda: REBUILT)
    assert run_cli(capsys, "run", manifest, "--db", db, "--idle-s", "0.05", "--fresh")[0] == 0

    store = Store(db, read_only=True)
    by_host = {h["id"]: h["build"] for h in store.hosts()}
    rebuilt = host.describe_host()["id"]
    assert by_host == {old["id"]: INSTALLED, rebuilt: REBUILT}
    assert {t["host_id"] for t in store.trials(run=1)} == {old["id"]}
    assert {t["host_id"] for t in store.trials(run=2)} == {rebuilt}
    assert local_host_id(store) == rebuilt
    code, out, _ = run_cli(capsys, "report", "--db", db)
    assert code == 0 and f"(built with: {REBUILT})" in out and f"(built with: {INSTALLED})" in out


def test_the_kernel_probe_is_not_run_for_another_builds_trials(tmp_path):
    store = Store(tmp_path / "t.db")
    store.upsert_host({"id": "h1", "hostname": socket.gethostname(), "cores": 2,
                       "llama_cpp": version("llama_cpp_python"), "build": REBUILT})
    table, note = host_kernels(store, "h1")
    assert table == {} and store.kernel_rates("h1") == (None, {})
    assert note == (f"no kernel probe (this host's trials ran another build of llama-cpp-python "
                    f"{version('llama_cpp_python')}, built with A_REBUILD_STAND_IN = 1, where the installed one has "
                    "nothing more)")


def test_build_change_names_what_each_build_has_that_the_other_lacks():
    assert host.build_change("CPU : AVX2 = 1 | AMX_INT8 = 1 | REPACK = 1 |", "CPU : AVX2 = 1 | REPACK = 1 |") == \
        "built with AMX_INT8 = 1, where the installed one has nothing more"
    assert host.build_change("CPU : AVX2 = 1 |", "CPU : AVX512 = 1 |") == \
        "built with AVX2 = 1, where the installed one has AVX512 = 1"
    assert host.build_change("CUDA : ARCHS = 890 | CPU : AVX2 = 1 |", "CPU : AVX2 = 1 |") == \
        "built with CUDA ARCHS = 890, where the installed one has nothing more"
