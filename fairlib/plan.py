r"""Compute plans: what a chapter's sweeps cost, computed from the code before anything runs.

Every registered experiment (:func:`fairlib.sweep.register`) may carry a *cost function*
``cost(config) -> list[Stage]`` that describes the work of one configuration, phase by phase
(pretraining, training, evaluation passes, activation capture, fine-tuning, …): which network
runs, on what per-sample input, how many samples go through forward+backward and through forward
only, in batches of what size, with how much optimizer state, and what data the phase holds in
host memory. :func:`plan` turns the grid of a profile into totals::

    python -m fairlib.sweep plan 05_pruning_bias --profile full [--json]

or, in a chapter's parameters cell, ``print(fairlib.plan.plan("05_pruning_bias", PROFILE).summary())``.

How a stage is costed
---------------------
FLOPs
    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the stage's real model and
    batch shape, built on the ``meta`` device so that nothing is computed (one forward, and one
    forward+backward for training samples; matrix products and convolutions count
    :math:`2\,m\,n\,k`, elementwise work is not counted). The counts are cached per
    (model, input shape, batch size), so grids of thousands of configurations plan in seconds:

    .. math:: F = n_\text{train}\,f_\text{train} + n_\text{eval}\,f_\text{eval}

    with :math:`f` the counted FLOPs per sample.
T4 time
    The largest of three bounds (the GPU, the dispatching CPU and the input pipeline overlap),
    plus the input pipeline when it runs in the training process (``workers=0``), plus the stage's
    measured ``cpu_seconds`` of NumPy work:

    .. math::

        t_\text{compute} = F / R, \qquad
        t_\text{dispatch} = s\,(o\,c_\text{op} + c_\text{step}), \qquad
        t_\text{input} = n_\text{images}\,b / B

    :math:`R` is the sustained rate below (mixed precision or FP32, as the stage runs), :math:`s`
    the optimizer steps and evaluation batches, :math:`o` the operators dispatched per batch
    (counted on the meta device), :math:`b` the bytes (cache) or pixels (JPEG decoding) of one
    image and :math:`B` the pipeline's rate.
Memory
    Host: :data:`HOST_BASELINE_GB` plus the stage's resident data (``host_bytes``: datasets held
    in RAM, copies made by fancy indexing, activations, latents, JSON annotations; a ``uint8``
    image cache is a memory map, i.e. page cache, and is not counted) plus model copies kept on
    the host. GPU: :data:`GPU_BASELINE_GB` plus parameters, gradients and optimizer state of the
    trainable parameters, the fp16 weight copies autocast keeps under AMP, the tensors saved for
    backward of one batch (measured with :func:`torch.autograd.graph.saved_tensors_hooks` on the
    meta device; halved under AMP) or, for forward-only batches, the largest operator's inputs
    and outputs (the input batch is among either), and ``gpu_bytes`` (data moved to the GPU,
    other models kept there).
Totals
    A chapter's runs, FLOPs and T4-hours are sums over its experiments' configurations and
    stages, its memory the peak of any stage. Work that a run function memoises (a data cache, a
    pretraining, an autoencoder) carries a ``shared`` key and counts once per chapter.

Rates (their evidence)
----------------------
Compute: NVIDIA DeepLearningExamples, *ResNet50 v1.5 for PyTorch* (README,
https://github.com/NVIDIA/DeepLearningExamples/blob/master/PyTorch/Classification/ConvNets/resnet50v1.5/README.md,
"Training performance results" and "Inference performance results", pytorch-21.03 container).
That page publishes no T4 *training* table, only T4 inference (we found no published, measured
T4 training throughput); we therefore scale the measured T4 inference throughput (batch 128) by
the training/inference ratio the same page measures on one V100 (DGX-1, 16 GB):

- mixed precision: T4 inference 1,190 img/s; V100 training 1,200 and inference 3,249 img/s;
  T4 training 1,190 x 1,200 / 3,249 = 439.5 img/s;
- FP32: T4 inference 426 img/s; V100 training 367 and inference 1,229 img/s;
  T4 training 426 x 367 / 1,229 = 127.2 img/s.

The sustained FLOP rate is then ``flop_counter``'s ResNet-50 forward+backward FLOPs at 224 x 224
(24.3 GFLOP per image, :data:`RESNET50_TRAIN_FLOPS`) times that throughput: about 10.7 TFLOP/s
with AMP and 3.1 TFLOP/s in FP32 (:func:`sustained_flops`). A stage runs at the AMP rate when it
runs under autocast (``amp=True``), else at the FP32 rate. Small networks (CIFAR ResNets, probes)
reach a smaller share of the T4's peak than ResNet-50; the dispatch bound covers the worst of
that (many small kernels).

Input pipeline: :data:`CACHE_IMAGES_PER_S` images per second at 128 x 128 from the ``uint8``
cache (the course's target for cache -> augmentation -> batch on Colab's two cores, issue 16),
scaled by image bytes; :data:`DECODE_PIXELS_PER_S` source pixels per second and core for PIL
decoding and resizing of a JPEG (measured on the build machine: 65-240 Mpixel/s for 178 x 218
to 640 x 480 JPEGs; we take the lower middle). Dispatch: :data:`OP_DISPATCH_S` per operator and
:data:`STEP_OVERHEAD_S` per batch, fitted to :func:`fairlib.training.train` steps of tiny MLPs on
the build machine's CPU (3.1 us per operator, optimizer included, and 0.18 ms per step), plus a
CUDA kernel launch per operator.

What the model leaves out: thin networks (CIFAR ResNets, 16-channel convolutions) use a T4 less
well than ResNet-50 does, and elementwise work (batch norm, activations, the optimizer's update)
costs memory bandwidth that FLOPs do not count; both make real runs of small networks slower than
planned, by up to about 2x where the dispatch bound does not already dominate.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "Stage",
    "StageCost",
    "ExperimentPlan",
    "ChapterPlan",
    "ModelCost",
    "PlanError",
    "plan",
    "chapters",
    "builder",
    "amp_default",
    "stop_at",
    "measure",
    "output_shapes",
    "count_flops",
    "sustained_flops",
    "RESNET50_TRAIN_FLOPS",
    "cost_stage",
    "format_plan",
    "rates",
    "LIMITS",
    "LIMIT_T4_HOURS",
    "LIMIT_HOST_GB",
    "LIMIT_GPU_GB",
    "T4_AMP_TRAIN_IMAGES_PER_S",
    "T4_FP32_TRAIN_IMAGES_PER_S",
    "CACHE_IMAGES_PER_S",
    "DECODE_PIXELS_PER_S",
    "CPU_FLOPS",
    "OP_DISPATCH_S",
    "STEP_OVERHEAD_S",
    "HOST_BASELINE_GB",
    "GPU_BASELINE_GB",
    "GB",
]

GB = 1e9

# --------------------------------------------------------------------------- the course's limits
#: The ``full`` profile must fit one free Colab session: at most this many T4-hours per chapter …
LIMIT_T4_HOURS = 3.0
#: … this much host RAM (Colab's free tier has about 12.7 GB) …
LIMIT_HOST_GB = 10.0
#: … and this much GPU memory (a T4 has 15 GB usable).
LIMIT_GPU_GB = 14.0
#: The limits by name (what :meth:`ChapterPlan.over_limits` checks).
LIMITS = {"gpu_hours_t4": LIMIT_T4_HOURS, "peak_host_gb": LIMIT_HOST_GB, "peak_gpu_gb": LIMIT_GPU_GB}

# --------------------------------------------------------------------------- rates (see the module docstring)
#: T4 training throughput of ResNet-50 v1.5 at 224 px with mixed precision, derived from
#: DeepLearningExamples' measured T4 inference (1,190 img/s) and V100 training/inference ratio
#: (1,200 / 3,249).
T4_AMP_TRAIN_IMAGES_PER_S = 1190 * 1200 / 3249
#: The same in FP32: 426 img/s T4 inference times the V100 ratio 367 / 1,229.
T4_FP32_TRAIN_IMAGES_PER_S = 426 * 367 / 1229
#: Images per second from the ``uint8`` image cache at 128 x 128 (cache -> augmentation -> batch,
#: two CPU threads): issue 16's target; larger images take proportionally longer (bytes).
CACHE_IMAGES_PER_S = 3000
_CACHE_REFERENCE_BYTES = 3 * 128 * 128
#: Source pixels per second and CPU core for PIL's JPEG decoding and resizing (measured
#: 65-240 Mpixel/s on the build machine's EPYC cores for 178 x 218 … 640 x 480 JPEGs).
DECODE_PIXELS_PER_S = 100e6
#: Colab's CPU cores: the most loader workers that decode in parallel.
COLAB_CORES = 2
#: Sustained FLOP/s of the host CPU for work that runs there (scikit-learn's solvers): half the
#: ~100 GFLOP/s of a 2048 x 2048 float32 matrix product measured on the build machine's two
#: cores, since solvers are not pure matrix products and Colab's Xeons are older.
CPU_FLOPS = 50e9
#: Host CPU time to dispatch one operator (forward, backward or optimizer) in eager PyTorch: 3.1 us
#: measured on the build machine's CPU plus about 5 us of host time per CUDA kernel launch, rounded
#: up for Colab's slower Xeon cores.
OP_DISPATCH_S = 10e-6
#: Host time per batch outside the operators: loader, step function, loss.item() synchronisation.
STEP_OVERHEAD_S = 2e-4
#: Resident memory of the Python process before any data: interpreter, torch, torchvision,
#: pandas, scikit-learn and fairlib imported (0.8 GB measured, CPU build) plus about 1.2 GB for
#: the CUDA runtime, cuBLAS and cuDNN once the first kernel has run (assumed).
HOST_BASELINE_GB = 2.0
#: GPU memory in use before any tensor: the CUDA context, cuBLAS/cuDNN workspaces and the caching
#: allocator's slack (assumed; a context alone is about 0.3-0.5 GB on a T4).
GPU_BASELINE_GB = 1.0

_PIPELINES = ("memory", "cache", "decode")
_DEVICES = ("gpu", "cpu")


# --------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """One phase of one configuration's work (returned, in a list, by an experiment's cost function).

    Parameters
    ----------
    name
        What the phase is ("dense training", "capture pass 2", …); stages of one name are summed
        in the experiment's breakdown.
    model
        A zero-argument builder of the network that runs (see :func:`builder`); ``None`` for
        phases without one (data preparation, NumPy work), which cost memory but no FLOPs.
    input_shape
        Shape of one sample as the model receives it, e.g. ``(3, 224, 224)``.
    train_samples
        Samples through forward+backward (epochs x examples per epoch, as the engine's batch plan
        cuts them).
    eval_samples
        Samples through forward only (evaluation passes, activation capture, prediction).
    batch_size, eval_batch_size
        Samples per optimizer step and per forward-only batch (default: ``batch_size``).
    optimizer_state
        Floats of optimizer state per trainable parameter: 0 (plain SGD), 1 (SGD with momentum),
        2 (Adam).
    trainable
        ``None``: every parameter trains; otherwise the module name whose parameters do (a linear
        probe's ``"fc"``); the others get no gradient and no optimizer state.
    amp
        Mixed precision (autocast float16): the AMP compute rate, half-size saved activations.
    host_bytes
        Host memory the phase holds besides the process baseline: datasets in RAM, copies made by
        indexing, activations, latents, parsed annotations, and what memoised earlier phases keep.
    gpu_bytes
        Extra GPU memory: data moved to the device, other models kept there.
    host_models
        Copies of ``model``'s parameters held in host memory.
    cpu_seconds
        Host CPU time of work that is neither a network nor an image pipeline (NumPy work of a
        run function), measured per unit of work on the build machine by the cost function.
    pipeline
        Where the images come from: ``"memory"`` (tensors in RAM: no bound), ``"cache"`` (the
        ``uint8`` memory-mapped cache) or ``"decode"`` (JPEG files decoded each time).
    images
        Images read through the pipeline without a network (the one pass that fills the cache).
    source_pixels
        Pixels of one stored image (cache) or one source JPEG (decode).
    workers
        Loader worker processes: 0 loads in the training process (the pipeline's time adds to the
        compute), more overlap it (at most :data:`COLAB_CORES` decode in parallel).
    device
        ``"gpu"`` or ``"cpu"`` (work that runs on the host, at :data:`CPU_FLOPS`).
    shared
        A key for work that memoised run functions do once for several configurations (a
        pretraining, a data cache, an autoencoder): stages with the same key count once per
        chapter plan.
    data
        Dataset files the phase reads (``"cifar100"``, ``"coco/train2017"``): the download list.
    weights
        Pretrained weights it loads (``"resnet50.IMAGENET1K_V2"``).
    model_key
        Cache key of ``model``; derived from a :func:`builder` when not given.
    """

    name: str
    model: Callable[[], nn.Module] | None = None
    input_shape: tuple[int, ...] = ()
    train_samples: int = 0
    eval_samples: int = 0
    batch_size: int = 1
    eval_batch_size: int | None = None
    optimizer_state: int = 0
    trainable: str | None = None
    amp: bool = False
    host_bytes: float = 0
    gpu_bytes: float = 0
    host_models: int = 0
    cpu_seconds: float = 0.0
    pipeline: str = "memory"
    images: int = 0
    source_pixels: int = 0
    workers: int = 0
    device: str = "gpu"
    shared: str | None = None
    data: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    model_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        if self.model is not None and not callable(self.model):
            raise TypeError(f"model: expected a zero-argument builder of the network, got {type(self.model).__name__}")
        for attr in ("train_samples", "eval_samples", "images", "optimizer_state", "host_models", "workers"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{attr}: expected a non-negative integer, got {value!r}")
        for attr in ("batch_size", "eval_batch_size"):
            value = getattr(self, attr)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{attr}: expected a positive integer, got {value!r}")
        for attr in ("host_bytes", "gpu_bytes", "cpu_seconds"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{attr}: expected a non-negative finite number, got {value!r}")
        if self.pipeline not in _PIPELINES:
            raise ValueError(f"pipeline: expected one of {_PIPELINES}, got {self.pipeline!r}")
        if self.device not in _DEVICES:
            raise ValueError(f"device: expected one of {_DEVICES}, got {self.device!r}")
        if self.model is None and (self.train_samples or self.eval_samples):
            raise ValueError(f"stage {self.name!r}: samples without a model; give the network that runs")
        if self.model is not None and not self.input_shape:
            raise ValueError(f"stage {self.name!r}: input_shape is required with a model, e.g. (3, 224, 224)")

    @property
    def key(self) -> str | None:
        """The model's cache key (``model_key`` or the :func:`builder`'s description)."""
        if self.model is None:
            return None
        return self.model_key or _describe(self.model)


def amp_default(fn: Callable[..., Any], argument: str = "amp") -> bool:
    """Whether ``fn`` runs under autocast on a CUDA device when its caller leaves ``argument`` out.

    Read from the code (the signature's default): ``True`` or ``None`` (the engine's "on for CUDA")
    mean autocast, ``False`` means FP32. Cost functions use it so that a plan follows the engine's
    defaults (:func:`fairlib.training.train`, :func:`fairlib.training.predict`, …) as they change.
    """
    import inspect

    parameter = inspect.signature(fn).parameters.get(argument)
    if parameter is None:
        raise ValueError(f"argument: {getattr(fn, '__qualname__', fn)} has no parameter {argument!r}")
    return parameter.default is None or bool(parameter.default)


def builder(fn: Callable[..., nn.Module], /, *args: Any, **kwargs: Any) -> Callable[[], nn.Module]:
    """A zero-argument model builder ``fn(*args, **kwargs)`` whose description is its cache key.

    ``builder(torchvision.models.resnet50, weights=None)`` builds the same network in every
    configuration, so its FLOPs are counted once.
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a function that builds a model, got {type(fn).__name__}")
    return functools.partial(fn, *args, **kwargs)


