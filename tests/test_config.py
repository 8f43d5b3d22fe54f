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
    with pytest.raises(ValueError, match="profile: unknown profile 'gpu'; choose one of quick, full"):
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
