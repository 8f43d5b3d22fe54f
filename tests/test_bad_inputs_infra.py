"""Bad input gets a clear error naming the argument: training, activations, topomap, data, classroom,
the shared validators and the fetch command line.

Each row: (id, zero-argument call, exception type, message fragment); the fragment names the argument
and, where there is one, the fix.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairlib import _validation as V
from fairlib import activations as A
from fairlib import classroom as C
from fairlib import data as D
from fairlib import topomap as TM
from fairlib import training as T
from fairlib.data import loaders as L

NAN = float("nan")


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def _cnn():
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten())


def _opt(model):
    return T.make_optimizer(model.parameters(), "sgd", lr=0.1)


def _xy(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)


def _train(**kw):
    x, y = _xy()
    args = dict(epochs=1, batch_size=4, optimizer=_opt, device="cpu")
    args.update(kw)
    data = args.pop("data", (x, y))
    return T.train(_mlp(), data, **args)


def _state():
    model = _mlp()
    return T.TrainState(model=model, optimizers={"main": _opt(model)}, device=torch.device("cpu"),
                        generator=torch.Generator(), epochs=1, total_steps=1, steps_per_epoch=1)


def _store(n=2):
    store = A.ActivationStore(n)
    store.write("a", "mean", 0, torch.zeros(1, 3))
    return store


ATTRS = pd.DataFrame({"a": pd.Categorical(["x", "y", "x", "y"]), "b": pd.Categorical(["u", "u", "v", "v"])})


def _dataset(**kw):
    args = dict(images=torch.zeros(4, 1, 2, 2, dtype=torch.uint8), name="t", split="train")
    args.update(kw)
    return D.AttributeDataset(ATTRS, **args)


POS = np.random.default_rng(0).random((6, 2))
LABELS = pd.DataFrame({"g": ["a", "b"]})

TRAINING = [
    ("batch_plan", lambda: T.batch_plan(10, 2.5), ValueError, "batch_size: expected a positive integer"),
    ("make_optimizer params", lambda: T.make_optimizer(_mlp(), "sgd", lr=0.1), TypeError,
     "params: got a model; pass model.parameters()"),
    ("make_optimizer weight_decay", lambda: T.make_optimizer(_mlp().parameters(), "sgd", lr=0.1, weight_decay=-1),
     ValueError, "weight_decay: expected a finite, non-negative"),
    ("make_optimizer momentum", lambda: T.make_optimizer(_mlp().parameters(), "sgd", lr=0.1, momentum=-1),
     ValueError, "momentum: expected a finite, non-negative"),
    ("make_optimizer betas", lambda: T.make_optimizer(_mlp().parameters(), "adam", lr=0.1, betas=(1.5, 0.9)),
     ValueError, "betas: expected two numbers in [0, 1)"),
    ("make_optimizer name", lambda: T.make_optimizer(_mlp().parameters(), "SGD", lr=0.1), ValueError,
     "optimizer: unknown optimizer 'SGD'; choose 'sgd' or 'adam'"),
    ("lr_at_epoch epoch", lambda: T.lr_at_epoch(-1, 10, 0.1), ValueError, "epoch: expected a non-negative integer"),
    ("lr_at_epoch lr", lambda: T.lr_at_epoch(1, 10, None), ValueError, "lr: expected a positive finite learning rate"),
    ("step_decay_schedule", lambda: T.step_decay_schedule("no"), TypeError, "warmup: expected True or False"),
    ("cosine_schedule called", lambda: T.cosine_schedule(None), TypeError,
     "state: expected the run's TrainState (pass cosine_schedule itself"),
    ("supervised_step loss name", lambda: T.supervised_step("ce"), ValueError, "loss: unknown loss 'ce'; choose one"),
    ("supervised_step loss type", lambda: T.supervised_step(3), TypeError, "loss: expected one of"),
    ("supervised_step penalty", lambda: T.supervised_step(penalty=0.1), TypeError, "penalty: expected a function"),
    ("supervised_step augment", lambda: T.supervised_step(augment=True), TypeError, "augment: expected a function"),
    ("TrainState.optimize loss", lambda: _state().optimize(1.0), TypeError, "loss: expected a scalar tensor"),
    ("TrainState.optimize optimizer", lambda: _state().optimize(torch.tensor(1.0, requires_grad=True), "adv"),
     ValueError, "optimizer: unknown optimiser 'adv'; this run has ['main']"),
    ("train model", lambda: T.train(None, _xy(), epochs=1, batch_size=4, optimizer=_opt), TypeError,
     "model: expected a torch.nn.Module"),
    ("train step", lambda: _train(step="ce"), TypeError, "step: expected a function"),
    ("train schedule", lambda: _train(schedule=0.5), TypeError, "schedule: expected a function"),
    ("train transform", lambda: _train(transform="norm"), TypeError, "transform: expected a function"),
    ("train callbacks", lambda: _train(callbacks=[1]), TypeError, "callbacks: expected a list of"),
    ("train seed", lambda: _train(seed=1.5), ValueError, "seed: expected an integer"),
    ("train num_threads", lambda: _train(num_threads=0), ValueError, "num_threads: expected a positive integer"),
    ("train num_workers", lambda: _train(num_workers=-1), ValueError, "num_workers: expected a non-negative"),
    ("train device", lambda: _train(device="gpu"), ValueError, "device: cannot use 'gpu' as a device"),
    ("train probabilities as targets", lambda: _train(data=(_xy()[0], torch.rand(8))), ValueError,
     "targets: expected class indices for loss='cross_entropy'"),
    ("train class out of range", lambda: _train(data=(_xy()[0], _xy()[1] + 5)), ValueError,
     "targets: class 5 is outside [0, 2)"),
    ("train unknown keyword", lambda: _train(lr=0.1), TypeError, "unexpected keyword argument 'lr'"),
    ("predict model", lambda: T.predict(None, _xy()[0]), TypeError, "model: expected a torch.nn.Module"),
    ("predict transform", lambda: T.predict(_mlp(), _xy()[0], transform=1), TypeError,
     "transform: expected a function"),
    ("predict num_workers", lambda: T.predict(_mlp(), _xy()[0], num_workers=-2), ValueError,
     "num_workers: expected a non-negative integer"),
    ("evaluate task", lambda: T.evaluate(_mlp(), _xy()), TypeError,
     "task: expected a task with tensors x, y and group"),
    ("augment_batch x", lambda: T.augment_batch(torch.zeros(3, 4, 4), torch.Generator()), ValueError,
     "x: expected a torch tensor of images (N, C, H, W)"),
    ("augment_batch generator", lambda: T.augment_batch(torch.zeros(2, 3, 4, 4), None), TypeError,
     "generator: expected a torch.Generator"),
    ("augment_batch pad", lambda: T.augment_batch(torch.zeros(2, 3, 4, 4), torch.Generator(), pad=-1), ValueError,
     "pad: expected a non-negative integer"),
    ("train_and_evaluate task", lambda: T.train_and_evaluate(_mlp(), _xy(), None, epochs=1), TypeError,
     "train_task: expected a task with tensors x, y and group"),
    ("fit arch", lambda: T.fit("nope", {}, None, None, seed=0, epochs=1), ValueError,
     "arch: unknown model 'nope'; available:"),
    ("fit model_kwargs", lambda: T.fit("small_cnn", None, None, None, seed=0, epochs=1), TypeError,
     "model_kwargs: expected a dict"),
]

ACTIVATIONS = [
    ("layer_preset", lambda: A.layer_preset("vgg"), ValueError, "name: no layer preset 'vgg'; presets: vgg16"),
    ("preset_for", lambda: A.preset_for("vgg16"), TypeError, "model: expected a torch.nn.Module"),
    ("resolve_layers type", lambda: A.resolve_layers(_cnn(), 0), TypeError, "layers: expected None, a preset name"),
    ("resolve_layers unknown", lambda: A.resolve_layers(_cnn(), ["7"]), ValueError,
     "layers: unknown layer '7'; available names"),
    ("downsample", lambda: A.downsample(np.zeros((1, 2, 4, 4))), TypeError, "x: expected a torch.Tensor"),
    ("spatial_mean", lambda: A.spatial_mean(torch.zeros(2, 4, 4)), ValueError, "x: expected (N, C, H, W) or (N, D)"),
    ("ActivationExtractor reduce", lambda: A.ActivationExtractor(_cnn(), ["0"], reduce="mean"), TypeError,
     "reduce: expected a function"),
    ("ActivationExtractor device", lambda: A.ActivationExtractor(_cnn(), ["0"], device="gpu"), ValueError,
     "device: cannot use 'gpu'"),
    ("ActivationExtractor call", lambda: A.ActivationExtractor(_cnn(), ["0"], device="cpu")(np.zeros((1, 3, 6, 6))),
     TypeError, "x: expected a torch.Tensor"),
    ("ActivationStore n", lambda: A.ActivationStore(0), ValueError, "n: expected a positive integer"),
    ("ActivationStore.allocate", lambda: A.ActivationStore(2).allocate("a", "mean", 3), TypeError,
     "shape: expected a tuple of per-example sizes"),
    ("ActivationStore.write start", lambda: A.ActivationStore(2).write("a", "mean", -1, torch.zeros(1, 3)),
     ValueError, "start: expected an integer in [0, 1]"),
    ("ActivationStore.write overflow", lambda: A.ActivationStore(2).write("a", "mean", 1, torch.zeros(3, 3)),
     ValueError, "values: rows 1..3 do not fit a store of 2 examples"),
    ("ActivationStore.write shape", lambda: _store().write("a", "mean", 1, torch.zeros(1, 4)), ValueError,
     "values: per-example shape (4,) differs"),
    ("ActivationStore.open", lambda: A.ActivationStore.open("/nonexistent-store"), ValueError,
     "directory: /nonexistent-store holds no completed store"),
    ("ActivationStore.get", lambda: _store().get("b"), ValueError, "layer: no array for 'b'"),
    ("capture_activations reductions", lambda: A.capture_activations(_cnn(), torch.rand(2, 3, 6, 6), ["0"],
                                                                     reductions="mean", device="cpu"),
     TypeError, "reductions: expected a list of names, e.g. ['mean']"),
    ("capture_activations data", lambda: A.capture_activations(_cnn(), None, ["0"], device="cpu"), TypeError,
     "data: expected images (N, C, H, W)"),
    ("capture_activations empty", lambda: A.capture_activations(_cnn(), torch.zeros(0, 3, 6, 6), ["0"],
                                                                device="cpu"), ValueError, "data: is empty"),
    ("capture_activations NaN", lambda: A.capture_activations(_cnn(), torch.full((2, 3, 6, 6), NAN), ["0"],
                                                              device="cpu"), ValueError,
     "data: images 0..1 contain NaN or inf"),
    ("capture_activations transform", lambda: A.capture_activations(_cnn(), torch.rand(2, 3, 6, 6), ["0"],
                                                                    transform="imagenet", device="cpu"),
     TypeError, "transform: expected a function"),
    ("imagenet_transform", lambda: A.imagenet_transform(4), ValueError, "size: expected an image side >= 8"),
]

TOPOMAP = [
    ("force", lambda: TM.force([NAN]), ValueError, "d: contains NaN"),
    ("force negative", lambda: TM.force(-2.0), ValueError, "d: distances must be non-negative"),
    ("scale_unit", lambda: TM.scale_unit(np.zeros((0, 2))), ValueError, "positions: expected shape (N, 2)"),
    ("relax NaN", lambda: TM.relax([[NAN, 1.0], [0.0, 1.0]], 2), ValueError, "positions: contains NaN"),
    ("relax chunk", lambda: TM.relax(POS, 2, chunk=0), ValueError, "chunk: expected a positive integer"),
    ("channel_profiles", lambda: TM.channel_profiles([[NAN, 1.0], [0.0, 1.0]]), ValueError, "profiles: contains NaN"),
    ("umap_positions n_neighbors", lambda: TM.umap_positions(np.random.rand(6, 3), n_neighbors=1), ValueError,
     "n_neighbors: expected an integer >= 2"),
    ("umap_positions min_dist", lambda: TM.umap_positions(np.random.rand(6, 3), min_dist=-1), ValueError,
     "min_dist: expected a finite number >= 0"),
    ("topographic_layout", lambda: TM.topographic_layout(np.random.rand(2, 6), n_steps=-1), ValueError,
     "n_steps: expected a non-negative integer"),
    ("render_maps resolution", lambda: TM.render_maps(np.random.rand(2, 6), POS, resolution=0), ValueError,
     "resolution: expected a positive integer"),
    ("render_maps positions", lambda: TM.render_maps(np.random.rand(2, 6), POS * NAN), ValueError,
     "positions: contains NaN"),
    ("color_limit mode", lambda: TM.color_limit([1.0, 2.0], "pct"), ValueError,
     "mode: expected 'percentile' or 'max'"),
    ("color_limit values", lambda: TM.color_limit("ab"), ValueError, "values: expected numbers"),
    ("plot_map_grid labels", lambda: TM.plot_map_grid(np.zeros((2, 3, 3)), ["a", "b"], "g", [], vmax=1), TypeError,
     "labels: expected a DataFrame"),
    ("plot_map_grid rows", lambda: TM.plot_map_grid(np.zeros((2, 3, 3)), LABELS, "sex", [], vmax=1), ValueError,
     "rows: unknown variable(s) ['sex']; labels has columns ['g']"),
    ("plot_map_grid vmax", lambda: TM.plot_map_grid(np.zeros((2, 3, 3)), LABELS, "g", [], vmax=0), ValueError,
     "vmax: expected a positive finite colour limit"),
    ("plot_map_grid cmap", lambda: TM.plot_map_grid(np.zeros((2, 3, 3)), LABELS, "g", [], vmax=1, cmap="nope"),
     ValueError, "cmap: unknown colour map 'nope'"),
]

DATA = [
    ("image_tensor dataset", lambda: D.image_tensor(torch.zeros(2, 3, 4, 4)), TypeError,
     "dataset: expected a dataset from fairlib.data.load_dataset"),
    ("image_tensor batch_size", lambda: D.image_tensor(_dataset(), batch_size=0), ValueError,
     "batch_size: expected a positive integer"),
    ("data_root", lambda: D.data_root(5), TypeError, "root: expected a directory path"),
    ("data_root empty", lambda: D.data_root(""), TypeError, "root: expected a directory path"),
    ("dataset_dir", lambda: D.dataset_dir("../x"), ValueError, "name: expected a dataset name"),
    ("weights_root", lambda: D.weights_root(3), TypeError, "root: expected a directory path"),
    ("configure_weights_cache", lambda: D.configure_weights_cache(3), TypeError, "root: expected a directory path"),
    ("fetch_command", lambda: D.fetch_command("fairfaces"), ValueError,
     "name: no fetcher for 'fairfaces'; fetchable datasets: fairface"),
    ("DatasetNotFoundError", lambda: D.DatasetNotFoundError(None, "d", "files", "r"), ValueError,
     "name: expected a dataset name"),
    ("load_dataset name", lambda: D.load_dataset("fairfaces"), ValueError, "name: unknown dataset 'fairfaces'"),
    ("load_dataset split", lambda: D.load_dataset("digits", "validation"), ValueError,
     "split: digits has splits 'train', 'test', 'all'"),
    ("load_dataset option", lambda: D.load_dataset("digits", size=3), ValueError,
     "options: digits does not take size; it takes transform, test_fraction, seed"),
    ("load_dataset test_fraction", lambda: D.load_dataset("digits", test_fraction=1.5), ValueError,
     "test_fraction: expected a fraction strictly between 0 and 1"),
    ("load_dataset seed", lambda: D.load_dataset("digits", seed=-1), ValueError, "seed: expected a non-negative"),
    ("load_dataset root", lambda: D.load_dataset("cifar10", root=5), TypeError, "root: expected a directory path"),
    ("intersectional_groups", lambda: D.intersectional_groups(ATTRS, None), ValueError,
     "variables: expected a column name or a list of them"),
    ("cap_groups seed", lambda: D.cap_groups(ATTRS, "a", 1, seed=1.5), ValueError, "seed: expected a non-negative"),
    ("balanced_sample allow_smaller", lambda: D.balanced_sample(ATTRS, "a", 5, allow_smaller="yes"), TypeError,
     "allow_smaller: expected True or False"),
    ("AttributeDataset attributes", lambda: D.AttributeDataset([1, 2], images=torch.zeros(2, 1, 2, 2), name="x",
                                                               split="train"), TypeError,
     "attributes: expected a pandas DataFrame"),
    ("AttributeDataset categorical", lambda: D.AttributeDataset(pd.DataFrame({"a": [1, 2]}),
                                                                images=torch.zeros(2, 1, 2, 2), name="x",
                                                                split="train"),
     ValueError, "attributes: columns ['a'] are not Categorical; convert with .astype('category')"),
    ("AttributeDataset lengths", lambda: _dataset(images=torch.zeros(2, 1, 2, 2)), ValueError,
     "mismatched lengths: images has 2, attributes has 4"),
    ("AttributeDataset transform", lambda: _dataset(transform=3), TypeError, "transform: expected a function"),
    ("AttributeDataset.raw_image", lambda: _dataset().raw_image(1.5), TypeError, "i: expected an integer index"),
    ("parse_utkface_name", lambda: L.parse_utkface_name(None), TypeError, "filename: expected a file name"),
    ("render_faces group_weights", lambda: D.render_faces(4, group_weights="unif"), ValueError,
     "group_weights: unknown name 'unif'; pass 'uniform'"),
    ("render_faces size", lambda: D.render_faces(4, size=8), ValueError, "size: expected an integer in [16, 128]"),
    ("render_multiattribute", lambda: D.render_multiattribute(4, rates={"x": 0.5}), ValueError,
     "rates: unknown attribute 'x'; choose from"),
    ("render_scenes", lambda: D.render_scenes(4, cooccurrence=2), ValueError,
     "cooccurrence: expected a number in [0, 1]"),
    ("canonical_sets", lambda: D.canonical_sets(4, seed=-1), ValueError, "seed: expected a non-negative integer"),
    ("SynthFaces mode", lambda: D.SynthFaces(4, mode="face"), ValueError,
     "mode: unknown mode 'face'; choose one of faces, multi, scenes"),
    ("SynthFaces transform", lambda: D.SynthFaces(4, size=16, transform=3), TypeError,
     "transform: expected a function"),
]

CLASSROOM = [
    ("make_assignment", lambda: C.make_assignment("nope.py", "out"), FileNotFoundError,
     "source: no such file 'nope.py'; pass the path to a chapter's .py source"),
    ("grade timeout", lambda: C.grade("x.ipynb", "y.json", timeout=0), ValueError,
     "timeout: expected a positive integer"),
    ("grade env", lambda: C.grade("x.ipynb", "y.json", env="X=1"), TypeError,
     "env: expected a dict of environment variables"),
    ("graded_exercises", lambda: C.graded_exercises(None), TypeError, "source: expected a path"),
    ("format_report", lambda: C.format_report(pd.DataFrame({"a": [1]})), ValueError,
     "table: expected the DataFrame returned by grade"),
    ("check_assignment", lambda: C.check_assignment("nope.py", "nope.ipynb"), FileNotFoundError,
     "source: no such file 'nope.py'"),
    ("solution_lines", lambda: C.solution_lines("nope.py"), FileNotFoundError, "source: no such file 'nope.py'"),
    ("graded_dependencies", lambda: C.graded_dependencies(None), TypeError,
     "notebook: expected an nbformat notebook or a path"),
]

VALIDATION = [
    ("integer", lambda: V.integer(1.5, "k", minimum=0), ValueError, "k: expected a non-negative integer, got 1.5"),
    ("positive_int", lambda: V.positive_int(0, "n_bins"), ValueError, "n_bins: expected a positive integer, got 0"),
    ("to_numpy", lambda: V.to_numpy([[1, 2], [3]], "x"), ValueError, "x: cannot be read as an array"),
    ("as_1d", lambda: V.as_1d([1.0, NAN], "y"), ValueError, "y: contains NaN at index 1; pass finite values"),
    ("same_length", lambda: V.same_length(a=[1, 2], b=[1]), ValueError, "mismatched lengths: a has 2, b has 1"),
    ("same_length None", lambda: V.same_length(a=[1, 2], b=None), TypeError, "b: expected an array, got NoneType"),
    ("as_matrix", lambda: V.as_matrix(np.zeros((0, 2)), "logits"), ValueError,
     "logits: expected shape (N,) or (N, K) with N >= 1"),
    ("binary", lambda: V.binary(np.array([0, 2]), "y"), ValueError, "y: expected binary 0/1 values, found 2"),
    ("binary list", lambda: V.binary([0, -1], "y"), ValueError, "y: expected binary 0/1 values, found -1"),
    ("as_binary", lambda: V.as_binary(["a", "b"], "y"), ValueError, "y: expected binary 0/1 values, got dtype"),
    ("as_probability", lambda: V.as_probability([0.5, 1.5], "p"), ValueError,
     "p: probabilities must lie in [0, 1], found 1.5 (apply a sigmoid or softmax"),
    ("as_labels", lambda: V.as_labels([0.2, 1.0], "y_pred"), ValueError,
     "y_pred: expected hard labels (class codes), found 0.2; apply argmax"),
    ("same_label_kind", lambda: V.same_label_kind(y_true=np.array(["a"]), y_pred=np.array([1])), ValueError,
     "y_true/y_pred: labels of different kinds"),
]

CASES = TRAINING + ACTIVATIONS + TOPOMAP + DATA + CLASSROOM + VALIDATION


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_bad_input_names_the_argument(case):
    _, call, error, fragment = case
    with pytest.raises(error, match=re.escape(fragment)):
        call()


def test_valid_inputs_still_work():
    """Inputs at the edge of the new checks stay accepted."""
    assert A.imagenet_transform(np.int64(8)) is not None
    assert T.lr_at_epoch(0, 1, 0.1) == 0.1
    assert V.binary([0, 1, True], "y").tolist() == [0, 1, 1]
    assert len(TM.force(np.linspace(0, 40, 5))) == 5
    hist = _train(data=(_xy()[0], _xy()[1].float()))  # whole-number float targets are class indices
    assert len(hist) == 1
    ds = _dataset()
    assert ds.raw_image(np.int64(1)).shape == (1, 2, 2)


@pytest.mark.parametrize("argv, fragment", [
    (["cifar10", "--root", ""], "error: --root: expected a directory path"),
    (["cifar10", "--root", "{file}/sub"], "error: --root: cannot create"),
])
def test_fetch_cli_expected_failures_are_one_line(tmp_path, capsys, argv, fragment):
    from data_scripts import fetch

    afile = tmp_path / "afile"
    afile.write_text("")
    argv = [a.replace("{file}", str(afile)) for a in argv]
    rc = fetch.main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert fragment in err
    assert "Traceback" not in err