def _describe(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        parts = [_describe(a) for a in obj.args] + [f"{k}={_describe(v)}" for k, v in sorted(obj.keywords.items())]
        return f"{_describe(obj.func)}({', '.join(parts)})"
    if callable(obj) and hasattr(obj, "__qualname__"):
        qual = obj.__qualname__
        if "<lambda>" in qual or "<locals>" in qual:
            return f"{obj.__module__}.{qual}@{id(obj):x}"  # no stable name: cached per object only
        return f"{getattr(obj, '__module__', '?')}.{qual}"
    return repr(obj)


class _StopForward(Exception):
    """Raised by :class:`_StopAt`'s hook: the rest of the forward pass is not computed."""


class _StopAt(nn.Module):
    """A network whose forward stops after module ``name`` (an activation capture's last layer)."""

    def __init__(self, net: nn.Module, name: str):
        super().__init__()
        self.net = net
        modules = dict(net.named_modules())
        if name not in modules:
            raise ValueError(f"name: {name!r} is not a module of {type(net).__name__}")
        self._out: list[torch.Tensor] = []

        def hook(_m, _i, out):
            self._out.append(out[0] if isinstance(out, (tuple, list)) else out)
            raise _StopForward

        modules[name].register_forward_hook(hook)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._out = []
        try:
            return self.net(x)
        except _StopForward:
            return self._out[-1]


def stop_at(build: Callable[[], nn.Module], name: str) -> nn.Module:
    """``build()`` cut after module ``name``: the work of a capture whose last layer is ``name``.

    Use through :func:`builder`: ``builder(stop_at, builder(resnet50, weights=None), "layer2.3")``.
    ``name`` ``"input"`` costs nothing (an identity).
    """
    if name == "input":
        return nn.Identity()
    return _StopAt(build(), name)


_SHAPES: dict[tuple, dict[str, tuple[int, ...]]] = {}


def output_shapes(model: Callable[[], nn.Module], input_shape: Sequence[int],
                  modules: Mapping[str, str]) -> dict[str, tuple[int, ...]]:
    """One sample's output shape at each module of ``modules`` (``{display name: module name}``).

    Counted on the meta device with forward hooks (cached); module ``"input"`` is the input itself.
    A chapter's cost function uses it to size activations, probes and embeddings from the network.
    """
    shape = tuple(int(d) for d in input_shape)
    key = (_describe(model), shape, tuple(modules.items()))
    if key not in _SHAPES:
        with torch.device("meta"):
            net = model().eval()
        named = dict(net.named_modules())
        found: dict[str, tuple[int, ...]] = {}
        handles = []
        for display, module in modules.items():
            if module == "input":
                found[display] = shape
                continue
            if module not in named:
                raise ValueError(f"modules: {module!r} is not a module of {type(net).__name__}")

            def hook(_m, _i, out, display=display):
                t = out[0] if isinstance(out, (tuple, list)) else out
                found[display] = tuple(t.shape[1:])
            handles.append(named[module].register_forward_hook(hook))
        with torch.no_grad():
            net(torch.empty((1, *shape), device="meta"))
        for h in handles:
            h.remove()
        _SHAPES[key] = {d: found[d] for d in modules}
    return dict(_SHAPES[key])


# --------------------------------------------------------------------------- measuring a model
@dataclass(frozen=True)
class ModelCost:
    """What one batch of a model costs, counted on the meta device.

    ``flops`` and ``ops`` are per batch of ``batch_size``; ``activation_bytes`` is, for a
    training batch, the float32 size of the tensors saved for backward (parameters excluded,
    storages counted once) and, for a forward-only batch, the largest operator's inputs plus
    outputs.
    """

    batch_size: int
    flops: float
    ops: int
    activation_bytes: int
    param_bytes: int
    trainable_bytes: int
    buffer_bytes: int


class _Ops(TorchDispatchMode):
    """Counts dispatched operators and the largest operator's inputs plus outputs."""

    def __init__(self, ignore: set[int]):
        super().__init__()
        self.ops = 0
        self.peak = 0
        self.ignore = ignore

    def _bytes(self, values: Any) -> int:
        total = 0
        for v in values:
            if isinstance(v, torch.Tensor) and _storage(v) not in self.ignore:
                total += v.numel() * v.element_size()
            elif isinstance(v, (list, tuple)):
                total += self._bytes(v)
        return total

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        outs = out if isinstance(out, (list, tuple)) else (out,)
        self.peak = max(self.peak, self._bytes(args) + self._bytes(outs))
        return out


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):
        return id(t)


