import os
from pathlib import Path

import pytest

from energytui.engine.errors import UserError
from energytui.engine.manifest import load_manifest

BASE = """
defaults:
  model: {model}
  max_tokens: 8
runs:
"""


@pytest.fixture
def manifest(write_manifest, model_path):
    def make(runs: str, extra_defaults: str = "", gpu_offload: bool = False, **kwargs):
        head = BASE.format(model=model_path).replace("runs:\n", extra_defaults + "runs:\n")
        return load_manifest(write_manifest(head + runs), gpu_offload=gpu_offload, **kwargs)

    return make


def test_lists_expand_into_the_cartesian_product(manifest):
    m = manifest("  - id: sweep\n    prompt_tokens: [16, 32]\n    threads: [1, 2]\n    batch_size: [1, 2, 4]\n"
                 "    repetitions: 2\n")
    assert len(m.trials) == 2 * 2 * 3 * 2
    assert len({t.config_id for t in m.trials}) == 12
    combos = {(t.prompt_tokens_target, t.threads, t.batch_size) for t in m.trials}
    assert len(combos) == 12


def test_config_id_ignores_prompt_and_repetition(manifest):
    m = manifest("  - id: chat\n    suite: sd\n    prompt_limit: 3\n    repetitions: 2\n")
    assert len(m.trials) == 6
    assert len({t.config_id for t in m.trials}) == 1
    assert [t.prompt_id for t in m.trials] == ["sd-01", "sd-02", "sd-03"] * 2  # repetitions interleave
    assert [t.repetition for t in m.trials] == [0, 0, 0, 1, 1, 1]


def test_shuffle_is_seeded(write_manifest, model_path):
    text = BASE.format(model=model_path).replace("defaults:", "shuffle: true\nshuffle_seed: 3\ndefaults:")
    text += "  - id: a\n    prompt_tokens: [8, 16, 24, 32, 40]\n"
    first = load_manifest(write_manifest(text, "a.yaml"), gpu_offload=False)
    second = load_manifest(write_manifest(text, "b.yaml"), gpu_offload=False)
    order = [t.prompt_tokens_target for t in first.trials]
    assert order == [t.prompt_tokens_target for t in second.trials]
    assert sorted(order) == [8, 16, 24, 32, 40] and order != [8, 16, 24, 32, 40]


def test_defaults_resolve_threads_and_layers(manifest):
    trial = manifest("  - id: one\n    prompt_tokens: 8\n").trials[0]
    assert trial.backend == "cpu" and trial.gpu_layers == 0 and trial.threads >= 1
    assert trial.quant == "Q4_1" and trial.n_batch == 512 and trial.batch_size == 1


def test_gpu_layers_words_resolve_against_the_model(manifest):
    m = manifest("  - id: h\n    backend: hybrid\n    gpu_layers: half\n    prompt_tokens: 8\n"
                 "  - id: g\n    backend: gpu\n    prompt_tokens: 8\n", gpu_offload=True)
    assert [t.gpu_layers for t in m.trials] == [15, 30]


def test_values_that_resolve_to_the_same_configuration_are_refused(manifest, model_path):
    """half is 15 of this model's 30 layers; a registry name is its file: listing both would queue one
    configuration twice, and its trials would count double in every mean."""
    with pytest.raises(UserError, match=r"run 'h': key 'gpu_layers': 'half' and 15 are the same here \(15\); list it"):
        manifest("  - id: h\n    backend: hybrid\n    gpu_layers: [half, 15]\n    prompt_tokens: 8\n", gpu_offload=True)
    with pytest.raises(UserError, match=r"run 'm': key 'model': .* are the same here"):
        manifest(f"  - id: m\n    model: [smollm2-135m-q4_1, {model_path}]\n    prompt_tokens: 8\n")
    kept = manifest("  - id: k\n    backend: hybrid\n    gpu_layers: [half, 10]\n    prompt_tokens: 8\n",
                    gpu_offload=True)
    assert [t.gpu_layers for t in kept.trials] == [15, 10]


def test_skip_gpu_drops_only_offloaded_configs(manifest):
    m = manifest("  - id: mixed\n    backend: [cpu, gpu]\n    prompt_tokens: 8\n", skip_gpu=True)
    assert [t.backend for t in m.trials] == ["cpu"] and m.skipped_runs == ["mixed"]


