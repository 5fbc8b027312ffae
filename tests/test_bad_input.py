"""Bad input over the whole CLI, as a user meets it: every case is a real `energytui` process that must
exit with the expected code, print exactly one line naming the value and what to do, show no traceback,
and leave the files as they were (nothing created, nothing recorded lost)."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from energytui.engine import limits
from energytui.engine.errors import UserError
from energytui.engine.importer import import_logs
from energytui.engine.manifest import load_manifest
from energytui.engine.store import Store

import test_import

ENERGYTUI = [sys.executable, "-m", "energytui"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_path):
    folder = tmp_path_factory.mktemp("bad-input")
    good = folder / "good.db"
    store = Store(good)
    import_logs(store, test_import._log(folder, energy_in_log=True), test_import.EXAMPLE_MAP)
    store.close()
    damaged = folder / "damaged.db"
    damaged.write_bytes(_damaged(good.read_bytes()))
    manifest = folder / "ok.yaml"
    manifest.write_text(f"defaults:\n  model: {model_path}\nruns:\n  - id: one\n    prompt_tokens: 8\n"
                        "    max_tokens: 2\n")
    huge_ctx = folder / "huge-ctx.yaml"
    huge_ctx.write_text(manifest.read_text().replace("runs:", "  n_ctx: 1000000000\nruns:"))
    large = folder / "large.yaml"
    large.write_text(manifest.read_text() + "    repetitions: 1001\n")
    (folder / "dup-ids.jsonl").write_text('{"id": "a", "text": "hi"}\n{"id": "b", "text": "yo"}\n'
                                          '{"id": "a", "text": "again"}\n')
    bad = {name: folder / f"{name}.yaml" for name in BAD_MANIFESTS}
    for name, lines in BAD_MANIFESTS.items():
        bad[name].write_text(_variant(manifest.read_text(), lines))
    return {"good": good, "damaged": damaged, "missing": folder / "typo.db", "manifest": manifest,
            "huge_ctx": huge_ctx, "large": large, "folder": folder, **bad}


PROMPT = "    prompt_tokens: 8\n"
# The good manifest with these lines: top-level keys before it, run keys in place of its `prompt_tokens: 8` line.
BAD_MANIFESTS = {
    "nested_list": PROMPT + "    suite: [[sd]]\n",
    "shuffle_seed_list": "shuffle_seed: [1]\n",
    "shuffle_seed_map": "shuffle_seed: {a: 1}\n",
    "shuffle_maybe": "shuffle: maybe\n",
    "temperature_nan": PROMPT + "    temperature: .nan\n",
    "temperature_inf": PROMPT + "    temperature: .inf\n",
    "cooldown_inf": PROMPT + "    cooldown_s: .inf\n",
    "cooldown_nan": PROMPT + "    cooldown_s: .nan\n",
    "cooldown_huge": PROMPT + "    cooldown_s: 1.0e+9\n",
    "seed_huge": PROMPT + "    seed: 99999999999999999999999\n",
    "seed_negative": PROMPT + "    seed: -1\n",
    "duplicate_key": PROMPT + "    max_tokens: 64\n",
    "empty_model": PROMPT + "    model: []\n",
    "empty_threads": PROMPT + "    threads: []\n",
    "n_batch_huge": PROMPT + "    n_batch: 100000000\n",
    "exponent": PROMPT + "    temperature: -1e3\n",
    "threads_huge": PROMPT + "    threads: 100000\n",
    "repetitions_huge": PROMPT + "    repetitions: 100000000\n",
    "prompt_file_number": "    prompt_file: 5\n",
    "duplicate_prompt_ids": "    prompt_file: dup-ids.jsonl\n",
    "prompt_file_directory": "    prompt_file: .\n",
}


def _variant(good: str, lines: str) -> str:
    return good.replace(PROMPT, lines) if lines.startswith(" ") else lines + good


def _damaged(data: bytes) -> bytes:
    """The same file with its second page's b-tree header overwritten, as a bad disk sector leaves it."""
    page = int.from_bytes(data[16:18], "big") or 65536
    return data[:page] + b"\xff" * 64 + data[page + 64:]