def _scalar(out: Any) -> torch.Tensor:
    """A scalar from a model's output (a tensor, a tuple of them, a named tuple, a dict)."""
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, Mapping):
        out = list(out.values())
    tensors = [o for o in out if isinstance(o, torch.Tensor)] if isinstance(out, (tuple, list)) else []
    if not tensors:
        raise TypeError(f"the model returned {type(out).__name__}; expected a tensor or a tuple of tensors")
    return sum(t.float().sum() for t in tensors)


#: Measured batches by (model key, input shape, batch size, train, trainable): each model and shape is
#: built and counted once per process, however many configurations use it.
_MEASURED: dict[tuple, ModelCost] = {}


def _measure(key: str, model: Callable[[], nn.Module], input_shape: tuple[int, ...], batch_size: int,
             train: bool, trainable: str | None) -> ModelCost:
    cache_key = (key, input_shape, batch_size, train, trainable)
    if cache_key not in _MEASURED:
        _MEASURED[cache_key] = _count(key, model, input_shape, batch_size, train, trainable)
    return _MEASURED[cache_key]


def _count(key: str, model: Callable[[], nn.Module], input_shape: tuple[int, ...], batch_size: int,
           train: bool, trainable: str | None) -> ModelCost:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = model()
    if not isinstance(net, nn.Module):
        raise TypeError(f"model {key}: the builder returned {type(net).__name__}, not an nn.Module")
    params = dict(net.named_parameters())
    if trainable is not None:
        for name, p in params.items():
            p.requires_grad_(name == trainable or name.startswith(trainable + "."))
    param_bytes = sum(p.numel() * p.element_size() for p in params.values())
    trainable_bytes = sum(p.numel() * p.element_size() for p in params.values() if p.requires_grad) if train else 0
    buffer_bytes = sum(b.numel() * b.element_size() for b in net.buffers())
    x = torch.empty((batch_size, *input_shape), device="meta")
    ignore = {_storage(p) for p in params.values()} | {_storage(b) for b in net.buffers()}
    counter = _Ops(ignore)
    flops = FlopCounterMode(display=False)
    if train:
        net.train()
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            s = _storage(t)
            if s not in ignore:
                saved[s] = max(saved.get(s, 0), t.untyped_storage().nbytes())
            return t

        with flops, counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = _scalar(net(x))
            if loss.requires_grad:
                loss.backward()
        activation = sum(saved.values())
    else:
        net.eval()
        with flops, counter, torch.no_grad():
            net(x)
        activation = counter.peak
    return ModelCost(batch_size, float(flops.get_total_flops()), counter.ops, int(activation), int(param_bytes),
                     int(trainable_bytes), int(buffer_bytes))


