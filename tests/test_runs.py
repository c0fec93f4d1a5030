"""Run records: TensorBoard event files read back with TensorBoard's own EventAccumulator,
curves.png's axes, and `netspec runs` (a table of runs; two runs compared).

Truths: metrics.jsonl rows (each epoch's numbers, written by a separate path), the settings
this file writes into its specs, and values recomputed here from those rows.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from netspec.cli import main
from netspec.runtime.run import metrics
from netspec.runtime.run import run_dir
from netspec.runtime.run import index as run_index
from netspec.runtime.run import tensorboard_log
from netspec.runtime.train.entry import RunOptions, train

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = """
name: blobs_mlp
input: [2]
layers:
  - {op: linear, out: 8}
  - relu
  - {op: linear, out: 2}
train:
  dataset: {name: csv, path: blobs.csv, target: label, task: classification}
  batch_size: 32
  epochs: 2
  lr: LR
  momentum: 0.9
"""


def _blobs(path: Path) -> None:
    rng = random.Random(0)
    lines = ["x,y,label"]
    for i in range(300):
        label = i % 2
        lines.append(f"{rng.gauss(2 * label - 1, 0.8):.4f},{rng.gauss(1 - 2 * label, 0.8):.4f},{'ab'[label]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _train(folder: Path, lr: float, out: str, **overrides) -> Path:
    spec = folder / f"spec_{out}.yaml"
    spec.write_text(SPEC.replace("LR", str(lr)), encoding="utf-8")
    run = folder / "runs" / out
    train(spec, overrides, RunOptions(device="cpu", quiet=True, out=run, save=True))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    _blobs(folder / "blobs.csv")
    return {"a": _train(folder, 0.1, "a"), "b": _train(folder, 0.02, "b"), "root": folder / "runs"}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / metrics.METRICS).read_text().splitlines()]


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


# ---------------------------------------------------------------------- TensorBoard
def test_event_files_hold_each_epochs_scalars(runs):
    rows = _rows(runs["a"])
    assert [r["epoch"] for r in rows] == [1, 2]
    acc = _events(runs["a"])
    assert list(runs["a"].glob("events.out.tfevents.*"))
    for key, tag in tensorboard_log.SCALARS.items():
        expected = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        if not expected:
            assert tag not in acc.Tags()["scalars"]
            continue
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected], tag
        for (_, value), (_, want) in zip(got, expected):
            assert value == pytest.approx(want, rel=1e-6), tag
    assert {"loss/test", "accuracy/test", "loss/train", "accuracy/train"} <= set(acc.Tags()["scalars"])


def test_event_files_hold_the_specs_settings_for_the_hparams_tab(runs):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _events(runs["b"])
    content = acc.PluginTagToContent("hparams")
    parsed = {tag: plugin_data_pb2.HParamsPluginData.FromString(data) for tag, data in content.items()}
    start = next(p.session_start_info for p in parsed.values() if p.HasField("session_start_info"))
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(0.02)
    assert start.hparams["optimizer.momentum"].number_value == pytest.approx(0.9)
    assert start.hparams["batch_size"].number_value == 32
    assert start.hparams["epochs"].number_value == 2
    assert start.hparams["optimizer.name"].string_value == "sgd"
    assert start.hparams["dataset.name"].string_value == "csv"
    experiment = next(p.experiment for p in parsed.values() if p.HasField("experiment"))
    assert {m.name.tag for m in experiment.metric_infos} >= {"accuracy/test", "loss/test"}


def test_resume_continues_the_event_log_without_repeating_epochs(tmp_path):
    _blobs(tmp_path / "blobs.csv")
    run = _train(tmp_path, 0.1, "r")
    train(None, {"epochs": 3}, RunOptions(device="cpu", quiet=True, resume=run, save=True))
    steps = [e.step for e in _events(run).Scalars("accuracy/test")]
    assert steps == [1, 2, 3]
    assert [r["epoch"] for r in _rows(run)] == [1, 2, 3]


def test_a_closed_form_solve_is_logged_as_one_epoch(tmp_path):
    spec = Path(__file__).resolve().parents[1] / "specs" / "linear_regression_closed_form.yaml"
    run = tmp_path / "cf"
    train(spec, None, RunOptions(device="cpu", quiet=True, out=run, save=True))
    (row,) = _rows(run)
    events = _events(run)
    assert [(e.step, e.value) for e in events.Scalars("loss/test")] == [(1, pytest.approx(row["test_loss"], rel=1e-6))]


def test_hparams_flatten_nested_settings():
    flat = tensorboard_log.hparams({"optimizer": {"name": "adam", "lr": 0.001}, "augment": [{"p": 1}], "limit": None, "amp": True})
    assert flat == {"optimizer.name": "adam", "optimizer.lr": 0.001, "augment": "[{'p': 1}]", "amp": True}


# ---------------------------------------------------------------------- curves.png
def test_curves_put_loss_and_accuracy_on_separate_labelled_axes(runs):
    rows = _rows(runs["a"])
    fig = metrics.curves_figure(rows, "blobs")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    lines = {line.get_label(): list(line.get_ydata()) for line in loss_ax.get_lines()}
    assert set(lines) == {"train loss", "test loss"}
    assert lines["test loss"] == pytest.approx([r["test_loss"] for r in rows])
    acc_lines = {line.get_label(): list(line.get_ydata()) for line in acc_ax.get_lines()}
    assert set(acc_lines) == {"train acc", "test acc"}
    assert acc_lines["test acc"] == pytest.approx([r["test_acc"] for r in rows])
    assert (runs["a"] / metrics.CURVES).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_of_a_regression_have_only_a_loss_axis():
    rows = [{"epoch": 1, "train_loss": 2.0, "test_loss": 2.5, "train_acc": None}, {"epoch": 2, "train_loss": 1.0, "test_loss": 1.5}]
    fig = metrics.curves_figure(rows)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "loss"
    assert {line.get_label() for line in fig.axes[0].get_lines()} == {"train loss", "test loss"}


# ---------------------------------------------------------------------- netspec runs
def test_file_names_agree_with_the_run_folder():
    assert (run_index.SPEC_FILE, run_index.METRICS, run_index.SUMMARY) == (run_dir.SPEC_FILE, metrics.METRICS, metrics.SUMMARY)


def test_runs_lists_every_run_with_its_accuracy(runs):
    result = CliRunner().invoke(main, ["runs", str(runs["root"])])
    assert result.exit_code == 0, result.output
    text = result.output
    for name, lr in (("a", 0.1), ("b", 0.02)):
        rows = _rows(runs[name])
        best = max(rows, key=lambda r: r["test_acc"])
        line = next(line for line in text.splitlines() if line.strip("│ ").startswith(name + " "))
        assert "blobs_mlp" in line and f"sgd lr {lr:g}" in line and "│    32 │" in line
        assert f"{100 * rows[-1]['test_acc']:.2f}%" in line
        assert f"{100 * best['test_acc']:.2f}% (ep {best['epoch']})" in line


def test_runs_json_matches_the_metrics(runs):
    result = CliRunner().invoke(main, ["runs", str(runs["root"]), "--json"])
    assert result.exit_code == 0, result.output
    listed = {Path(r["run"]).name: r for r in json.loads(result.output)}
    assert set(listed) == {"a", "b"}
    for name in ("a", "b"):
        rows = _rows(runs[name])
        summary = json.loads((runs[name] / metrics.SUMMARY).read_text())
        assert listed[name]["best_test_acc"] == max(r["test_acc"] for r in rows)
        assert listed[name]["final_test_acc"] == rows[-1]["test_acc"]
        assert listed[name]["final_test_loss"] == rows[-1]["test_loss"]
        assert listed[name]["train_seconds"] == summary["train_seconds"]
        assert listed[name]["finished"] and listed[name]["epochs"] == 2


def test_an_unfinished_run_is_listed_with_its_rows_so_far(runs, tmp_path):
    run = tmp_path / "runs" / "stopped"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text((runs["a"] / "spec.yaml").read_text())
    (run / "metrics.jsonl").write_text((runs["a"] / "metrics.jsonl").read_text().splitlines()[0] + "\n{\"epoch\": 2, \"tr")
    result = CliRunner().invoke(main, ["runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "stopped (unfinished)" in result.output and "1/2" in result.output


def test_two_runs_compared_show_metrics_and_the_spec_diff(runs):
    result = CliRunner().invoke(main, ["runs", str(runs["a"]), str(runs["b"])])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "-  lr: 0.1" in text and "+  lr: 0.02" in text
    a, b = _rows(runs["a"])[-1], _rows(runs["b"])[-1]
    line = next(line for line in text.splitlines() if "final test acc" in line)
    assert f"{100 * a['test_acc']:.2f}%" in line and f"{100 * b['test_acc']:.2f}%" in line
    assert f"{100 * (b['test_acc'] - a['test_acc']):+.2f} pts" in line
    same = CliRunner().invoke(main, ["runs", str(runs["a"]), str(runs["a"])])
    assert "the same spec" in same.output


@pytest.mark.parametrize("args, phrase", [
    (["runs", "/nonexistent/runs"], "no such folder"),
    (["runs", "A", "B", "C"], "give one folder to list, or two"),
])
def test_runs_user_errors_exit_2_in_one_line(args, phrase):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and phrase in result.output and len(result.output.strip().splitlines()) == 1


def test_runs_of_folders_that_are_not_runs(tmp_path, runs):
    empty = CliRunner().invoke(main, ["runs", str(tmp_path)])
    assert empty.exit_code == 2 and "no run folders" in empty.output
    other = CliRunner().invoke(main, ["runs", str(runs["a"]), str(tmp_path)])
    assert other.exit_code == 2 and "not a run folder" in other.output


def test_runs_needs_no_torch(runs):
    import subprocess
    import sys

    code = ("import sys; from netspec.cli import main; sys.argv = ['netspec', 'runs', sys.argv[1], '--json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code, str(runs["root"])], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert math.isfinite(json.loads(done.stdout)[0]["final_test_acc"])
