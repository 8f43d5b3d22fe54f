"""The one training engine and prediction helper: rules known in advance, on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlib.training import (
    Callback,
    CheckpointError,
    KeepBest,
    batch_plan,
    cosine_schedule,
    make_optimizer,
    predict,
    supervised_step,
    train,
)


def _data(n: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _model(seed: int = 0, out: int = 2) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, out))


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return make_optimizer(model.parameters(), "sgd", lr=0.1)


class _Count(Callback):
    def __init__(self):
        self.steps, self.batch_sizes = 0, []

    def on_step_end(self, state, logs):
        self.steps += 1


# --------------------------------------------------------------------------- batches
@pytest.mark.parametrize("n, bs, sizes", [
    (10, 4, [4, 4, 2]),   # the partial batch is kept
    (9, 4, [4, 4]),       # a lone leftover example is dropped (it would break batch norm)
    (3, 1, [1, 1, 1]),    # batch size 1 trains on every example
    (1, 8, [1]),          # a single example is still one batch
    (8, 8, [8]),
])
def test_batch_plan(n, bs, sizes):
    assert batch_plan(n, bs) == sizes


def test_steps_follow_the_plan_and_batch_size_one_works():
    x, y = _data(9)
    for bs, per_epoch in [(4, 2), (1, 9), (2, 4)]:
        count = _Count()
        hist = train(_model(), (x, y), epochs=3, batch_size=bs, optimizer=_sgd, callbacks=[count], device="cpu")
        assert count.steps == 3 * per_epoch and hist["step"].tolist() == [per_epoch, 2 * per_epoch, 3 * per_epoch]


def test_fractional_epochs_give_rounded_steps():
    x, y = _data(40)  # 4 steps per epoch at batch size 10
    count = _Count()
    train(_model(), (x, y), epochs=0.5, batch_size=10, optimizer=_sgd, callbacks=[count], device="cpu")
    assert count.steps == 2
    count = _Count()
    train(_model(), (x, y), epochs=0.1, batch_size=10, optimizer=_sgd, callbacks=[count], device="cpu")
    assert count.steps == 1, "at least one step"


# --------------------------------------------------------------------------- callbacks
def test_callbacks_run_in_the_documented_order():
    calls = []

    class Spy(Callback):
        def on_fit_start(self, state):
            calls.append("fit_start")

        def on_epoch_start(self, state):
            calls.append(f"epoch_start{state.epoch}")

        def on_step_end(self, state, logs):
            calls.append("step")

        def on_epoch_end(self, state, row):
            calls.append(f"epoch_end{state.epoch}")
            row["extra"] = state.epoch * 10

        def on_fit_end(self, state):
            calls.append("fit_end")

    x, y = _data(8)
    hist = train(_model(), (x, y), epochs=2, batch_size=4, optimizer=_sgd, callbacks=[Spy()], device="cpu")
    assert calls == ["fit_start", "epoch_start0", "step", "step", "epoch_end0",
                     "epoch_start1", "step", "step", "epoch_end1", "fit_end"]
    assert hist["extra"].tolist() == [0, 10], "on_epoch_end adds to the history row"


def test_schedule_sets_each_steps_rate():
    x, y = _data(40)
    rates = []

    class Rate(Callback):
        def on_step_end(self, state, logs):
            rates.append(state.optimizers["main"].param_groups[0]["lr"])

    train(_model(), (x, y), epochs=1, batch_size=10, optimizer=_sgd, schedule=cosine_schedule,
          callbacks=[Rate()], device="cpu")
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]
    assert rates == pytest.approx(expected)


# --------------------------------------------------------------------------- determinism and state
def _weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def test_same_seed_same_weights_and_the_callers_rng_is_untouched():
    x, y = _data()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = _model(), _model()
    train(a, (x, y), epochs=3, batch_size=8, optimizer=_sgd, seed=5, device="cpu")
    assert torch.equal(torch.get_rng_state(), before), "the global RNG is forked, not consumed"
    train(b, (x, y), epochs=3, batch_size=8, optimizer=_sgd, seed=5, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))


def test_no_global_torch_setting_changes():
    from fairlib.training import _flush_denormal_on

    def settings():
        return (torch.get_num_threads(), _flush_denormal_on(), torch.backends.cudnn.benchmark,
                torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
                torch.get_rng_state().sum().item())

    x, y = _data()
    before = settings()
    train(_model(), (x, y), epochs=1, batch_size=8, optimizer=_sgd, device="cpu", num_threads=1,
          flush_denormal=True, deterministic=True)
    assert settings() == before
    with pytest.raises(FloatingPointError):  # also when the run fails
        train(_model(), (x * float("nan"), y), epochs=1, batch_size=8, optimizer=_sgd, device="cpu",
              num_threads=1, flush_denormal=True, deterministic=True)
    assert settings() == before


def test_interrupted_fit_resumes_to_the_same_weights(tmp_path):
    x, y = _data(37)
    full = _model()
    h_full = train(full, (x, y), epochs=5, batch_size=8, optimizer=_sgd, schedule=cosine_schedule, seed=3,
                   device="cpu")

    class Crash(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt("simulated disconnect")

    ckpt = tmp_path / "run.pt"
    part = _model()
    with pytest.raises(KeyboardInterrupt):
        train(part, (x, y), epochs=5, batch_size=8, optimizer=_sgd, schedule=cosine_schedule, seed=3,
              device="cpu", checkpoint=ckpt, callbacks=[Crash()])
    count = _Count()
    resumed = _model()  # a fresh process would rebuild the model; the checkpoint restores it
    h_res = train(resumed, (x, y), epochs=5, batch_size=8, optimizer=_sgd, schedule=cosine_schedule, seed=3,
                  device="cpu", checkpoint=ckpt, callbacks=[count])
    assert count.steps == 3 * len(batch_plan(37, 8)), "only epochs 3-5 run again"
    assert all(torch.equal(p, q) for p, q in zip(_weights(full), _weights(resumed)))
    pd.testing.assert_frame_equal(h_full, h_res)
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    x, y = _data()
    ckpt = tmp_path / "run.pt"
    train(_model(), (x, y), epochs=1, batch_size=8, optimizer=_sgd, device="cpu", checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="different model"):
        train(_model(out=3), (x, y), epochs=1, batch_size=8, optimizer=_sgd, device="cpu", checkpoint=ckpt)


# --------------------------------------------------------------------------- losses and errors
def test_nan_loss_stops_with_the_step_and_the_likely_cause():
    x, y = _data()
    x[17] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step \d+ \(epoch 1\).*learning rate.*inputs"):
        train(_model(), (x, y), epochs=2, batch_size=40, optimizer=_sgd, device="cpu")


def test_weighted_cross_entropy_and_penalty():
    # One step of plain SGD (lr 1, no momentum) on a bias-free 1x2 linear model: the gradient of
    # the weighted mean CE plus penalty is known in closed form.
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    x = torch.tensor([[1.0], [2.0]])
    y = torch.tensor([0, 1])
    w = torch.tensor([1.0, 3.0])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    hist = train(model, (x, y, w), epochs=1, batch_size=2, optimizer=opt, shuffle=False,
                 step=supervised_step("cross_entropy", penalty=lambda m: 0.0 * m.weight.sum()), device="cpu")
    # zero weights: p = (1/2, 1/2); dL/dW[k] = mean_i w_i (p_k - [y_i = k]) x_i
    g0 = (1 * (0.5 - 1) * 1 + 3 * 0.5 * 2) / 2
    g1 = (1 * 0.5 * 1 + 3 * (0.5 - 1) * 2) / 2
    assert model.weight.detach().reshape(-1).tolist() == pytest.approx([-g0, -g1])
    assert hist["loss"].iloc[0] == pytest.approx((1 + 3) / 2 * math.log(2))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size: expected a positive integer"),
    ({"batch_size": -1}, ValueError, "batch_size: expected a positive integer"),
    ({"epochs": 0}, ValueError, "epochs: expected a positive number"),
    ({"epochs": -1}, ValueError, "epochs: expected a positive number"),
    ({"epochs": float("nan")}, ValueError, "epochs: expected a positive number"),
])
def test_bad_training_arguments(kwargs, error, match):
    x, y = _data()
    args = {"epochs": 1, "batch_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        train(_model(), (x, y), optimizer=_sgd, device="cpu", **args)


def test_unknown_loss_lists_the_choices():
    with pytest.raises(ValueError, match=r"loss: unknown loss 'hinge'.*cross_entropy"):
        supervised_step("hinge")


# --------------------------------------------------------------------------- predict
def test_predict_outputs_exact_values_and_restores_mode():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    model.train()
    logits = predict(model, x, batch_size=2)
    assert logits.tolist() == [[1.0, 0.0], [0.0, 2.0], [3.0, 2.0]]
    assert predict(model, x, output="labels").tolist() == [0, 1, 0]
    probs = predict(model, (x, torch.zeros(3)), output="probs")
    assert probs[0].tolist() == pytest.approx([math.exp(1) / (1 + math.exp(1)), 1 / (1 + math.exp(1))])
    assert model.training, "the caller's mode is restored"
    binary = nn.Linear(2, 1)
    with torch.no_grad():
        binary.weight.copy_(torch.tensor([[1.0, -1.0]]))
        binary.bias.zero_()
    squeeze = nn.Sequential(binary, nn.Flatten(0))
    assert predict(squeeze, x, output="labels").tolist() == [1, 0, 1]
    assert predict(squeeze, x, output="probs")[1].item() == pytest.approx(1 / (1 + math.e))


def test_predict_scales_uint8_and_keeps_every_example():
    model = nn.Flatten()
    x = torch.full((5, 1, 1, 1), 255, dtype=torch.uint8)
    out = predict(model, x, batch_size=2)
    assert out.shape == (5, 1) and torch.all(out == 1.0), "uint8 -> [0, 1]; a lone last example is kept"
    with pytest.raises(ValueError, match="output: expected one of"):
        predict(model, x, output="scores")


def test_predict_reads_memory_maps_in_batches(tmp_path):
    arr = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(7, 2))
    arr[:] = np.arange(14, dtype=np.float32).reshape(7, 2)
    out = predict(nn.Identity(), arr, batch_size=3)
    assert out.tolist() == arr.tolist()


def test_cpu_threads_is_temporary_and_cpu_only():
    from fairlib.training import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1, torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(1, "cuda"), cpu_threads(None, "cpu"):
        assert torch.get_num_threads() == before, "a GPU run or None leaves the setting alone"


# --------------------------------------------------------------------------- best-epoch selection
class _Snapshots(Callback):
    """Keeps the weights after every epoch (registered after KeepBest, so it sees what KeepBest saw)."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, state, row):
        self.weights.append([p.detach().clone() for p in state.model.parameters()])


