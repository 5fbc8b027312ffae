"""The trial record (engine/record.py) is the one declaration of a trial's fields: the schema, the runner,
the manifest, the store's reads and writes and the export all agree with it."""

import csv
import io
import sqlite3
from dataclasses import fields

import pytest

from energytui.engine import record
from energytui.engine.manifest import TrialSpec
from energytui.engine.report import EXPORT_FIELDS, export_text
from energytui.engine.runner import Measurement
from energytui.engine.store import Store


def test_the_trials_table_has_exactly_the_stored_fields(tmp_path):
    store = Store(tmp_path / "fresh.db")
    columns = [row[1] for row in sqlite3.connect(store.path).execute("PRAGMA table_info(trials)")]
    store.close()
    assert sorted(columns) == sorted(record.STORED)


def test_the_manifest_and_the_runner_write_their_declared_fields():
    assert {f.name for f in fields(TrialSpec)} == set(record.named(record.SETTING)) | {"run_id", "config_id"}
    steps = [(1_000_000_000, 1), (1_010_000_000, 1), (1_030_000_000, 1)]
    metrics = Measurement(prompt_tokens=8, gen_tokens=3, t_start_ns=900_000_000, t_first_ns=1_000_000_000,
                          t_end_ns=1_030_000_000, steps=steps, output_text="abc", stop_reason="length",
                          batch_size=1).metrics()
    assert set(metrics) == set(record.named(record.MEASURED))


def test_measured_trials_read_back_with_every_field_in_its_declared_kind(measured_db):
    store = Store(measured_db, read_only=True)
    trials = store.trials(done=True)
    store.close()
    assert trials and set(trials[0]) == set(record.FIELDS) - {"build"}  # build is derived when exported
    for trial in trials:
        for name, value in trial.items():
            assert value is None or isinstance(value, record.FIELDS[name].kind), (name, value)
        energy = {name for name in record.named(record.ENERGY) if trial[name] is not None}
        assert {"energy_j", "j_per_token", "avg_power_w", "energy_tag", "energy_method", "sample_hz"} <= energy


def test_a_write_with_an_undeclared_field_is_refused_and_leaves_nothing(tmp_path):
    store = Store(tmp_path / "t.db")
    host = store.upsert_host({"id": "h1", "hostname": "h"})
    with pytest.raises(ValueError, match="create_run: not fields of the trial record .*: decode_tsp"):
        store.create_run("m.yaml", "sha", host, [{"run_id": "r", "decode_tsp": 1.0}])
    assert store.run_numbers() == [] and store.trials() == []
    store.close()


def test_stored_rows_take_the_declared_kinds():
    assert record.stored_row({"ignore_eos": True, "temperature": 0, "decode_tps": 12}, "t") == {
        "ignore_eos": 1, "temperature": 0.0, "decode_tps": 12.0}
    assert type(record.stored_row({"temperature": 0}, "t")["temperature"]) is float
    with pytest.raises(ValueError, match="trial field threads: expected int, got 'two'"):
        record.stored_row({"threads": "two"}, "t")


def test_units_and_export_columns_come_from_the_record(measured_db):
    assert [record.unit(n) for n in ("ttft_ms", "decode_tps", "j_per_token", "edp_js", "avg_power_w")] == [
        "ms", "tok/s", "J/token", "J·s", "W"]
    assert EXPORT_FIELDS[0] == "trial_id" and EXPORT_FIELDS[-1] == "stop_reason" and len(EXPORT_FIELDS) == 71
    store = Store(measured_db, read_only=True)
    trials = store.trials(done=True)
    store.close()
    rows = list(csv.DictReader(io.StringIO(export_text(trials, "csv"))))
    assert tuple(rows[0]) == EXPORT_FIELDS
    assert [r["trial_id"] for r in rows] == [str(t["id"]) for t in trials]
    assert {r["stop_reason"] for r in rows} == {t["stop_reason"] for t in trials} == {"length"}
