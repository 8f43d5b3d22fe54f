import numpy as np
import pytest
import torch

import fairlib
from fairlib.notebook import building_book, interactive


def test_profile_from_environment_and_validation(monkeypatch):
    monkeypatch.delenv("FAIRLIB_PROFILE", raising=False)
    assert fairlib.get_profile() == "quick"
    monkeypatch.setenv("FAIRLIB_PROFILE", "FULL")
    assert fairlib.get_profile() == "full"
    with pytest.raises(ValueError, match="profile: unknown profile 'gpu'; choose one of quick, full, paper"):
        fairlib.get_profile("gpu")


def test_select_picks_the_profile_and_names_missing_entries():
    settings = {"quick": {"n": 1}, "full": {"n": 2}}
    assert fairlib.select(settings, "full") == {"n": 2}
    with pytest.raises(ValueError, match="no entry for profile 'full'"):
        fairlib.select({"quick": {}}, "full")


def test_seed_everything_repeats_exactly():
    g1 = fairlib.seed_everything(7)
    a = (torch.rand(3), np.random.rand(2), g1.random())
    g2 = fairlib.seed_everything(7)
    b = (torch.rand(3), np.random.rand(2), g2.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError, match="seed: expected a non-negative integer"):
        fairlib.seed_everything(-1)


def test_device_override(monkeypatch):
    monkeypatch.setenv("FAIRLIB_DEVICE", "cpu")
    assert fairlib.get_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA was requested"):
            fairlib.get_device("cuda")


def test_book_build_is_static(monkeypatch):
    monkeypatch.setenv("FAIRLIB_BOOK", "1")
    assert building_book() and not interactive()
    monkeypatch.setenv("FAIRLIB_BOOK", "0")
    assert not building_book()


def test_profile_note_says_quick_data_is_synthetic():
    assert "synthetic" in fairlib.profile_note("quick")


def test_public_names_are_reexported():
    for name in fairlib.__all__:
        assert hasattr(fairlib, name), f"fairlib.{name} is listed in __all__ but missing"
    assert fairlib.bias_amplification is fairlib.metrics.bias_amplification


def test_glue_stores_strings_without_quotes(monkeypatch):
    import myst_nb

    stored = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: stored.update({name: value}))
    from fairlib.notebook import glue

    assert glue("layer", "block2") is None, "a cell ending in glue() must not print a stray value"
    assert repr(stored["layer"]) == "block2", "{glue:text} shows the repr: it must not carry quotes"
    glue("acc", np.float64(0.25))
    assert type(stored["acc"]) is float


@pytest.mark.parametrize("value", [None, float("nan"), np.float64("nan"), np.array(np.nan), torch.tensor(float("nan"))])
def test_glue_refuses_missing_values_unless_explained(monkeypatch, value):
    import myst_nb

    stored = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=False: stored.update({name: value}))
    from fairlib.notebook import glue

    with pytest.raises(ValueError, match="gain: the value is .* pass missing='what it means'"):
        glue("gain", value)
    assert stored == {}, "nothing may be glued when the value is refused"
    glue("gain", value, missing="not defined: the control shares no layer with the network")
    assert repr(stored["gain"]) == "not defined: the control shares no layer with the network"
    glue("gain", 0.5, missing="not defined")  # a present value is glued as it is
    assert stored["gain"] == 0.5
    with pytest.raises(ValueError, match="missing: expected the words"):
        glue("gain", value, missing="  ")


def test_paper_profile_falls_back_to_full_and_rehearsal_shrinks_real_profiles(monkeypatch):
    table = {"quick": {"n": 1, "train": {"epochs": 2, "lr": 0.1}},
             "full": {"n": 1000, "train": {"epochs": 50, "lr": 0.1}},
             "rehearsal": {"n": 8, "train": {"epochs": 1}}}
    monkeypatch.delenv("FAIRLIB_SCALE", raising=False)
    assert fairlib.select(table, "paper") == table["full"]
    assert fairlib.select({**table, "paper": {"n": 5}}, "paper") == {"n": 5}
    monkeypatch.setenv("FAIRLIB_SCALE", "rehearsal")
    assert fairlib.select(table, "full") == {"n": 8, "train": {"epochs": 1, "lr": 0.1}}
    assert fairlib.select(table, "quick") == table["quick"], "quick is never shrunk"
    assert table["full"]["train"]["epochs"] == 50, "the table itself must not change"
    assert "REHEARSAL" in fairlib.profile_note("full") and "synthetic" in fairlib.profile_note("quick")
    monkeypatch.setenv("FAIRLIB_SCALE", "tiny")
    with pytest.raises(ValueError, match="FAIRLIB_SCALE: unknown value 'tiny'; choose one of normal, rehearsal"):
        fairlib.select(table, "full")


