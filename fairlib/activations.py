r"""Capture the activations of named layers in one batched pass, downsample them, store them.

Krug & Stober (2025) study a model through its activations :math:`A_l(x)` in a set of
representative layers :math:`l = 0, 1, \dots, L`, where layer 0 is the input itself. This module
provides the three pieces that every such analysis needs:

- :class:`ActivationExtractor`: forward hooks on named modules of *any* torch model; one
  ``no_grad`` forward pass per batch returns every requested layer (``"input"`` is layer 0),
  under autocast when the device is CUDA.
- :data:`LAYER_PRESETS` / :func:`layer_preset`: the paper's layers for torchvision's VGG16,
  ResNet50 and InceptionV3 (Keras names as aliases of torchvision module names), plus the
  small CNN of the quick profile.
- :func:`downsample` (at most ``max_size x max_size`` per feature map, by subsampling or
  average pooling, as in the paper's Sec. 5.3) and :func:`capture_activations`, which writes
  every layer into an :class:`ActivationStore`: preallocated arrays in memory or float16
  ``.npy`` memory maps on disk (one file per layer and reduction, written to a temporary name
  and renamed when complete), so that a FairFace-scale run never holds Python lists of tensors.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fairlib._validation import device as as_device
from fairlib._validation import integer, positive_int
from fairlib.config import get_device

__all__ = [
    "INPUT",
    "LAYER_PRESETS",
    "PAPER_LAYERS",
    "REDUCTIONS",
    "layer_preset",
    "preset_for",
    "resolve_layers",
    "downsample",
    "spatial_mean",
    "ActivationExtractor",
    "ActivationStore",
    "capture_activations",
    "imagenet_transform",
]

#: Name of the input layer (layer 0 in the paper's numbering).
INPUT = "input"

_F16_MAX = float(np.finfo(np.float16).max)


def _module(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")


def _tensor(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}; convert with torch.as_tensor")


def _device(value: Any) -> torch.device:
    return as_device(value)


def _vgg16() -> "OrderedDict[str, str]":
    # features.{4,9,16,23,30} are the five max-pools; classifier.1 is fc1 after its ReLU (Keras's
    # fc1 includes the activation); classifier.6 is the output layer (logits, Keras: softmax).
    names = [(INPUT, INPUT)]
    names += [(f"block{b}_pool", f"features.{i}") for b, i in zip(range(1, 6), (4, 9, 16, 23, 30))]
    names += [("fc1", "classifier.1"), ("predictions", "classifier.6")]
    return OrderedDict(names)


def _resnet50() -> "OrderedDict[str, str]":
    names = [(INPUT, INPUT), ("pool1_pool", "maxpool")]
    for stage, blocks in zip(range(2, 6), (3, 4, 6, 3)):
        names += [(f"conv{stage}_block{b + 1}_out", f"layer{stage - 1}.{b}") for b in range(blocks)]
    names += [("avg_pool", "avgpool"), ("predictions", "fc")]
    return OrderedDict(names)


def _inception_v3() -> "OrderedDict[str, str]":
    mixed = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    names = [(INPUT, INPUT), ("max_pooling2d_1", "maxpool2")]
    names += [(f"mixed{i}", m) for i, m in enumerate(mixed)]
    names += [("avg_pool", "avgpool"), ("predictions", "fc")]
    return OrderedDict(names)


def _small_cnn() -> "OrderedDict[str, str]":
    return OrderedDict([(INPUT, INPUT), ("block1", "block1"), ("block2", "block2"),
                        ("block3", "block3"), ("block4", "block4"), ("avg_pool", "pool"),
                        ("predictions", "head")])


#: Preset name -> ordered ``{display name: module name}`` (display names follow the paper's Keras
#: names; the list order is the paper's layer numbering, ``input`` being layer 0).
LAYER_PRESETS: dict[str, "OrderedDict[str, str]"] = {
    "vgg16": _vgg16(),
    "resnet50": _resnet50(),
    "inception_v3": _inception_v3(),
    "small_cnn": _small_cnn(),
}


#: The layer the papers single out for each ImageNet network (Keras names, the presets' display
#: names): Chapter 3's frequent-error tables (Tables 2–4) and Chapter 4's topographic maps.
PAPER_LAYERS: dict[str, str] = {"vgg16": "block4_pool", "resnet50": "conv5_block1_out", "inception_v3": "mixed7"}


def layer_preset(name: str) -> "OrderedDict[str, str]":
    """The paper's layers for an architecture: ``{display name: module name}`` in layer order.

    Parameters
    ----------
    name
        ``"vgg16"``, ``"resnet50"``, ``"inception_v3"`` or ``"small_cnn"``.
    """
    key = str(name).lower().replace("-", "_")
    key = {"inceptionv3": "inception_v3", "inception": "inception_v3", "smallcnn": "small_cnn"}.get(key, key)
    if key not in LAYER_PRESETS:
        raise ValueError(f"name: no layer preset {name!r}; presets: {', '.join(LAYER_PRESETS)}")
    return OrderedDict(LAYER_PRESETS[key])


def preset_for(model: nn.Module) -> str | None:
    """Guess the preset of a torchvision VGG16 / ResNet50 / InceptionV3 (or the quick CNN)."""
    _module(model)
    modules = dict(model.named_modules())
    cls = type(model).__name__
    if cls == "VGG" and "features.30" in modules and "features.31" not in modules:
        return "vgg16"
    if cls == "ResNet" and "layer3.5" in modules and "layer3.6" not in modules and \
            type(modules.get("layer1.0")).__name__ == "Bottleneck":
        return "resnet50"
    if cls == "Inception3":
        return "inception_v3"
    if all(m in modules for m in ("block1", "block4", "pool", "head")):
        return "small_cnn"
    return None


def resolve_layers(model: nn.Module, layers: str | Sequence[str] | Mapping[str, str] | None = None
                   ) -> "OrderedDict[str, str]":
    """Turn a layer request into an ordered ``{display name: module name}`` for ``model``.

    Parameters
    ----------
    layers
        ``None`` (the model's preset, see :func:`preset_for`); a preset name; a list of names,
        each a module name of ``model`` (``dict(model.named_modules())``), ``"input"``, or a
        display name of the model's preset (e.g. ``"block4_pool"``); or an explicit mapping.

    Raises
    ------
    ValueError
        An unknown layer; the message lists the available names.
    """
    _module(model)
    if layers is not None and not isinstance(layers, (str, Sequence, Mapping)):
        raise TypeError(f"layers: expected None, a preset name, a list of layer names or a mapping, "
                        f"got {type(layers).__name__}")
    modules = dict(model.named_modules())
    preset_name = preset_for(model)
    preset = layer_preset(preset_name) if preset_name else OrderedDict()
    if layers is None:
        if not preset:
            raise ValueError(
                "layers: this model has no preset; pass module names, e.g. "
                f"{[n for n in modules if n][:8]}"
            )
        requested: Mapping[str, str] | Sequence[str] = preset
    elif isinstance(layers, str) and layers.lower().replace("-", "_") in (
            *LAYER_PRESETS, "inceptionv3", "smallcnn"):
        requested = layer_preset(layers)
    elif isinstance(layers, str):
        requested = [layers]
    else:
        requested = layers
    pairs = list(requested.items()) if isinstance(requested, Mapping) else \
        [(n, preset.get(n, n)) for n in requested]
    out: "OrderedDict[str, str]" = OrderedDict()
    for display, module in pairs:
        if module != INPUT and (module not in modules or module == ""):
            avail = ([f"presets ({preset_name}): {', '.join(preset)}"] if preset else []) + \
                [f"modules: {', '.join(n for n in modules if n)}"]
            raise ValueError(f"layers: unknown layer {display!r}; available names are "
                             f"{INPUT!r}; " + "; ".join(avail))
        out[str(display)] = module
    if not out:
        raise ValueError("layers: request at least one layer")
    return out


def downsample(x: torch.Tensor, max_size: int = 8, mode: str = "subsample") -> torch.Tensor:
    """Reduce each feature map to at most ``max_size x max_size`` (Krug & Stober, Sec. 5.3).

    As the authors' code (``iNNtrospect``, ``experiments/jair/03_classifier_probes.py``): with
    ``k = ceil(H / max_size)`` for rows (likewise ``W`` for columns),

    * ``"subsample"`` (their "grid"): every ``k``-th value starting at index ``k // 2``, so a
      ``17 x 17`` map keeps indices 1, 4, ..., 16 (``6 x 6``): ``D(A)[c, i, j] = A[c, k//2 + k i, k//2 + k j]``;
    * ``"avgpool"`` (their "pooling", Keras ``AveragePooling2D(pool_size=k)``): the mean of each
      ``k x k`` block, stride ``k``, no padding, so ``56 -> 8``, ``28 -> 7``, ``17 -> 5``.

    Maps no larger than ``max_size`` are unchanged (``k = 1``).

    Parameters
    ----------
    x
        ``(N, C, H, W)`` feature maps, or flat ``(N, D)`` activations (returned unchanged).
    max_size
        Largest side kept.
    mode
        ``"subsample"`` or ``"avgpool"``.

    Returns
    -------
    torch.Tensor
        ``(N, C, H', W')`` with ``H', W' <= max_size``, or ``x`` itself when flat.
    """
    _tensor(x, "x")
    max_size = positive_int(max_size, "max_size")
    if mode not in ("subsample", "avgpool"):
        raise ValueError(f"mode: expected 'subsample' or 'avgpool', got {mode!r}")
    if x.dim() == 2:
        return x
    if x.dim() != 4:
        raise ValueError(f"x: expected (N, C, H, W) or (N, D), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    kh, kw = math.ceil(h / max_size), math.ceil(w / max_size)
    if kh == 1 and kw == 1:
        return x
    if mode == "subsample":
        return x[:, :, kh // 2::kh, kw // 2::kw]
    return F.avg_pool2d(x, kernel_size=(kh, kw), stride=(kh, kw))


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Average each feature map over space: ``(N, C, H, W) -> (N, C)``; ``(N, D)`` unchanged."""
    _tensor(x, "x")
    if x.dim() == 4:
        return x.mean(dim=(2, 3))
    if x.dim() == 2:
        return x
    raise ValueError(f"x: expected (N, C, H, W) or (N, D), got shape {tuple(x.shape)}")


#: Reductions :func:`capture_activations` can apply to each layer: the probes' two downsamplings
#: (8 x 8), the per-channel spatial mean (all NAP maps need) and ``"full"`` (no reduction).
REDUCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "subsample": lambda x, max_size=8: downsample(x, max_size, "subsample"),
    "avgpool": lambda x, max_size=8: downsample(x, max_size, "avgpool"),
    "mean": lambda x, max_size=8: spatial_mean(x),
    "full": lambda x, max_size=8: x,
}


class _Stop(Exception):
    """Raised by the last needed hook: the rest of the forward pass is not computed."""


class ActivationExtractor:
    """Forward hooks on named layers; calling it runs one ``no_grad`` pass and returns them all.

    Parameters
    ----------
    model
        Any ``nn.Module``; it is put in eval mode.
    layers
        See :func:`resolve_layers`.
    device
        Defaults to :func:`fairlib.get_device`.
    amp
        Autocast (float16) on CUDA; ignored on other devices.
    reduce
        Optional function applied to each layer's output inside its hook (e.g. a downsampling
        or a dict of them), so that only the reduced copy is kept; it must return new tensors.
        Without it each output is cloned (a later in-place op such as ``ReLU(inplace=True)``
        would otherwise change it).

    Examples
    --------
    >>> ex = ActivationExtractor(torchvision.models.resnet50(), "resnet50")  # doctest: +SKIP
    >>> acts = ex(images)            # {"input": ..., "pool1_pool": ..., ...}
    """

    def __init__(self, model: nn.Module, layers=None, *, device: Any = None, amp: bool = True,
                 reduce: Callable[[torch.Tensor], Any] | None = None):
        if reduce is not None and not callable(reduce):
            raise TypeError(f"reduce: expected a function of a layer's output or None, got {type(reduce).__name__}")
        self.reduce = reduce
        self.layers = resolve_layers(model, layers)
        self.device = _device(device) if device is not None else get_device()
        self.model = model.to(self.device).eval()
        self.amp = bool(amp) and self.device.type == "cuda"
        modules = dict(model.named_modules())
        self._by_module: dict[str, list[str]] = {}
        for display, module in self.layers.items():
            self._by_module.setdefault(module, []).append(display)
        self._handles = []
        self._out: dict[str, torch.Tensor] = {}
        for module in self._by_module:
            if module != INPUT:
                self._handles.append(modules[module].register_forward_hook(self._hook(module)))

    def _hook(self, module: str):
        def fn(_mod, _inp, output):
            t = output[0] if isinstance(output, (tuple, list)) else output
            t = self.reduce(t.detach()) if self.reduce is not None else t.detach().clone()
            for display in self._by_module[module]:
                self._out[display] = t
            if len(self._out) == len(self.layers):
                raise _Stop
        return fn

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> "OrderedDict[str, Any]":
        """Activations of every layer for a batch ``x`` (reduced if ``reduce`` was given);
        tensors stay on the device."""
        _tensor(x, "x")
        x = x.to(self.device, non_blocking=True)
        self._out = {}
        for display in self._by_module.get(INPUT, []):
            self._out[display] = self.reduce(x) if self.reduce is not None else x
        if len(self._out) < len(self.layers):
            try:
                with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                    self.model(x)
            except _Stop:
                pass
        missing = [d for d in self.layers if d not in self._out]
        if missing:
            raise RuntimeError(f"layers {missing} were not reached by the forward pass")
        out, self._out = self._out, {}
        return OrderedDict((d, out[d]) for d in self.layers)

    def remove(self) -> None:
        """Remove the hooks (the model is usable again without side effects)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "ActivationExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class ActivationStore:
    """Per-layer activation arrays of ``N`` examples, in memory or as float16 ``.npy`` memmaps.

    ``store[layer]`` (single reduction) or ``store.get(layer, reduction)`` returns an array of
    shape ``(N, ...)``. On disk each array is ``<directory>/<reduction>__<layer>.npy`` plus
    ``index.json``; arrays are filled under ``*.tmp`` names and renamed only by :meth:`close`,
    so an interrupted run leaves no file that looks complete.

    Parameters
    ----------
    n
        Number of examples.
    directory
        ``None`` keeps float32 arrays in memory; a path writes float16 memory maps there.
    """

    def __init__(self, n: int, directory: str | os.PathLike | None = None):
        self.n = positive_int(n, "n", meaning="(number of examples)")
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        self._tmp: dict[tuple[str, str], Path] = {}
        self.layers: list[str] = []
        self.reductions: list[str] = []

    def _path(self, layer: str, reduction: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{_safe(reduction)}__{_safe(layer)}.npy"

    def allocate(self, layer: str, reduction: str, shape: tuple[int, ...]) -> np.ndarray:
        """Create the array for ``(layer, reduction)`` with per-example ``shape``."""
        if not isinstance(shape, (tuple, list, torch.Size)):
            raise TypeError(f"shape: expected a tuple of per-example sizes, e.g. (C, H, W) or (), got {shape!r}")
        shape = tuple(integer(d, "shape", minimum=0, meaning="(per-example sizes)") for d in shape)
        full = (self.n, *map(int, shape))
        if self.directory is None:
            arr = np.zeros(full, np.float32)
        else:
            tmp = self._path(layer, reduction).with_suffix(".npy.tmp")
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=full)
            self._tmp[(layer, reduction)] = tmp
        self._arrays[(layer, reduction)] = arr
        if layer not in self.layers:
            self.layers.append(layer)
        if reduction not in self.reductions:
            self.reductions.append(reduction)
        return arr

    def write(self, layer: str, reduction: str, start: int, values: torch.Tensor) -> None:
        """Write a batch (rows ``start : start + len(values)``)."""
        _tensor(values, "values")
        start = integer(start, "start", minimum=0, maximum=self.n - 1, meaning="(first row of the batch)")
        if start + len(values) > self.n:
            raise ValueError(f"values: rows {start}..{start + len(values) - 1} do not fit a store of {self.n} "
                             "examples; pass fewer rows or a smaller start")
        key = (layer, reduction)
        if key not in self._arrays:
            self.allocate(layer, reduction, tuple(values.shape[1:]))
        arr = self._arrays[key]
        if tuple(values.shape[1:]) != arr.shape[1:]:
            raise ValueError(f"values: per-example shape {tuple(values.shape[1:])} differs from the "
                             f"{tuple(arr.shape[1:])} of {layer!r} / {reduction!r}")
        v = values.detach().float()
        if arr.dtype == np.float16:  # float16 overflows to inf above 65504
            v = v.clamp(-_F16_MAX, _F16_MAX)
        arr[start:start + len(v)] = v.cpu().numpy()

    def discard(self) -> None:
        """Drop an unfinished store: close and delete its temporary files."""
        for key, tmp in list(self._tmp.items()):
            self._arrays.pop(key, None)
            Path(tmp).unlink(missing_ok=True)
        self._tmp = {}

    def close(self) -> "ActivationStore":
        """Flush memory maps, rename them to their final names, write ``index.json``."""
        if self.directory is None:
            return self
        index = {"n": self.n, "layers": self.layers, "reductions": self.reductions, "files": {}}
        for key, tmp in list(self._tmp.items()):
            arr = self._arrays[key]
            arr.flush()
            del arr
            self._arrays.pop(key)
            final = self._path(*key)
            os.replace(tmp, final)
            self._arrays[key] = np.load(final, mmap_mode="r")
            index["files"][f"{key[1]}/{key[0]}"] = final.name
        self._tmp = {}
        tmp_index = self.directory / "index.json.tmp"
        tmp_index.write_text(json.dumps(index, indent=1))
        os.replace(tmp_index, self.directory / "index.json")
        return self

    @classmethod
    def open(cls, directory: str | os.PathLike) -> "ActivationStore":
        """Open a completed on-disk store read-only (memory-mapped)."""
        directory = Path(directory)
        index_file = directory / "index.json"
        if not index_file.exists():
            raise ValueError(f"directory: {directory} holds no completed store (no index.json)")
        index = json.loads(index_file.read_text())
        store = cls(index["n"], directory)
        store.layers, store.reductions = index["layers"], index["reductions"]
        for key, fname in index["files"].items():
            reduction, layer = key.split("/", 1)
            store._arrays[(layer, reduction)] = np.load(directory / fname, mmap_mode="r")
        return store

    def get(self, layer: str, reduction: str | None = None) -> np.ndarray:
        """The ``(N, ...)`` array of ``layer`` under ``reduction`` (optional if only one)."""
        if reduction is None:
            if len(self.reductions) != 1:
                raise ValueError(f"reduction: name one of {self.reductions}")
            reduction = self.reductions[0]
        if (layer, reduction) not in self._arrays:
            raise ValueError(f"layer: no array for {layer!r} / {reduction!r}; layers are "
                             f"{self.layers}, reductions {self.reductions}")
        return self._arrays[(layer, reduction)]

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.get(layer)

    def nbytes(self) -> int:
        """Bytes held by all arrays (on disk for memory maps)."""
        return int(sum(a.nbytes for a in self._arrays.values()))


def _batches(data, batch_size: int, num_workers: int) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size]
        return
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers)
    for batch in loader:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def capture_activations(
    model: nn.Module,
    data: torch.Tensor | torch.utils.data.Dataset,
    layers=None,
    *,
    reductions: Sequence[str] = ("subsample",),
    max_size: int = 8,
    batch_size: int = 64,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    directory: str | os.PathLike | None = None,
    device: Any = None,
    amp: bool = True,
    num_workers: int = 0,
    show_progress: bool = False,
) -> ActivationStore:
    """Run ``model`` over ``data`` once and store every layer under every reduction.

    Parameters
    ----------
    data
        Images ``(N, C, H, W)`` (uint8 or float), or a Dataset whose items are images or
        ``(image, ...)`` tuples (e.g. a :class:`fairlib.data.AttributeDataset` or a ``Subset``).
    layers
        See :func:`resolve_layers`.
    reductions
        Names from :data:`REDUCTIONS`: ``"subsample"`` / ``"avgpool"`` (``max_size``),
        ``"mean"`` (per-channel spatial mean, ``(N, C)``), ``"full"``.
    transform
        Batch transform applied on the device before the model (e.g. :func:`imagenet_transform`);
        ``None`` turns uint8 images into floats in [0, 1]. Layer ``"input"`` is its output.
    directory
        ``None``: float32 arrays in memory; otherwise float16 memmaps there (see
        :class:`ActivationStore`).

    Returns
    -------
    ActivationStore
    """
    _module(model)
    if isinstance(reductions, str):
        raise TypeError(f"reductions: expected a list of names, e.g. [{reductions!r}], got the string {reductions!r}")
    unknown = [r for r in reductions if r not in REDUCTIONS]
    if unknown or not reductions:
        raise ValueError(f"reductions: unknown {unknown}; choose from {list(REDUCTIONS)}")
    batch_size = positive_int(batch_size, "batch_size")
    max_size = positive_int(max_size, "max_size")
    num_workers = integer(num_workers, "num_workers", minimum=0)
    if transform is not None and not callable(transform):
        raise TypeError(f"transform: expected a function of the image batch or None, got {type(transform).__name__}")
    arraylike = isinstance(data, (torch.Tensor, np.ndarray))
    if not (arraylike or isinstance(data, torch.utils.data.Dataset)) or arraylike and data.ndim < 2:
        shape = f" of shape {tuple(data.shape)}" if hasattr(data, "shape") else ""
        raise TypeError(f"data: expected images (N, C, H, W) as a tensor or a Dataset, "
                        f"got {type(data).__name__}{shape}")
    n = len(data)
    if n == 0:
        raise ValueError("data: is empty; pass at least one image")

    def reduce(t: torch.Tensor) -> dict[str, torch.Tensor]:
        # reduce inside the hook: only the small copies outlive the forward pass
        t = t.float()
        return {r: REDUCTIONS[r](t, max_size=max_size).to(torch.float32, copy=True)
                for r in reductions}

    extractor = ActivationExtractor(model, layers, device=device, amp=amp, reduce=reduce)
    store = ActivationStore(n, directory)
    from fairlib.notebook import progress

    batches = _batches(data, batch_size, num_workers)
    if show_progress:
        batches = progress(batches, total=math.ceil(n / batch_size), desc="activations")
    start = 0
    try:
        for xb in batches:
            xb = xb.to(extractor.device, non_blocking=True)
            if xb.is_floating_point() and not bool(torch.isfinite(xb).all()):
                raise ValueError(f"data: images {start}..{start + len(xb) - 1} contain NaN or inf; pass finite pixels")
            xb = transform(xb) if transform is not None else (
                xb.float() / 255 if xb.dtype == torch.uint8 else xb.float())
            acts = extractor(xb)
            for layer, reduced in acts.items():
                for r, t in reduced.items():
                    store.write(layer, r, start, t)
            start += len(xb)
        if start != n:
            raise RuntimeError(f"data yielded {start} examples, expected {n}")
    except BaseException:
        store.discard()  # a failed capture leaves no full-size temporary file behind
        raise
    finally:
        extractor.remove()
    return store.close()


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_transform(size: int, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
                       ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Batch transform for torchvision's ImageNet models: [0, 1] floats, bilinear resize to
    ``size x size`` (the paper scales square images without cropping), then normalisation with
    ``mean`` and ``std`` (per channel; default ImageNet's, which every torchvision ImageNet weight
    uses; :func:`fairlib.models.build_model` passes the weights' own values)."""
    if not isinstance(size, (int, np.integer)) or isinstance(size, (bool, np.bool_)) or size < 8:
        raise ValueError(f"size: expected an image side >= 8, got {size!r}")
    size = int(size)
    mean_values = tuple(float(v) for v in (_IMAGENET_MEAN if mean is None else mean))
    std_values = tuple(float(v) for v in (_IMAGENET_STD if std is None else std))
    if len(mean_values) != 3 or len(std_values) != 3 or min(std_values) <= 0:
        raise ValueError(f"mean, std: expected three values each (std > 0), got {mean!r}, {std!r}")

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        m = x.new_tensor(mean_values).view(1, 3, 1, 1)
        sd = x.new_tensor(std_values).view(1, 3, 1, 1)
        return (x - m) / sd

    return fn