def measure(model: Callable[[], nn.Module], input_shape: Sequence[int], batch_size: int = 1, *, train: bool = False,
            trainable: str | None = None, key: str | None = None) -> ModelCost:
    """Count one batch of ``model()`` on the meta device (cached per model, shape and batch size).

    Parameters
    ----------
    model
        A zero-argument builder (:func:`builder`).
    input_shape
        One sample's shape.
    train
        Forward+backward of the sum of the outputs (a training step's work) instead of forward only.
    trainable
        See :class:`Stage`.
    """
    if not callable(model):
        raise TypeError(f"model: expected a zero-argument builder, got {type(model).__name__}")
    shape = tuple(int(d) for d in input_shape)
    return _measure(key or _describe(model), model, shape, int(batch_size), bool(train), trainable)


def count_flops(model: Callable[[], nn.Module], input_shape: Sequence[int], batch_size: int = 1, *,
                train: bool = False) -> float:
    """FLOPs of one batch: forward, or forward+backward with ``train`` (:func:`measure`)."""
    return measure(model, input_shape, batch_size, train=train).flops


#: ``flop_counter``'s forward+backward FLOPs of torchvision's ResNet-50 for one 224 x 224 image
#: (:func:`count_flops` of it with ``train=True``; a test recounts it, so that a plan need not build
#: ResNet-50 to know its rate).
RESNET50_TRAIN_FLOPS = 24_299_077_632