@pytest.mark.parametrize("runs, message", [
    ("  - id: r1\n    prompt_tokens: 8\n    thread: 2\n", "run 'r1': key 'thread': unknown key"),
    ("  - id: r2\n    prompt_tokens: 8\n    threads: two\n", "run 'r2': key 'threads': expected a whole number"),
    ("  - id: r3\n    prompt_tokens: 8\n    threads: 0\n",
     "run 'r3': key 'threads': expected a whole number ≥ 1, got 0"),
    ("  - id: r4\n    prompt_tokens: 8\n    ignore_eos: maybe\n", "run 'r4': key 'ignore_eos': expected true or false"),
    ("  - id: r5\n    prompt_tokens: 8\n    backend: tpu\n", "run 'r5': key 'backend': unknown backend 'tpu'"),
    ("  - id: r6\n    prompt_tokens: 8\n    backend: gpu\n", "run 'r6': key 'backend': gpu needs GPU offload"),
    ("  - id: r7\n    prompt_tokens: 8\n    model: nowhere.gguf\n", "run 'r7': key 'model': nowhere.gguf is neither"),
    ("  - id: r8\n    prompt_file: missing.jsonl\n",
     "run 'r8': key 'prompt_file': .*missing.jsonl: prompt file not found"),
    ("  - id: r9\n    suite: poetry\n", "run 'r9': key 'suite': unknown suite 'poetry'"),
    ("  - id: r10\n    suite: sd\n    prompt_tokens: 8\n", "run 'r10': key 'suite': several prompt sources"),
    ("  - id: r11\n", "run 'r11': key 'suite': no prompt source"),
    ("  - id: r12\n    prompt_tokens: 8\n    repetitions: [1, 2]\n", "run 'r12': key 'repetitions': cannot be a list"),
    ("  - id: r13\n    prompt_tokens: 8\n  - id: r13\n    prompt_tokens: 8\n", "run 'r13': key 'id': duplicate"),
    ("  - prompt_tokens: 8\n", "run '#1': key 'id': every run needs an `id`"),
    ("  - id: r14\n    prompt_tokens: 8\n    backend: hybrid\n    gpu_layers: 99\n", "run 'r14': key 'backend'"),
])
def test_bad_values_name_file_run_and_key(manifest, runs, message):
    with pytest.raises(UserError, match=message) as caught:
        manifest(runs)
    assert "manifest.yaml" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_gpu_layers_out_of_range(manifest):
    with pytest.raises(UserError, match="key 'gpu_layers': 99 is outside 0..30"):
        manifest("  - id: h\n    backend: hybrid\n    gpu_layers: 99\n    prompt_tokens: 8\n", gpu_offload=True)


def test_malformed_yaml_gives_line_and_column(write_manifest):
    path = write_manifest("runs:\n  - id: a\n    threads: [1, 2\n")
    with pytest.raises(UserError, match=r"manifest.yaml: line \d+, column \d+: .*fix the YAML syntax"):
        load_manifest(path, gpu_offload=False)


def test_unknown_top_level_key(write_manifest):
    with pytest.raises(UserError, match="key 'run': unknown top-level key"):
        load_manifest(write_manifest("run:\n  - id: a\n"), gpu_offload=False)


