"""fairlib.sweep on Ray: the same rows as the local executor, failures recorded, resuming.

Every test here runs on one local Ray instance with 2 CPUs, started by the module's fixture and
stopped afterwards (a few seconds). The run functions below travel to the workers by value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from fairlib import sweep
from fairlib.training import Callback, make_optimizer, train

ray = pytest.importorskip("ray", reason="Ray is part of the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def fit_line(seed: int, epochs: int = 3, fail: bool = False, crash_at: int = -1, marker: str = "") -> dict:
    """Trains a tiny regression with the engine; ``crash_at``: the worker process dies at that epoch, once."""
    if fail:
        raise ValueError(f"planted failure (seed {seed})")

    class Crash(Callback):
        def on_epoch_start(self, state):
            if state.epoch == crash_at and marker and not Path(marker).exists():
                Path(marker).write_text("crashed once")
                os._exit(1)  # the whole process dies, as on a preempted node

    class Count(Callback):
        steps = 0

        def on_step_end(self, state, logs):
            Count.steps += 1

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(64, 1, generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Linear(3, 1)
    history = train(model, (x, y), epochs=epochs, batch_size=16, seed=seed, device="cpu",
                    optimizer=lambda m: make_optimizer(m.parameters(), "sgd", lr=0.05),
                    step=lambda state, batch: _mse_step(state, batch), callbacks=[Crash(), Count()])
    return {"weights": [float(v) for v in model.weight.detach().flatten()], "bias": float(model.bias.detach()),
            "losses": [float(v) for v in history["loss"]], "steps_here": Count.steps}


def _mse_step(state, batch):
    loss = nn.functional.mse_loss(state.model(batch[0]), batch[1])
    state.optimize(loss)
    return {"loss": float(loss.detach())}


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="duration_s"), b.drop(columns="duration_s"))


def test_ray_gives_the_local_rows(local_ray, tmp_path):
    configs = sweep.grid(seed=[0, 1, 2, 3], epochs=[2])
    local = sweep.run(fit_line, configs, store=tmp_path / "local", progress=False)
    remote = sweep.run(fit_line, configs, store=tmp_path / "ray", executor="ray", resources={"num_cpus": 1},
                       progress=False)
    _same_rows(local, remote)
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.json")) == \
        sorted(p.name for p in (tmp_path / "local").glob("*.json"))
    assert not (tmp_path / "ray" / "checkpoints").exists() or not any((tmp_path / "ray" / "checkpoints").iterdir())


def test_ray_records_a_failure_and_finishes_the_rest(local_ray, tmp_path):
    configs = [{"seed": 0}, {"seed": 1, "fail": True}, {"seed": 2}]
    with pytest.raises(sweep.SweepError, match="1 of 3 configurations failed") as err:
        sweep.run(fit_line, configs, store=tmp_path, executor="ray", progress=False)
    assert err.value.failed == [{"seed": 1, "fail": True}]
    assert len(list(tmp_path.glob("*.json"))) == 2
    record = next((tmp_path / "failed").glob("*.json")).read_text()
    assert "planted failure (seed 1)" in record and "Traceback" in record


def test_ray_rerun_submits_only_the_missing_configs(local_ray, tmp_path, monkeypatch):
    configs = sweep.grid(seed=[0, 1, 2, 3, 4])
    first = sweep.run(fit_line, configs, store=tmp_path, executor="ray", progress=False)
    kept = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    for config in configs[1:3]:
        (tmp_path / f"{sweep.config_key(config)}.json").unlink()
    submitted = []
    real = sweep.EXECUTORS["ray"]

    def spy(fn, pending, **options):
        submitted.extend(config for _, config, _ in pending)
        yield from real(fn, pending, **options)

    monkeypatch.setitem(sweep.EXECUTORS, "ray", spy)
    again = sweep.run(fit_line, configs, store=tmp_path, executor="ray", progress=False)
    assert submitted == configs[1:3], "only the two missing configurations are submitted"
    _same_rows(first, again)
    for name, text in kept.items():  # the others were not rewritten
        if (tmp_path / name).exists() and name not in {f"{sweep.config_key(c)}.json" for c in configs[1:3]}:
            assert (tmp_path / name).read_text() == text
    monkeypatch.setitem(sweep.EXECUTORS, "ray", lambda *a, **k: pytest.fail("nothing to submit"))
    sweep.run(fit_line, configs, store=tmp_path, executor="ray", progress=False)


def test_a_killed_worker_resumes_from_its_checkpoint(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRLIB_CHECKPOINT_S", "0")  # save after every epoch
    config = {"seed": 7, "epochs": 6, "crash_at": 4, "marker": str(tmp_path / "crashed")}
    whole = fit_line(**{**config, "marker": ""})
    store = tmp_path / "store"
    with pytest.raises(sweep.SweepError, match="1 of 1"):
        sweep.run(fit_line, [config], store=store, executor="ray", progress=False)
    error = next((store / "failed").glob("*.json")).read_text()
    assert "(Ray)" in error, "the dead worker is recorded"
    key = sweep.config_key(config)
    assert (store / "checkpoints" / key / "train-0.pt").exists(), "epochs 1-4 reached the driver"
    resumed = sweep.run(fit_line, [config], store=store, executor="ray", retry_failed=True, progress=False)
    row = resumed.iloc[0]
    assert row["weights"] == whole["weights"] and row["bias"] == whole["bias"] and row["losses"] == whole["losses"]
    assert row["steps_here"] == 2 * 4 and whole["steps_here"] == 6 * 4, "only epochs 5 and 6 ran again"
    assert not (store / "checkpoints" / key).exists(), "a finished configuration's checkpoints are removed"


def test_ray_bad_resources_and_missing_ray(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="Ray tasks take"):
        sweep.run(fit_line, [{"seed": 0}], store=tmp_path, executor="ray", resources={"gpus": 1})
    with pytest.raises(ValueError, match="pass executor='ray'"):
        sweep.run(fit_line, [{"seed": 0}], store=tmp_path, resources={"num_gpus": 1})
    with pytest.raises(ValueError, match="num_gpus must be a number"):
        sweep.run(fit_line, [{"seed": 0}], store=tmp_path, executor="ray", resources={"num_gpus": -1})
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "fairlib\[ray\]"'):
        sweep.run(fit_line, [{"seed": 0}], store=tmp_path, executor="ray")
    assert not list(tmp_path.glob("*.json")), "nothing ran"