def sustained_flops(amp: bool = True) -> float:
    """The T4's sustained FLOP/s: ResNet-50's counted training FLOPs per image at 224
    (:data:`RESNET50_TRAIN_FLOPS`) times the T4 training throughput (:data:`T4_AMP_TRAIN_IMAGES_PER_S`,
    :data:`T4_FP32_TRAIN_IMAGES_PER_S`)."""
    return RESNET50_TRAIN_FLOPS * (T4_AMP_TRAIN_IMAGES_PER_S if amp else T4_FP32_TRAIN_IMAGES_PER_S)


# --------------------------------------------------------------------------- costing a stage
@dataclass
class StageCost:
    """A stage's totals: FLOPs, seconds (and its three bounds), peak host and GPU bytes."""

    name: str
    flops: float = 0.0
    seconds: float = 0.0
    compute_s: float = 0.0
    dispatch_s: float = 0.0
    input_s: float = 0.0
    host_bytes: float = 0.0
    gpu_bytes: float = 0.0
    train_samples: int = 0
    eval_samples: int = 0
    counted: bool = True  # False: a shared stage already counted in this plan

    def add(self, other: "StageCost") -> None:
        """Sum the work, keep the larger memory."""
        for attr in ("flops", "seconds", "compute_s", "dispatch_s", "input_s", "train_samples", "eval_samples"):
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        self.host_bytes = max(self.host_bytes, other.host_bytes)
        self.gpu_bytes = max(self.gpu_bytes, other.gpu_bytes)


def _steps(samples: int, batch: int) -> int:
    return math.ceil(samples / batch) if samples else 0