def test_random_weights_mode_loads_no_pretrained_weights(monkeypatch):
    from fairlib.config import pretrained
    from fairlib.models import build_model

    monkeypatch.delenv("FAIRLIB_WEIGHTS", raising=False)
    assert pretrained("IMAGENET1K_V1") == "IMAGENET1K_V1"
    with pytest.raises(ValueError, match=r"has no weights 'NOPE'; available: \['IMAGENET1K_V1'"):
        build_model("torchvision.resnet18", weights="NOPE")
    monkeypatch.setenv("FAIRLIB_WEIGHTS", "random")
    assert pretrained("IMAGENET1K_V1") is None
    a = build_model("torchvision.resnet18", weights="IMAGENET1K_V1", seed=3)
    b = build_model("torchvision.resnet18", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_seed_everything_is_deterministic_only_in_quick_by_default(monkeypatch):
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    try:
        monkeypatch.setenv("FAIRLIB_PROFILE", "quick")
        fairlib.seed_everything(0)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        monkeypatch.setenv("FAIRLIB_PROFILE", "full")
        fairlib.seed_everything(0)
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
        fairlib.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled(), "an explicit choice wins"
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=True)
        torch.backends.cudnn.benchmark = before[1]


def test_rehearsal_feeds_backbones_small_inputs(monkeypatch):
    from fairlib.models import REHEARSAL_SIZES, build_model

    monkeypatch.setenv("FAIRLIB_PROFILE", "full")
    monkeypatch.delenv("FAIRLIB_SCALE", raising=False)
    assert build_model("torchvision.resnet18").input_size == 224
    monkeypatch.setenv("FAIRLIB_SCALE", "rehearsal")
    model = build_model("torchvision.resnet18")
    assert model.input_size == REHEARSAL_SIZES["resnet18"] == 64
    assert model.preprocess(torch.zeros(2, 3, 224, 224, dtype=torch.uint8)).shape == (2, 3, 64, 64)
    monkeypatch.setenv("FAIRLIB_PROFILE", "quick")
    assert build_model("torchvision.resnet18").input_size == 224, "quick is never a rehearsal"


def test_profile_note_names_real_quick_data_without_calling_it_synthetic():
    note = fairlib.profile_note("quick", data="scikit-learn's 8×8 handwritten digits")
    assert "digits" in note and "synthetic" not in note and "stand-in" in note
    assert fairlib.profile_note("full", data="digits") == "full profile"
    with pytest.raises(ValueError, match="data: expected a short description"):
        fairlib.profile_note("quick", data="")


@pytest.mark.parametrize("low,high,expected", [(-0.3, -0.1, "below"), (0.1, 0.3, "above"), (-0.1, 0.2, "neither"),
                                               (0.0, 0.2, "neither"), (float("nan"), 0.2, "neither")])
def test_verdict_follows_the_interval(low, high, expected):
    from fairlib.notebook import verdict

    assert verdict(low, high, below="below", above="above", neither="neither") == expected


def test_verdict_refuses_a_reversed_interval_and_text():
    from fairlib.notebook import verdict

    with pytest.raises(ValueError, match="low end 0.3 lies above its high end 0.1"):
        verdict(0.3, 0.1, below="b", above="a", neither="n")
    with pytest.raises(ValueError, match="low: expected a number"):
        verdict("low", 0.1, below="b", above="a", neither="n")


def test_trend_reads_a_planted_monotone_signal_and_its_absence():
    from fairlib.notebook import trend

    words = {"rises": "up", "falls": "down", "flat": "none"}
    x = np.repeat([1.0, 2.0, 3.0, 4.0], 3)
    rng = np.random.default_rng(0)
    assert trend(x, x + rng.normal(0, 0.1, x.size), **words).startswith("up (Spearman ρ = ")
    assert trend(x, -x + rng.normal(0, 0.1, x.size), **words).startswith("down (")
    # a hand-checked tie-free case: ranks (1, 2, 3, 4) against (2, 1, 4, 3) give ρ = 1 - 6·4/60 = 0.6,
    # which four points cannot make significant
    assert trend([1, 2, 3, 4], [2, 1, 4, 3], **words) == "none (Spearman ρ = 0.60, p = 0.4)"
    assert trend(x, np.ones_like(x), **words) == "none (constant, no rank correlation)"


def test_trend_refuses_what_it_cannot_test():
    from fairlib.notebook import trend

    words = {"rises": "up", "falls": "down", "flat": "none"}
    with pytest.raises(ValueError, match="at least 3 points"):
        trend([1, 2], [1, 2], **words)
    with pytest.raises(ValueError, match="drop the failed runs"):
        trend([1, 2, 3], [1, float("nan"), 3], **words)
    with pytest.raises(ValueError, match="alpha"):
        trend([1, 2, 3], [1, 2, 3], alpha=5, **words)
