"""fairlib.sweep: grids, the store's contract, resuming and failure handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlib import sweep

CALLS: list[dict] = []
BROKEN = {2}  # the inputs on which `fragile` raises


def square(x: int, label: str = "a") -> dict:
    """A run function: records its calls so tests can count them."""
    CALLS.append({"x": x, "label": label})
    return {"y": x * x, "pair": [x, -x]}


def fragile(x: int) -> dict:
    if x in BROKEN:
        raise RuntimeError(f"planted failure at x = {x}")
    CALLS.append({"x": x})
    return {"y": 10 * x}


def bad_result(x: int):
    return [x]


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_grid_is_the_cartesian_product_in_a_stable_order():
    assert sweep.grid(a=[1, 2], b=["x", "y"]) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert len(sweep.grid(a=range(3), b=[0.1], c=np.arange(4))) == 12
    with pytest.raises(TypeError, match="b: expected a list of values"):
        sweep.grid(a=[1], b="xy")
    with pytest.raises(ValueError, match="a: the axis is empty"):
        sweep.grid(a=[])


def test_run_returns_rows_in_config_order_config_then_result(tmp_path):
    configs = sweep.grid(x=[3, 1, 2])
    frame = sweep.run(square, configs, store=tmp_path, progress=False)
    assert list(frame.columns) == ["x", "y", "pair", "duration_s"]
    assert frame.x.tolist() == [3, 1, 2] and frame.y.tolist() == [9, 1, 4]
    assert frame.pair.tolist() == [[3, -3], [1, -1], [2, -2]]
    record = json.loads((tmp_path / f"{sweep.config_key({'x': 3})}.json").read_text())
    assert record["config"] == {"x": 3} and record["result"] == {"y": 9, "pair": [3, -3]}
    assert {"fairlib_version", "duration_s", "host", "function"} <= set(record)
    pd.testing.assert_frame_equal(sweep.load(tmp_path).sort_values("x").reset_index(drop=True)[["x", "y"]],
                                  frame.sort_values("x").reset_index(drop=True)[["x", "y"]])


def test_interrupted_sweep_reruns_only_the_missing_configs(tmp_path):
    configs = sweep.grid(x=list(range(6)))
    # Simulate a crash after k = 2 of n = 6 configurations: only their files exist.
    sweep.run(square, configs[:2], store=tmp_path, progress=False)
    assert len(CALLS) == 2
    CALLS.clear()
    frame = sweep.run(square, configs, store=tmp_path, progress=False)
    assert sorted(c["x"] for c in CALLS) == [2, 3, 4, 5], "only the n - k missing configurations run"
    assert frame.y.tolist() == [x * x for x in range(6)]
    CALLS.clear()
    sweep.run(square, configs, store=tmp_path, progress=False)
    assert CALLS == [], "a finished sweep runs nothing"


def test_failing_config_is_recorded_and_the_others_finish(tmp_path):
    configs = sweep.grid(x=[1, 2, 3])
    with pytest.raises(sweep.SweepError, match=r"1 of 3 configurations failed") as info:
        sweep.run(fragile, configs, store=tmp_path, progress=False)
    assert info.value.failed == [{"x": 2}]
    assert sorted(c["x"] for c in CALLS) == [1, 3]
    failure = json.loads((tmp_path / "failed" / f"{sweep.config_key({'x': 2})}.json").read_text())
    assert "planted failure at x = 2" in failure["traceback"]
    assert sorted(sweep.load(tmp_path).x) == [1, 3]
    # Without retry_failed the failure is reported again and nothing runs.
    CALLS.clear()
    with pytest.raises(sweep.SweepError):
        sweep.run(fragile, configs, store=tmp_path, progress=False)
    assert CALLS == []


def test_retry_failed_runs_failures_again(tmp_path, monkeypatch):
    configs = sweep.grid(x=[1, 2])
    with pytest.raises(sweep.SweepError):
        sweep.run(fragile, configs, store=tmp_path, progress=False)
    monkeypatch.setattr(sys.modules[__name__], "BROKEN", set())  # the cause is fixed
    CALLS.clear()
    frame = sweep.run(fragile, configs, store=tmp_path, retry_failed=True, progress=False)
    assert frame.y.tolist() == [10, 20] and CALLS == [{"x": 2}], "only the failure runs again"
    assert not list((tmp_path / "failed").glob("*.json")), "a retried success clears its failure record"


def test_config_key_is_stable_across_processes_and_key_order():
    config = {"lr": 0.1, "depth": 20, "name": "resnet", "grid": [1, 2]}
    shuffled = dict(reversed(list(config.items())))
    assert sweep.config_key(config) == sweep.config_key(shuffled)
    assert sweep.config_key({**config, "lr": np.float64(0.1)}) == sweep.config_key(config)
    code = ("from fairlib import sweep; print(sweep.config_key("
            "{'name': 'resnet', 'grid': [1, 2], 'depth': 20, 'lr': 0.1}))")
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == sweep.config_key(config)
    assert sweep.config_key(config) != sweep.config_key({**config, "lr": 0.2})


def test_crash_during_write_leaves_no_result_file(tmp_path, monkeypatch):
    def exploding_dump(obj, fh, **kw):
        fh.write('{"half": ')
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(sweep.json, "dump", exploding_dump)
    with pytest.raises(OSError, match="disk full"):
        sweep.run(square, [{"x": 1}], store=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == [], "neither a result nor a temporary file is left"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"configs": [{"x": object()}]}, TypeError, "x: object"),
        ({"configs": [{"x": float("nan")}]}, ValueError, "x: nan"),
        ({"configs": [{"x": {1: 2}}]}, TypeError, "x: keys must be strings"),
        ({"configs": {"x": 1}}, TypeError, "configs: expected a list of dicts"),
        ({"configs": [{"x": 1}], "executor": "slurm"}, ValueError, r"executor: unknown executor 'slurm'.*local"),
    ],
)
def test_bad_input_is_named(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        sweep.run(square, store=tmp_path, progress=False, **kwargs)
    assert not list(tmp_path.glob("*.json")), "nothing is written for a rejected sweep"


def test_store_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "results.json"
    f.write_text("{}")
    with pytest.raises(ValueError, match="store: .* is a file"):
        sweep.run(square, [{"x": 1}], store=f, progress=False)
    with pytest.raises(ValueError, match="store: .* is a file"):
        sweep.load(f)


def test_bad_result_is_recorded_as_a_failure(tmp_path):
    with pytest.raises(sweep.SweepError):
        sweep.run(bad_result, [{"x": 1}], store=tmp_path, progress=False)
    failure = json.loads(next((tmp_path / "failed").glob("*.json")).read_text())
    assert "must return a dict" in failure["traceback"]


def test_store_of_another_function_is_refused(tmp_path):
    sweep.run(square, [{"x": 1}], store=tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds results of .*square"):
        sweep.run(fragile, [{"x": 1}], store=tmp_path, progress=False)


def test_duplicate_configs_run_once(tmp_path):
    frame = sweep.run(square, [{"x": 2}, {"x": 2}], store=tmp_path, progress=False)
    assert len(CALLS) == 1 and frame.y.tolist() == [4, 4]


def test_default_store_is_fresh_in_the_book_and_results_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRLIB_RESULTS", str(tmp_path))
    monkeypatch.delenv("FAIRLIB_BOOK", raising=False)
    assert sweep.default_store("02_bias_amplification", "rq1") == tmp_path / "02_bias_amplification" / "rq1"
    monkeypatch.setenv("FAIRLIB_BOOK", "1")
    fresh = sweep.default_store("02_bias_amplification", "rq1")
    assert fresh.is_dir() and not list(fresh.iterdir()) and tmp_path not in fresh.parents
    assert sweep.default_store("x") != sweep.default_store("x"), "each call is a new, empty store"
    Path(fresh).rmdir()


def test_register_and_list_experiments():
    exp = sweep.register("99_test_chapter", "squares", square, lambda profile: sweep.grid(x=[1, 2]))
    assert sweep.experiments("99_test_chapter")["squares"] is exp
    assert exp.configs("quick") == [{"x": 1}, {"x": 2}]
    with pytest.raises(ValueError, match="profile: unknown profile 'huge'"):
        exp.configs("huge")
    with pytest.raises(ValueError, match=r"chapter: no experiments registered for 'nope'.*99_test_chapter"):
        sweep.experiments("nope")

    def local(x):
        return {"x": x}

    with pytest.raises(ValueError, match="not a module-level function"):
        sweep.register("99_test_chapter", "local", local, lambda p: [])


# --------------------------------------------------------------------------- within-run checkpoints
def interrupted_fit(seed: int, epochs: int, interrupt_at: int = -1, marker: str = "") -> dict:
    """A pruned model trained by the engine; a Ctrl-C (once) at ``interrupt_at``, as a Colab disconnect."""
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from fairlib.training import Callback, make_optimizer, train

    class Interrupt(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 1:  # pruned as it trains (GMP): the checkpoint holds masks the fresh model lacks
                prune.l1_unstructured(state.model[0], "weight", amount=0.5)
            if state.epoch == interrupt_at and marker and not Path(marker).exists():
                Path(marker).write_text("interrupted once")
                raise KeyboardInterrupt("simulated disconnect")

    class Count(Callback):
        steps = 0

        def on_step_end(self, state, logs):
            Count.steps += 1

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(48, 4, generator=g)
    y = (x[:, 0] > 0).long()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    train(model, (x, y), epochs=epochs, batch_size=16, seed=seed, device="cpu",
          optimizer=lambda m: make_optimizer(m.parameters(), "adam", lr=0.01), callbacks=[Interrupt(), Count()])
    return {"weights": [float(v) for v in model[0].weight.detach().flatten()], "steps_here": Count.steps,
            "zeros": int((model[0].weight == 0).sum())}


def test_an_interrupted_run_resumes_from_its_checkpoint_in_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRLIB_CHECKPOINT_S", "0")
    config = {"seed": 3, "epochs": 5, "interrupt_at": 3, "marker": str(tmp_path / "hit")}
    whole = interrupted_fit(**{**config, "marker": ""})
    store = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(interrupted_fit, [config], store=store, progress=False)
    key = sweep.config_key(config)
    assert (store / "checkpoints" / key / "train-0.pt").exists() and not list(store.glob("*.json"))
    row = sweep.run(interrupted_fit, [config], store=store, progress=False).iloc[0]
    assert row["weights"] == whole["weights"] and row["zeros"] == whole["zeros"] == 16
    assert row["steps_here"] == 2 * 3 and whole["steps_here"] == 5 * 3, "epochs 4 and 5 only"
    assert not (store / "checkpoints" / key).exists()


def test_checkpoint_seconds_is_validated(monkeypatch):
    monkeypatch.setenv("FAIRLIB_CHECKPOINT_S", "soon")
    with pytest.raises(ValueError, match="FAIRLIB_CHECKPOINT_S"):
        sweep.checkpoint_seconds()
    monkeypatch.delenv("FAIRLIB_CHECKPOINT_S")
    assert sweep.checkpoint_seconds() == 300.0
    assert sweep.current_run() is None, "outside a sweep no engine run checkpoints by itself"


# --------------------------------------------------------------------------- command line
def _cli_grid(profile: str) -> list[dict]:
    return [{"x": x} for x in ((1, 2, 3) if profile == "quick" else (1, 2, 3, 4, 5))]


def _cli_cost(config: dict) -> list:
    from fairlib.plan import Stage

    return [Stage("work", cpu_seconds=36.0 * config["x"])]


@pytest.fixture
def cli_chapter():
    """A chapter of two registered experiments, for this test only (the registry is global)."""
    sweep.register("99_cli_test", "squares", square, _cli_grid, "test experiment", cost=_cli_cost)
    sweep.register("99_cli_test", "fragile", fragile, _cli_grid, "test experiment", cost=_cli_cost)
    yield
    for name in ("squares", "fragile"):
        sweep._EXPERIMENTS.pop(("99_cli_test", name))


def test_cli_run_status_and_usage_errors(tmp_path, capsys, cli_chapter):
    rc = sweep.main(["run", "99_cli_test", "--profile", "full", "--store", str(tmp_path), "--only", "squares"])
    assert rc == 0 and len(CALLS) == 5
    assert len(list((tmp_path / "99_cli_test" / "squares").glob("*.json"))) == 5, "DIR/<chapter>/<experiment>"
    (tmp_path / "99_cli_test" / "squares" / f"{sweep.config_key({'x': 4})}.json").unlink()
    capsys.readouterr()
    assert sweep.main(["status", "99_cli_test", "--profile", "full", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    squares = next(line for line in out.splitlines() if line.startswith("squares")).split()
    fragile_row = next(line for line in out.splitlines() if line.startswith("fragile")).split()
    # configs, done, failed, pending, then the plan's hours of what is not done (36 s per unit of x)
    assert squares[1:5] == ["5", "4", "0", "1"] and float(squares[5]) == pytest.approx(36 * 4 / 3600, rel=0.05)
    assert fragile_row[1:5] == ["5", "0", "0", "5"]
    CALLS.clear()
    assert sweep.main(["run", "99_cli_test", "--profile", "full", "--store", str(tmp_path)]) == 1, "a failure: rc 1"
    assert len(CALLS) == 1 + 4, "only x = 4 of squares ran again; fragile ran its five (x = 2 raised)"
    assert "1 of 5 configurations failed" in capsys.readouterr().err
    assert sweep.main(["status", "99_cli_test", "--profile", "full", "--store", str(tmp_path)]) == 0
    fragile_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("fragile")).split()
    assert fragile_row[1:5] == ["5", "4", "1", "0"]
    for argv, message in ((["run", "99_cli_test", "--store", str(tmp_path), "--only", "cubes"],
                           "choose from ['fragile', 'squares']"),
                          (["status", "98_nothing", "--store", str(tmp_path)], "available: "),
                          (["run", "99_cli_test", "--profile", "huge", "--store", str(tmp_path)], "unknown profile"),
                          (["run", "99_cli_test", "--store", str(tmp_path), "--num-gpus", "1"], "--executor ray")):
        assert sweep.main(argv) == 2, argv
        assert message in capsys.readouterr().err