def cost_stage(stage: Stage) -> StageCost:
    """FLOPs, time and memory of one stage (see the module docstring for the formulas)."""
    if not isinstance(stage, Stage):
        raise TypeError(f"stage: expected a fairlib.plan.Stage, got {type(stage).__name__}")
    host = HOST_BASELINE_GB * GB + stage.host_bytes
    out = StageCost(stage.name, host_bytes=host, train_samples=stage.train_samples, eval_samples=stage.eval_samples)
    out.input_s = _input_seconds(stage, stage.images)
    out.seconds = out.input_s + stage.cpu_seconds
    if stage.model is None:
        return out
    key = stage.key
    eval_batch = stage.eval_batch_size or stage.batch_size
    train = measure(stage.model, stage.input_shape, stage.batch_size, train=True, trainable=stage.trainable,
                    key=key) if stage.train_samples else None
    evaluate = measure(stage.model, stage.input_shape, eval_batch, key=key) if stage.eval_samples or not train \
        else None
    any_cost = train or evaluate
    flops = 0.0
    dispatch = 0.0
    if train is not None:
        flops += stage.train_samples * train.flops / train.batch_size
        steps = _steps(stage.train_samples, stage.batch_size)
        dispatch += steps * (train.ops * OP_DISPATCH_S + STEP_OVERHEAD_S)
    if evaluate is not None and stage.eval_samples:
        flops += stage.eval_samples * evaluate.flops / evaluate.batch_size
        batches = _steps(stage.eval_samples, eval_batch)
        dispatch += batches * (evaluate.ops * OP_DISPATCH_S + STEP_OVERHEAD_S)
    rate = CPU_FLOPS if stage.device == "cpu" else sustained_flops(stage.amp)
    compute = flops / rate
    input_s = _input_seconds(stage, stage.train_samples + stage.eval_samples + stage.images)
    if stage.workers == 0:
        seconds = max(compute, dispatch) + input_s  # the loader runs between the steps
    else:
        seconds = max(compute, dispatch, input_s)
    seconds += stage.cpu_seconds
    out.flops, out.seconds, out.compute_s, out.dispatch_s, out.input_s = flops, seconds, compute, dispatch, input_s
    out.host_bytes = host + stage.host_models * any_cost.param_bytes
    if stage.device == "gpu":
        out.gpu_bytes = _gpu_bytes(stage, train, evaluate)
    return out


def _input_seconds(stage: Stage, images: int) -> float:
    """Seconds the input pipeline needs for ``images`` images (0 for tensors in RAM)."""
    if stage.pipeline == "cache":
        per_second = CACHE_IMAGES_PER_S * _CACHE_REFERENCE_BYTES / max(1, 3 * stage.source_pixels)
    elif stage.pipeline == "decode":
        per_second = DECODE_PIXELS_PER_S * min(COLAB_CORES, max(1, stage.workers)) / max(1, stage.source_pixels)
    else:
        return 0.0
    return images / per_second


def _gpu_bytes(stage: Stage, train: ModelCost | None, evaluate: ModelCost | None) -> float:
    base = GPU_BASELINE_GB * GB + stage.gpu_bytes
    peaks = []
    half = 0.5 if stage.amp else 1.0
    for cost, is_train in ((train, True), (evaluate, False)):
        if cost is None:
            continue
        # the input batch is part of the activations: saved for backward by the first layer, or
        # among the largest operator's inputs
        weights = cost.param_bytes + cost.buffer_bytes + (0.5 * cost.param_bytes if stage.amp else 0.0)
        grads = cost.trainable_bytes * (1 + stage.optimizer_state) if is_train else 0
        peaks.append(weights + grads + half * cost.activation_bytes)
    return base + max(peaks)


# --------------------------------------------------------------------------- plans
@dataclass
class ExperimentPlan:
    """One experiment of a chapter under one profile."""

    name: str
    runs: int = 0
    flops: float = 0.0
    seconds: float = 0.0
    peak_host_bytes: float = 0.0
    peak_gpu_bytes: float = 0.0
    stages: dict[str, StageCost] = field(default_factory=dict)
    supported: bool = True
    note: str = ""
    data: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)

    @property
    def gpu_hours_t4(self) -> float:
        return self.seconds / 3600

    @property
    def peak_host_gb(self) -> float:
        return self.peak_host_bytes / GB

    @property
    def peak_gpu_gb(self) -> float:
        return self.peak_gpu_bytes / GB

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "supported": self.supported, "note": self.note, "runs": self.runs,
                "flops": self.flops, "gpu_hours_t4": self.gpu_hours_t4, "peak_host_gb": self.peak_host_gb,
                "peak_gpu_gb": self.peak_gpu_gb, "data": self.data, "weights": self.weights,
                "stages": [{**{k: v for k, v in asdict(s).items() if k not in ("host_bytes", "gpu_bytes")},
                            "hours": s.seconds / 3600, "peak_host_gb": s.host_bytes / GB,
                            "peak_gpu_gb": s.gpu_bytes / GB} for s in self.stages.values()]}