def test_keep_best_ends_with_the_best_epoch_from_from_epoch_on():
    x, y = _data(37)
    calls = []

    def score(model):  # the scores of epochs 1-4; epoch 0 must not be scored at all
        calls.append(1)
        return [0.2, 0.7, 0.4, 0.5][len(calls) - 1]

    keep, snaps = KeepBest(score, from_epoch=1), _Snapshots()
    model = _model()
    h = train(model, (x, y), epochs=5, batch_size=8, optimizer=_sgd, seed=1, device="cpu", callbacks=[keep, snaps])
    assert len(calls) == 4, "epochs before from_epoch are not scored"
    assert keep.epoch == 2 and keep.best == 0.7
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), snaps.weights[2]))
    assert np.isnan(h["val_score"].iloc[0]) and list(h["val_score"].iloc[1:]) == [0.2, 0.7, 0.4, 0.5]
    # ties keep the earlier epoch
    tie = KeepBest(lambda m: 1.0)
    train(_model(), (x, y), epochs=3, batch_size=8, optimizer=_sgd, device="cpu", callbacks=[tie])
    assert tie.epoch == 0


def test_keep_best_survives_a_resume(tmp_path):
    x, y = _data(37)
    values = [0.1, 0.8, 0.3, 0.2]

    whole = _model()
    all_scores = iter(values)
    ref = KeepBest(lambda m: next(all_scores))
    train(whole, (x, y), epochs=4, batch_size=8, optimizer=_sgd, seed=2, device="cpu", callbacks=[ref])
    ckpt = tmp_path / "run.pt"
    part = _model()
    scores = iter(values)
    crash = KeepBest(lambda m: next(scores))

    class Crash(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt("simulated preemption")

    with pytest.raises(KeyboardInterrupt):
        train(part, (x, y), epochs=4, batch_size=8, optimizer=_sgd, seed=2, device="cpu", checkpoint=ckpt,
              callbacks=[crash, Crash()])
    rest = iter(values[2:])
    resumed_keep = KeepBest(lambda m: next(rest))
    resumed = _model()
    train(resumed, (x, y), epochs=4, batch_size=8, optimizer=_sgd, seed=2, device="cpu", checkpoint=ckpt,
          callbacks=[resumed_keep, Callback()])
    assert resumed_keep.epoch == ref.epoch == 1
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), whole.parameters()))


def test_keep_best_bad_input():
    with pytest.raises(TypeError, match="score"):
        KeepBest(0.5)
    with pytest.raises(ValueError, match="from_epoch"):
        KeepBest(lambda m: 0.0, from_epoch=-1)
