"""fairlib.plan: counted FLOPs and memory, grid-to-total arithmetic, the command line, the course's limits."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from fairlib import plan, sweep

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("01_measuring_bias", "02_bias_amplification", "03_linear_probes", "04_activation_profiles",
            "05_pruning_bias", "06_adversarial_invariance", "07_bias_transfer")
GB = plan.GB


# --------------------------------------------------------------------------- (a) exact counts on tiny models
def test_linear_flops_forward_and_training_by_hand():
    linear = plan.builder(nn.Linear, 4, 3)
    # forward: a (2 x 4) @ (4 x 3) product, 2 m n k = 2 * 2 * 4 * 3
    assert plan.count_flops(linear, (4,), 2) == 48
    # training adds the weight gradient, (3 x 2) @ (2 x 4): another 48; the input needs no gradient
    assert plan.count_flops(linear, (4,), 2, train=True) == 96
    cost = plan.measure(linear, (4,), 2, train=True)
    assert cost.param_bytes == (4 * 3 + 3) * 4
    assert cost.trainable_bytes == cost.param_bytes
    assert cost.activation_bytes == 2 * 4 * 4  # the saved input batch, float32; the weight is a parameter


def test_conv_flops_by_hand():
    conv = plan.builder(nn.Conv2d, 1, 2, 3)
    # a 4 x 4 input gives a 2 x 2 map per output channel: 8 outputs, each 1 * 3 * 3 multiply-adds
    assert plan.count_flops(conv, (1, 4, 4), 1) == 2 * 8 * 9
    assert plan.count_flops(conv, (1, 4, 4), 1, train=True) == 2 * (2 * 8 * 9)
    assert plan.count_flops(conv, (1, 4, 4), 3) == 3 * 2 * 8 * 9


def _two_layers() -> nn.Module:
    # built inside the builder, so that the layers are created on the meta device
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_frozen_layers_get_no_gradient_and_no_optimizer_state():
    net = _two_layers
    full = plan.measure(net, (4,), 2, train=True)
    head = plan.measure(net, (4,), 2, train=True, trainable="2")
    assert full.flops == 2 * (2 * 2 * 4 * 8 + 2 * 2 * 8 * 3) + 2 * 2 * 8 * 3  # grads of both weights, input of 2nd
    assert head.flops == 2 * 2 * 4 * 8 + 2 * (2 * 2 * 8 * 3)  # the first layer runs forward only
    assert head.trainable_bytes == (8 * 3 + 3) * 4


def test_stop_at_counts_only_the_prefix():
    net = _two_layers
    cut = plan.builder(plan.stop_at, net, "0")
    assert plan.count_flops(cut, (4,), 1) == 2 * 4 * 8
    assert plan.output_shapes(net, (4,), {"input": "input", "hidden": "1", "out": "2"}) == {
        "input": (4,), "hidden": (8,), "out": (3,)}


def test_sustained_rate_is_resnet50_training_flops_times_throughput():
    import torchvision

    per_image = plan.count_flops(plan.builder(torchvision.models.resnet50, weights=None), (3, 224, 224), 1, train=True)
    assert 23e9 < per_image < 26e9  # about 3 x 4.1 G multiply-adds x 2
    assert per_image == plan.RESNET50_TRAIN_FLOPS
    assert plan.sustained_flops(True) == pytest.approx(per_image * 1190 * 1200 / 3249)
    assert plan.sustained_flops(False) == pytest.approx(per_image * 426 * 367 / 1229)


def test_stage_cost_formulas():
    linear = plan.builder(nn.Linear, 4, 3)
    stage = plan.Stage("fit", linear, (4,), train_samples=10, batch_size=2, optimizer_state=2, host_bytes=1e9,
                       gpu_bytes=5.0)
    cost = plan.cost_stage(stage)
    train = plan.measure(linear, (4,), 2, train=True)
    assert cost.flops == 10 * 96 / 2
    compute = cost.flops / plan.sustained_flops(False)
    dispatch = 5 * (train.ops * plan.OP_DISPATCH_S + plan.STEP_OVERHEAD_S)
    assert cost.seconds == pytest.approx(max(compute, dispatch))
    assert cost.host_bytes == plan.HOST_BASELINE_GB * GB + 1e9
    # weights + gradients and Adam's two states + saved activations + extra + baseline
    assert cost.gpu_bytes == plan.GPU_BASELINE_GB * GB + 5 + 60 + 60 * 3 + 32
    amp = plan.cost_stage(plan.Stage("fit", linear, (4,), train_samples=10, batch_size=2, amp=True))
    assert amp.flops == cost.flops and amp.compute_s == pytest.approx(cost.flops / plan.sustained_flops(True))


def test_input_pipeline_bounds_and_adds_without_workers():
    decode = plan.Stage("read", images=1000, pipeline="decode", source_pixels=10**6, workers=4)
    # two cores decode in parallel at most, whatever the number of workers
    assert plan.cost_stage(decode).seconds == pytest.approx(1000 * 1e6 / (2 * plan.DECODE_PIXELS_PER_S))
    cache = plan.Stage("read", images=3000, pipeline="cache", source_pixels=128 * 128)
    assert plan.cost_stage(cache).seconds == pytest.approx(3000 / plan.CACHE_IMAGES_PER_S)
    linear = plan.builder(nn.Linear, 4, 3)
    serial = plan.cost_stage(plan.Stage("fit", linear, (4,), train_samples=3000, batch_size=100, pipeline="cache",
                                        source_pixels=128 * 128))
    assert serial.seconds == pytest.approx(max(serial.compute_s, serial.dispatch_s) + 1.0)


def test_stage_validation():
    with pytest.raises(ValueError, match="samples without a model"):
        plan.Stage("x", train_samples=3)
    with pytest.raises(ValueError, match="pipeline"):
        plan.Stage("x", pipeline="tape")
    with pytest.raises(ValueError, match="input_shape"):
        plan.Stage("x", plan.builder(nn.Linear, 4, 3))


# --------------------------------------------------------------------------- (b) grid to totals
def _fake_run(x: int) -> dict:
    return {"y": x}


def _fake_grid(profile: str) -> list[dict]:
    if profile == "paper":
        raise KeyError("paper")
    return sweep.grid(x=[1, 2, 3])


def _fake_cost(config: dict) -> list:
    return [plan.Stage("prepare", cpu_seconds=360.0, host_bytes=1e9, shared="prepare-once"),
            plan.Stage("work", cpu_seconds=36.0 * config["x"], host_bytes=config["x"] * 1e9)]


@pytest.fixture
def fake_chapter():
    sweep.register("zz_plan_test", "fake", _fake_run, _fake_grid, "a test chapter", cost=_fake_cost)
    yield "zz_plan_test"
    sweep._EXPERIMENTS.pop(("zz_plan_test", "fake"), None)


def test_grid_totals_add_work_count_shared_stages_once_and_keep_peaks(fake_chapter):
    chapter = plan.plan(fake_chapter, "full")
    assert chapter.runs == 3
    # the shared stage once (360 s), the work 36 + 72 + 108 s
    assert chapter.gpu_hours_t4 == pytest.approx((360 + 36 * 6) / 3600)
    assert chapter.peak_host_gb == pytest.approx(plan.HOST_BASELINE_GB + 3)
    assert chapter.flops == 0 and chapter.peak_gpu_gb == 0
    e = chapter.experiments[0]
    assert e.stages["prepare"].seconds == 360 and e.stages["work"].seconds == pytest.approx(216)
    assert chapter.summary() == "full plan: 3 runs, 0.16 T4-hours, peak 5.0 GB host / 0.0 GB GPU"
    assert chapter.to_dict()["within_limits"] is True


def test_profile_without_a_grid_is_reported_not_counted(fake_chapter):
    chapter = plan.plan(fake_chapter, "paper")
    assert not chapter.supported and chapter.runs == 0
    assert "no paper grid yet for fake" in chapter.summary()
    assert "does not support the 'paper' profile" in plan.format_plan(chapter)


def test_unknown_chapter_lists_the_chapters():
    with pytest.raises(ValueError, match="no chapter 'nope'.*05_pruning_bias"):
        plan.plan("nope", "quick")
    assert plan.plan("notebooks/01_measuring_bias.py", "quick").notebook == "01_measuring_bias"


def test_every_experiment_has_a_cost_function_and_plans_quick():
    for name, experiment in sweep.experiments().items():
        assert experiment.cost is not None, f"{name} is registered without cost="
    for chapter in CHAPTERS:
        assert plan.plan(chapter, "quick").runs > 0


# --------------------------------------------------------------------------- (c) the command line
def test_cli_text_and_json(capsys):
    assert sweep.main(["plan", "01_measuring_bias", "--profile", "quick"]) == 0
    text = capsys.readouterr().out
    assert "total" in text and "T4-hours" in text and "TFLOP/s" in text and "group_accuracy" in text
    assert sweep.main(["plan", "01_measuring_bias", "--profile", "quick", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"runs", "gpu_hours_t4", "peak_host_gb", "peak_gpu_gb", "experiments", "rates"} <= set(data)
    assert data["runs"] == sum(e["runs"] for e in data["experiments"])
    assert math.isclose(data["gpu_hours_t4"], sum(e["gpu_hours_t4"] for e in data["experiments"]))


def test_cli_unknown_notebook_is_a_usage_error(capsys):
    assert sweep.main(["plan", "99_nothing", "--profile", "quick"]) == 2
    err = capsys.readouterr().err
    assert "no chapter '99_nothing'" in err and "07_bias_transfer" in err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "fairlib.sweep", "plan", "04_activation_profiles", "--profile",
                          "quick", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["notebook"] == "04_activation_profiles"


# --------------------------------------------------------------------------- (d) the course's limits
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_full_plans_within_limits(chapter):
    p = plan.plan(chapter, "full")
    assert p.supported, p.summary()
    assert p.gpu_hours_t4 <= plan.LIMIT_T4_HOURS, p.summary()
    assert p.peak_host_gb <= plan.LIMIT_HOST_GB, p.summary()
    assert p.peak_gpu_gb <= plan.LIMIT_GPU_GB, p.summary()