@dataclass
class ChapterPlan:
    """A chapter's experiments under one profile, with totals (``.summary()`` prints one line)."""

    notebook: str
    profile: str
    experiments: list[ExperimentPlan]
    rehearsal: bool = False

    @property
    def runs(self) -> int:
        return sum(e.runs for e in self.experiments)

    @property
    def flops(self) -> float:
        return sum(e.flops for e in self.experiments)

    @property
    def gpu_hours_t4(self) -> float:
        return sum(e.seconds for e in self.experiments) / 3600

    @property
    def peak_host_gb(self) -> float:
        return max([e.peak_host_bytes for e in self.experiments] + [HOST_BASELINE_GB * GB]) / GB

    @property
    def peak_gpu_gb(self) -> float:
        return max([e.peak_gpu_bytes for e in self.experiments] + [0.0]) / GB

    @property
    def supported(self) -> bool:
        """False when some experiment has no grid for this profile (its numbers are missing)."""
        return all(e.supported for e in self.experiments)

    @property
    def data(self) -> list[str]:
        return sorted({d for e in self.experiments for d in e.data})

    @property
    def weights(self) -> list[str]:
        return sorted({w for e in self.experiments for w in e.weights})

    def over_limits(self) -> dict[str, tuple[float, float]]:
        """``{quantity: (planned, limit)}`` for every limit of :data:`LIMITS` the plan exceeds."""
        values = {"gpu_hours_t4": self.gpu_hours_t4, "peak_host_gb": self.peak_host_gb,
                  "peak_gpu_gb": self.peak_gpu_gb}
        return {k: (values[k], limit) for k, limit in LIMITS.items() if values[k] > limit}

    def summary(self) -> str:
        """One line, e.g. ``"full plan: 24 runs, 2.7 T4-hours, peak 6.1 GB host / 9.8 GB GPU"``."""
        text = (f"{self.profile} plan: {self.runs:,} runs, {_hours(self.gpu_hours_t4)} T4-hours, "
                f"peak {self.peak_host_gb:.1f} GB host / {self.peak_gpu_gb:.1f} GB GPU")
        if self.rehearsal:
            text += " (rehearsal sizes)"
        missing = [e.name for e in self.experiments if not e.supported]
        if missing:
            text += f"; no {self.profile} grid yet for {', '.join(missing)} (not counted)"
        over = self.over_limits()
        if self.profile == "full" and over:
            text += "; over the full limits: " + ", ".join(f"{_LABELS[k]} {v:,.1f} > {lim:g}"
                                                          for k, (v, lim) in over.items())
        return text

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the ``--json`` output): totals, limits, rates and the experiments."""
        return {"notebook": self.notebook, "profile": self.profile, "rehearsal": self.rehearsal,
                "runs": self.runs, "flops": self.flops, "gpu_hours_t4": self.gpu_hours_t4,
                "peak_host_gb": self.peak_host_gb, "peak_gpu_gb": self.peak_gpu_gb,
                "supported": self.supported, "limits": dict(LIMITS),
                "within_limits": not self.over_limits(), "summary": self.summary(),
                "data": self.data, "weights": self.weights, "rates": rates(),
                "experiments": [e.to_dict() for e in self.experiments]}


_LABELS = {"gpu_hours_t4": "T4-hours", "peak_host_gb": "host GB", "peak_gpu_gb": "GPU GB"}


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"


def rates() -> dict[str, Any]:
    """The rates and baselines every plan uses (stated in every output)."""
    return {"t4_amp_flops": sustained_flops(True), "t4_fp32_flops": sustained_flops(False),
            "t4_amp_train_images_per_s": T4_AMP_TRAIN_IMAGES_PER_S,
            "t4_fp32_train_images_per_s": T4_FP32_TRAIN_IMAGES_PER_S,
            "cache_images_per_s_128px": CACHE_IMAGES_PER_S, "decode_pixels_per_s_per_core": DECODE_PIXELS_PER_S,
            "cpu_flops": CPU_FLOPS, "op_dispatch_s": OP_DISPATCH_S, "step_overhead_s": STEP_OVERHEAD_S,
            "host_baseline_gb": HOST_BASELINE_GB, "gpu_baseline_gb": GPU_BASELINE_GB}


class PlanError(ValueError):
    """An unknown chapter or profile (the command line's usage errors)."""


def chapters() -> list[str]:
    """Every chapter (notebook stem) with registered experiments."""
    from fairlib import sweep

    return sorted({name.split("/", 1)[0] for name in sweep.experiments()})


def _notebook(notebook: Any) -> str:
    if isinstance(notebook, os.PathLike):
        notebook = os.fspath(notebook)
    if not isinstance(notebook, str) or not notebook.strip():
        raise ValueError(f"notebook: expected a chapter's file stem such as '05_pruning_bias', got {notebook!r}")
    stem = os.path.basename(notebook.strip())
    for suffix in (".py", ".ipynb"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return stem


def plan(notebook: str, profile: str | None = None) -> ChapterPlan:
    """The compute plan of one chapter under ``profile``.

    Parameters
    ----------
    notebook
        The chapter's file stem, e.g. ``"05_pruning_bias"`` (a path to its ``.py`` or ``.ipynb``
        works too).
    profile
        ``"quick"``, ``"full"`` or ``"paper"``; ``None`` reads ``FAIRLIB_PROFILE``.

    Returns
    -------
    ChapterPlan
        Experiments in name order. One whose grid does not support the profile is kept
        with ``supported=False`` and a note; an experiment without a cost function raises.

    Raises
    ------
    PlanError
        (a ``ValueError``) An unknown chapter (the message lists the chapters) or profile.
    """
    from fairlib import sweep
    from fairlib.config import get_profile, rehearsing

    try:
        stem = _notebook(notebook)
        profile = get_profile(profile)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    try:
        found = sweep.experiments(stem)
    except ValueError:
        raise PlanError(f"notebook: no chapter {stem!r}; available: {', '.join(chapters())}") from None
    seen: set[str] = set()
    plans = []
    for name, experiment in found.items():
        plans.append(_plan_experiment(name, experiment, profile, seen))
    return ChapterPlan(stem, profile, plans, rehearsal=rehearsing(profile))


def _plan_experiment(name: str, experiment: Any, profile: str, seen: set[str]) -> ExperimentPlan:
    out = ExperimentPlan(name)
    if experiment.cost is None:
        raise ValueError(f"{experiment.chapter}/{name}: registered without a cost function; pass "
                         "cost=fn(config) -> list[Stage] to fairlib.sweep.register")
    try:
        configs = experiment.configs(profile)
    except (KeyError, ValueError) as exc:
        out.supported = False
        out.note = f"the grid does not support the {profile!r} profile yet ({type(exc).__name__}: {exc})"
        return out
    out.runs = len(configs)
    data, weights = set(), set()
    for config in configs:
        stages = experiment.cost(config)
        if not isinstance(stages, (list, tuple)) or not all(isinstance(s, Stage) for s in stages):
            raise TypeError(f"{experiment.chapter}/{name}: the cost function must return a list of Stage")
        for stage in stages:
            cost = cost_stage(stage)
            data.update(stage.data)
            weights.update(stage.weights)
            if stage.shared is not None:
                done = f"{stage.shared}/{stage.name}"
                if done in seen:  # memoised in the run functions: done once per chapter
                    cost = StageCost(stage.name, host_bytes=cost.host_bytes, gpu_bytes=cost.gpu_bytes, counted=False)
                seen.add(done)
            out.flops += cost.flops
            out.seconds += cost.seconds
            out.peak_host_bytes = max(out.peak_host_bytes, cost.host_bytes)
            out.peak_gpu_bytes = max(out.peak_gpu_bytes, cost.gpu_bytes)
            if stage.name in out.stages:
                out.stages[stage.name].add(cost)
            else:
                out.stages[stage.name] = cost
    out.data, out.weights = sorted(data), sorted(weights)
    return out


# --------------------------------------------------------------------------- text output
def format_plan(chapter: ChapterPlan, *, stages: bool = False) -> str:
    """The plan as a text table: one row per experiment (and, with ``stages``, per stage), then totals."""
    header = f"{'experiment':<32}{'runs':>9}{'FLOPs':>11}{'T4-hours':>11}{'host GB':>9}{'GPU GB':>8}"
    lines = [f"{chapter.notebook}: {chapter.profile} profile" + (" (rehearsal sizes)" if chapter.rehearsal else ""),
             header, "-" * len(header)]
    for e in chapter.experiments:
        if not e.supported:
            lines.append(f"{e.name:<32}  -- {e.note}")
            continue
        lines.append(f"{e.name:<32}{e.runs:>9,}{e.flops:>11.3g}{_hours(e.gpu_hours_t4):>11}"
                     f"{e.peak_host_gb:>9.1f}{e.peak_gpu_gb:>8.1f}")
        if stages:
            for s in e.stages.values():
                label = "  " + s.name + ("" if s.counted or s.seconds else " (shared)")
                lines.append(f"{label[:32]:<32}{'':>9}{s.flops:>11.3g}{_hours(s.seconds / 3600):>11}"
                             f"{s.host_bytes / GB:>9.1f}{s.gpu_bytes / GB:>8.1f}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<32}{chapter.runs:>9,}{chapter.flops:>11.3g}{_hours(chapter.gpu_hours_t4):>11}"
                 f"{chapter.peak_host_gb:>9.1f}{chapter.peak_gpu_gb:>8.1f}")
    lines.append("(runs, FLOPs and T4-hours add up; host and GPU GB are peaks)")
    over = chapter.over_limits()
    verdict = "within" if not over else "OVER: " + ", ".join(f"{_LABELS[k]} {v:,.1f} > {lim:g}"
                                                            for k, (v, lim) in over.items())
    if chapter.profile == "paper":  # a sweep across machines: the limits of one Colab session do not apply
        lines.append(f"the paper profile has no limit: run it as a sweep (python -m fairlib.sweep run "
                     f"{chapter.notebook} --profile paper --store DIR [--executor ray]); "
                     f"{chapter.gpu_hours_t4 / 24:,.1f} T4-days in all")
    else:
        lines.append(f"limits of the full profile (<= {LIMIT_T4_HOURS:g} T4-hours, <= {LIMIT_HOST_GB:g} GB host, "
                     f"<= {LIMIT_GPU_GB:g} GB GPU): {verdict}")
    r = rates()
    lines.append(f"rates: T4 sustained {r['t4_amp_flops'] / 1e12:.1f} TFLOP/s with AMP, "
                 f"{r['t4_fp32_flops'] / 1e12:.1f} TFLOP/s in FP32 (ResNet-50 training FLOPs x "
                 f"{T4_AMP_TRAIN_IMAGES_PER_S:.0f} / {T4_FP32_TRAIN_IMAGES_PER_S:.0f} img/s, derived from "
                 "NVIDIA DeepLearningExamples' T4 inference and V100 train/infer ratio); "
                 f"input {CACHE_IMAGES_PER_S:,} img/s at 128 px from the cache, "
                 f"{DECODE_PIXELS_PER_S / 1e6:.0f} Mpixel/s per core decoding JPEGs; dispatch "
                 f"{OP_DISPATCH_S * 1e6:.0f} us per operator + {STEP_OVERHEAD_S * 1e3:.1f} ms per batch; "
                 f"CPU {CPU_FLOPS / 1e9:.0f} GFLOP/s; baselines {HOST_BASELINE_GB:g} GB host, "
                 f"{GPU_BASELINE_GB:g} GB GPU")
    return "\n".join(lines)


def main(notebook: str, profile: str | None, *, as_json: bool = False, stages: bool = False) -> str:
    """What ``python -m fairlib.sweep plan`` prints."""
    chapter = plan(notebook, profile)
    if as_json:
        return json.dumps(chapter.to_dict(), indent=1)
    return format_plan(chapter, stages=stages)