def test_truncated_model_is_caught_before_anything_runs(manifest, model_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    with model_path.open("rb") as src:
        cut.write_bytes(src.read(5 << 20))
    with pytest.raises(UserError, match=r"run 'c': key 'model': .*cut.gguf: truncated"):
        manifest(f"  - id: c\n    model: {cut}\n    prompt_tokens: 8\n")


def test_registry_model_with_wrong_bytes_is_a_sha_mismatch(isolated_home, write_manifest, model_path):
    target = isolated_home / "models" / model_path.name
    target.unlink()
    data = bytearray(model_path.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    target.write_bytes(bytes(data))
    path = write_manifest("runs:\n  - id: s\n    model: smollm2-135m-q4_1\n    prompt_tokens: 8\n")
    with pytest.raises(UserError, match="key 'model': .*sha256 .* differs from the registry"):
        load_manifest(path, gpu_offload=False)


def test_shipped_manifests_validate(model_path):
    from energytui.engine.paths import CONFIG_DIR

    quick = load_manifest(CONFIG_DIR / "manifests" / "quickstart.yaml", gpu_offload=False)
    assert 16 <= len(quick.trials) <= 40
    seed = load_manifest(CONFIG_DIR / "manifests" / "seed-study.yaml", gpu_offload=True)
    assert {t.backend for t in seed.trials} == {"cpu", "gpu", "hybrid"}
    assert {t.n_batch for t in seed.trials} == {128, 512, 1024}
    assert {t.threads for t in seed.trials} == {1, 4, 8}
    assert {t.gpu_layers for t in seed.trials} == {0, 15, 30}


def test_exponents_without_a_dot_are_numbers(manifest):
    """YAML 1.1 (PyYAML) reads 1e1 as text; people and YAML 1.2 mean a number."""
    trial = manifest("  - id: e\n    prompt_tokens: 8\n    temperature: 5e-1\n    cooldown_s: 1e1\n").trials[0]
    assert (trial.temperature, trial.cooldown_s) == (0.5, 10.0)


def test_seeds_span_llamas_uint32_but_its_random_seed(manifest):
    m = manifest("  - id: s\n    prompt_tokens: 8\n    seed: [0, 4294967294]\n")
    assert [t.seed for t in m.trials] == [0, 4294967294]
    with pytest.raises(UserError, match="key 'seed': expected a whole number from 0 to 4294967294, got 4294967295"):
        manifest("  - id: s\n    prompt_tokens: 8\n    seed: 4294967295\n")


def test_a_merge_key_may_be_overridden_but_a_key_not_repeated(write_manifest, model_path):
    text = (f"defaults: &d\n  model: {model_path}\n  max_tokens: 2\nruns:\n"
            "  - id: m\n    <<: *d\n    max_tokens: 4\n    prompt_tokens: 8\n")
    assert load_manifest(write_manifest(text), gpu_offload=False).trials[0].max_tokens == 4
    with pytest.raises(UserError, match=r"line 3, column 3: duplicate key 'model' \(first on line 2\); keep one"):
        load_manifest(write_manifest(f"defaults:\n  model: {model_path}\n  model: x.gguf\nruns: []\n"),
                      gpu_offload=False)


def test_n_batch_up_to_the_default_or_n_ctx_times_batch_size(manifest):
    m = manifest("  - id: b\n    prompt_tokens: 8\n    n_ctx: 256\n    batch_size: 4\n    n_batch: [512, 1024]\n")
    assert [t.n_batch for t in m.trials] == [512, 1024]
    with pytest.raises(UserError, match="'n_batch': 1025 is more than .* n_ctx 256 × batch_size 4; use at most 1024"):
        manifest("  - id: b\n    prompt_tokens: 8\n    n_ctx: 256\n    batch_size: 4\n    n_batch: 1025\n")


@pytest.mark.parametrize("runs, message", [
    ("  - id: 2018-01-01\n    prompt_tokens: 8\n",
     "run '#1': key 'id': must be text, and YAML reads 2018-01-01 as a date; put the id in quotes, as you wrote it"),
    ("  - id: yes\n    prompt_tokens: 8\n",
     "run '#1': key 'id': must be text, and YAML reads True as a boolean; put the id in quotes, as you wrote it"),
    ("  - id: [a, b]\n    prompt_tokens: 8\n",
     "run '#1': key 'id': must be text, got ['a', 'b']; write a name, e.g. `- id: cpu-t8`"),
    ("  - id: \"\"\n    prompt_tokens: 8\n", "run '#1': key 'id': is empty; give the run a name, e.g. `- id: cpu-t8`"),
    ("  - id: \" \"\n    prompt_tokens: 8\n", "run '#1': key 'id': is empty; give the run a name, e.g. `- id: cpu-t8`"),
    ("  - id: p\n    prompt_file: \"\"\n",
     "run 'p': key 'prompt_file': is empty; give a suite name or a file path, or leave the key out"),
    ("  - id: s\n    suite: \"\"\n",
     "run 's': key 'suite': is empty; give a suite name or a file path, or leave the key out"),
    ("  - id: d\n    prompt_tokens: 8\n    backend: [cpu, cpu]\n",
     "run 'd': key 'backend': lists 'cpu' twice; list each value once; `repetitions:` runs a configuration more "
     "than once"),
    ("  - id: d\n    prompt_tokens: [8, 16, 8]\n",
     "run 'd': key 'prompt_tokens': lists 8 twice; list each value once; `repetitions:` runs a configuration more "
     "than once"),
])
def test_ids_empty_prompt_sources_and_repeated_list_values_are_refused(manifest, tmp_path, runs, message):
    with pytest.raises(UserError) as caught:
        manifest(runs)
    assert str(caught.value) == f"{tmp_path / 'manifest.yaml'}: {message}"


def test_an_integer_id_is_text_and_distinct_values_sweep(manifest):
    m = manifest("  - id: 7\n    prompt_tokens: 8\n    threads: [1, 2]\n    chat: [true, false]\n")
    assert {t.run_id for t in m.trials} == {"7"} and len(m.trials) == 4


def test_an_unreadable_manifest_is_one_line(write_manifest, monkeypatch):
    path = write_manifest("runs: []\n")
    real = Path.read_bytes

    def refuse(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(UserError) as caught:
        load_manifest(path, gpu_offload=False)
    assert str(caught.value) == f"{path}: cannot read the manifest (Permission denied); check its permissions"


def test_a_pipe_or_device_is_not_a_manifest(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(UserError) as caught:
        load_manifest(fifo, gpu_offload=False)
    assert str(caught.value) == (f"{fifo}: not a regular file (a device, pipe or socket); "
                                 "give the path of a saved manifest")
    with pytest.raises(UserError) as caught:
        load_manifest(tmp_path / "missing.yaml", gpu_offload=False)
    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: manifest not found; check the path"


def test_a_pipe_as_prompt_file_is_named_on_its_key(manifest, tmp_path):
    os.mkfifo(tmp_path / "prompts.fifo")
    with pytest.raises(UserError) as caught:
        manifest("  - id: f\n    prompt_file: prompts.fifo\n")
    assert str(caught.value) == (f"{tmp_path / 'manifest.yaml'}: run 'f': key 'prompt_file': "
                                 f"{tmp_path / 'prompts.fifo'}: not a regular file (a device, pipe or socket); "
                                 "give the path of a saved prompt file")


def test_a_prompt_file_under_a_user_without_a_home_is_one_line(manifest):
    with pytest.raises(UserError, match="key 'prompt_file': prompt_file ~nosuchuser-energytui/p.txt: no home folder "
                                        "for that user; write the path in full"):
        manifest("  - id: p\n    prompt_file: ~nosuchuser-energytui/p.txt\n")