CASES = [
    # (arguments with {placeholders}, exit code, a part of the one line)
    (["export", "--db", "{missing}"], 2, "typo.db: no database there; check the path"),
    (["report", "--db", "{missing}"], 2, "no database there"),
    (["compare", "1", "2", "--db", "{missing}"], 2, "no database there"),
    (["advise", "--tokens", "8", "--db", "{missing}"], 2, "no database there"),
    (["export", "--db", "{damaged}"], 2, "the database is damaged"),
    (["report", "--db", "{damaged}"], 2, "the database is damaged"),
    (["advise", "--tokens", "8", "--db", "{damaged}"], 2, "the database is damaged"),
    (["run", "{manifest}", "--db", "{damaged}"], 2, "the database is damaged"),
    (["import", "{folder}/log.csv", "--map", str(test_import.EXAMPLE_MAP), "--db", "{damaged}"], 2,
     "the database is damaged"),
    (["run", "{huge_ctx}", "--db", "{missing}"], 2, "n_ctx: 1000000000 is beyond"),
    (["run", "{large}", "--db", "{missing}"], 2, "1001 trials, duration unknown"),
    (["run", "{manifest}", "--db", "{missing}", "--power-command", "/nonexistent/meter"], 2,
     "--power-command '/nonexistent/meter': cannot be read"),
    (["run", "{manifest}", "--db", "{missing}", "--sample-hz", "0"], 2, "--sample-hz 0"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-static-share", "lots"], 2,
     "argument --cpu-static-share: 'lots' is not a share; write e.g. 0.3 or 30%"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-static-share", "100%"], 2,
     "--cpu-static-share 1: give the share of TDP the CPU draws whatever the load, from 0 to below 1"),
    (["doctor", "--cpu-static-share", "-0.05"], 2, "--cpu-static-share -0.05: give the share of TDP"),
    (["advise", "--tokens", "8", "--batch", "-3", "--db", "{good}"], 2, "--batch -3"),
    (["advise", "--tokens", "8", "--batch", "0", "--db", "{good}"], 2, "--batch 0"),
    (["advise", "--tokens", "0", "--db", "{good}"], 2, "--tokens 0"),
    (["advise", "--tokens", "8", "--threads", "0", "--db", "{good}"], 2, "--threads 0"),
    (["advise", "--tokens", "8", "--budget", "1e9W", "--db", "{good}"], 2, "at most 100kW"),
    (["advise", "--tokens", "8", "--budget", "fifty", "--db", "{good}"], 2, "give a positive power like 50W"),
    (["advise", "--tokens", "8", "--latency", "5 parsecs", "--db", "{good}"], 2, "give a positive duration"),
    (["advise", "--tokens", "8", "--hardware", "rtx-9999", "--db", "{good}"], 2, "rtx-9999"),
    (["advise", "--tokens", "8", "--quant", "Q9_9", "--db", "{good}"], 2, "Q9_9"),
    (["advise", "--tokens", "8", "--host", "nobody", "--db", "{good}"], 2, "--host nobody: unknown host;"),
    (["advise", "--tokens", "8", "--batch", "x"], 2, "argument --batch: invalid int value: 'x'"),
    (["report", "--by", "nonsense", "--db", "{good}"], 2, "argument --by: invalid choice"),
    (["compare", "nothing", "1", "--db", "{good}"], 2, "'nothing' is neither a run number"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["run", "{manifest}", "--db", "{missing}", "--columns", "configuration,joules"], 2,
     "argument --columns: unknown column 'joules'; the columns are: configuration, done, prompt tok, gen tok, "
     "TTFT ms, prefill tok/s, decode tok/s, ITL p95 ms, e2e ms, J/token, avg W, J/request, EDP J·s, "
     "EDP J·s of means; see `energytui run --help`"),
    (["report", "--db", "{good}", "--columns", "frames/s"], 2, "unknown column 'frames/s'; the columns are:"),
    (["report", "--db", "{good}", "--columns", "done,DONE"], 2, "argument --columns: column 'DONE' is named twice"),
    (["report", "--db", "{good}", "--columns", ","], 2, "argument --columns: no column named; the columns are:"),
    (["report", "--db", "{good}", "--format", "csv", "--columns", "done"], 2,
     "--columns chooses a table's columns; --format csv writes every field"),
    (["run", "{manifest}", "--db", "{missing}", "--format", "json", "--columns", "done"], 2,
     "--format json writes every field"),
    # manifests: refused at validation, before a database is opened (--db {good} stays as it was)
    (["run", "{nested_list}", "--db", "{missing}"], 2,
     "run 'one': key 'suite': expected a single value or a list of values, got [['sd']]"),
    (["run", "{shuffle_seed_list}", "--db", "{missing}"], 2, "key 'shuffle_seed': expected a whole number, got [1]"),
    (["run", "{shuffle_seed_map}", "--db", "{missing}"], 2,
     "key 'shuffle_seed': expected a whole number, got {'a': 1}"),
    (["run", "{shuffle_maybe}", "--db", "{missing}"], 2, "key 'shuffle': expected true or false, got 'maybe'"),
    (["run", "{temperature_nan}", "--db", "{good}"], 2, "key 'temperature': expected a finite number ≥ 0, got nan"),
    (["run", "{temperature_inf}", "--db", "{missing}"], 2, "key 'temperature': expected a finite number ≥ 0, got inf"),
    (["run", "{cooldown_inf}", "--db", "{missing}"], 2,
     "key 'cooldown_s': expected seconds from 0 to 3600 (1 h) or auto, got inf"),
    (["run", "{cooldown_nan}", "--db", "{missing}"], 2,
     "key 'cooldown_s': expected seconds from 0 to 3600 (1 h) or auto, got nan"),
    (["run", "{cooldown_huge}", "--db", "{missing}"], 2,
     "key 'cooldown_s': expected seconds from 0 to 3600 (1 h) or auto, got 1000000000.0"),
    (["run", "{seed_huge}", "--db", "{good}"], 2,
     "key 'seed': expected a whole number from 0 to 4294967294, got 99999999999999999999999"),
    (["run", "{seed_negative}", "--db", "{missing}"], 2,
     "key 'seed': expected a whole number from 0 to 4294967294, got -1"),
    (["run", "{duplicate_key}", "--db", "{good}"], 2, "line 7, column 5: duplicate key 'max_tokens' (first on line 6)"),
    (["run", "{empty_model}", "--db", "{missing}"], 2, "run 'one': key 'model': is an empty list"),
    (["run", "{empty_threads}", "--db", "{missing}"], 2, "run 'one': key 'threads': is an empty list"),
    (["run", "{n_batch_huge}", "--db", "{missing}"], 2,
     "key 'n_batch': 100000000 is more than llama.cpp uses with n_ctx 2048 × batch_size 1; use at most 2048"),
    (["run", "{exponent}", "--db", "{missing}"], 2, "key 'temperature': expected a finite number ≥ 0, got -1000.0"),
    (["run", "{threads_huge}", "--db", "{missing}"], 2, "key 'threads': 100000 is too large; use at most 512"),
    (["run", "{repetitions_huge}", "--db", "{missing}"], 2,
     "key 'repetitions': the manifest comes to more than 1000000 trials"),
    (["run", "{prompt_file_number}", "--db", "{missing}"], 2, "key 'prompt_file': expected a name or a path, got 5"),
    (["run", "{duplicate_prompt_ids}", "--db", "{missing}"], 2,
     "dup-ids.jsonl: line 3: duplicate id 'a' (first on line 1); give every prompt its own id"),
    (["run", "{prompt_file_directory}", "--db", "{missing}"], 2,
     ": is a directory, not a prompt file; give the path of a .jsonl or text file"),
    (["run", "{folder}", "--db", "{missing}"], 2, "is a directory, not a manifest; give the path of a .yaml file"),
    # run's meter options: finite and within their stated bounds, refused before the manifest is read
    (["run", "{manifest}", "--db", "{missing}", "--sample-hz", "nan"], 2,
     "--sample-hz nan: choose a rate between 1 and 1000 Hz"),
    (["run", "{manifest}", "--db", "{missing}", "--sample-hz", "0.001"], 2, "--sample-hz 0.001: choose a rate"),
    (["run", "{manifest}", "--db", "{missing}", "--idle-s", "nan"], 2, "--idle-s nan: give an idle window from 0.05 s"),
    (["run", "{manifest}", "--db", "{missing}", "--idle-s", "inf"], 2, "--idle-s inf: give an idle window"),
    (["run", "{manifest}", "--db", "{missing}", "--idle-s", "1e9"], 2, "--idle-s 1e+09: give an idle window"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-tdp", "nan"], 2, "--cpu-tdp nan: give the CPU's TDP in watts"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-tdp", "inf"], 2, "--cpu-tdp inf: give the CPU's TDP"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-tdp", "1e30"], 2,
     "--cpu-tdp 1e+30: give the CPU's TDP in watts, from 1 to 1000"),
    (["run", "{manifest}", "--db", "{missing}", "--cpu-tdp", "1e-9"], 2,
     "--cpu-tdp 1e-09: give the CPU's TDP in watts, from 1 to 1000"),  # every figure would print as 0
    (["run", "{manifest}", "--db", "{good}", "--power-command", ""], 2, "--power-command '': empty;"),
    (["advise", "--tokens", "5", "--budget", "-5W", "--db", "{good}"], 2,
     "argument --budget: expected one argument (a value that starts with '-' is written --option=VALUE)"),
    (["advise", "--tokens", "5", "--model", "", "--db", "{good}"], 2, "--model '': empty; give a name"),
    (["advise", "--tokens", "5", "--hardware", " ", "--db", "{good}"], 2, "--hardware '': empty; give a name"),
    (["advise", "--tokens", "5", "--host", "", "--db", "{good}"], 2, "--host '': empty; give a host id"),
    (["models", "ladder", "--quants", "Q8_0", "--threads", "-1"], 2, "--threads -1: give a whole number from 1"),
    (["doctor", "--cpu-tdp", "nan"], 2, "--cpu-tdp nan: give the CPU's TDP in watts"),  # every command, one check
    (["worker", "--head", "--bind", "127.0.0.1", "--cpu-tdp", "inf"], 2, "--cpu-tdp inf: give the CPU's TDP"),
]


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(files, args, code, message):
    before = {p: _digest(p) for p in files["folder"].iterdir()}
    done = subprocess.run([*ENERGYTUI, *(a.format(**files) for a in args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert {p: _digest(p) for p in files["folder"].iterdir()} == before  # no file created, none changed


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


def test_weights_and_kv_cache_beyond_free_memory_are_refused(files):
    manifest = load_manifest(files["manifest"], False)
    wide = [trial.__class__(**{**trial.as_row(), "n_ctx": 8192, "batch_size": 256}) for trial in manifest.trials]
    manifest.trials = wide
    with pytest.raises(UserError, match=r"run 'one': n_ctx: 8192 with batch_size 256 needs about 45\.\d GiB"):
        limits.check(manifest, cores=2, free_bytes=8 * 2**30)
    assert limits.check(manifest, cores=2, free_bytes=64 * 2**30).warnings == []


def test_wasteful_settings_are_warned_about_not_refused(files):
    manifest = load_manifest(files["manifest"], False)
    manifest.trials = [trial.__class__(**{**trial.as_row(), "threads": 999, "n_ctx": 16, "ignore_eos": True,
                                          "max_tokens": 16}) for trial in manifest.trials]
    verdict = limits.check(manifest, cores=2, free_bytes=8 * 2**30)
    assert any("threads: 999 is more than this machine's 2 CPUs" in w for w in verdict.warnings)
    assert any("generation stops after 8 tokens" in w for w in verdict.warnings)
    assert verdict.needs_confirmation is None


def test_a_large_run_states_its_duration_from_this_hosts_pace(files):
    manifest = load_manifest(files["large"], False)
    verdict = limits.check(manifest, typical_trial_s=1.8, cores=2, free_bytes=8 * 2**30)
    assert verdict.needs_confirmation.endswith("1001 trials, about 31 min at this host's pace")


def test_the_app_on_a_damaged_database_exits_with_one_line_and_changes_nothing(files):
    """The app paints first and opens the database after (for a fast start): a damaged one still ends it
    with the CLI's one line and exit code, and no traceback."""
    from helpers import on_a_terminal

    before = hashlib.sha256(files["damaged"].read_bytes()).hexdigest()
    code, output = on_a_terminal(["--db", files["damaged"]], timeout=60)
    assert code == 2, output[-2000:]
    assert "energytui: error: " in output and "the database is damaged" in output
    assert "Traceback" not in output
    assert hashlib.sha256(files["damaged"].read_bytes()).hexdigest() == before
