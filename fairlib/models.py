r"""Every model of the course, behind one :func:`build_model` (method modules import from here).

- :class:`CifarResNet`: depth :math:`6n+2` (8, 14, 20, …, 110), three stages of :math:`n`
  basic blocks with ``width``, ``2·width`` and ``4·width`` channels (the paper's ResNet-110 has
  width 16; Hall et al. vary depth 8…110 and first-stage width 4…64).
- :class:`SmallResNet`: a ResNet-18-style net (``blocks=(2, 2, 2, 2)``, 3×3 stem, no max-pool)
  for 28×28 Fashion-MNIST; with fewer blocks and a tiny width it trains in seconds on 8×8 digits.
  Both end in global average pooling, so they accept any input size ≥ 1×1, and output one logit
  per example (``num_outputs=1``, binary cross-entropy) unless told otherwise. Capacity knobs:
  depth and width here, weight decay in the optimizer (:mod:`fairlib.training`).
- :class:`SmallCNN`: four conv blocks, the quick profile's stand-in for an ImageNet model
  (Chapters 3, 4 and 7).
- :func:`spatial_resnet`: a SmallResNet trunk with a flattened head, for small fixed-position
  cues (Chapter 5's quick profile).
- torchvision's ImageNet backbones, with their preprocessing attached (``model.preprocess``).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fairlib._validation import integer, positive_int, show

__all__ = [
    "BasicBlock",
    "CifarResNet",
    "SmallResNet",
    "SmallCNN",
    "spatial_resnet",
    "VALID_DEPTHS",
    "TORCHVISION_SIZES",
    "build_model",
    "available_models",
    "BACKBONES",
    "BackboneSpec",
    "Backbone",
    "build_backbone",
    "count_parameters",
]

#: Depths of the CIFAR ResNets the paper uses (6n + 2 for n = 1 … 18).
VALID_DEPTHS = tuple(6 * n + 2 for n in range(1, 19))


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        positive_int(c_in, "c_in")
        positive_int(c_out, "c_out")
        positive_int(stride, "stride")
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _ResNet(nn.Module):
    def __init__(self, in_channels: int, widths: Sequence[int], blocks: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        positive_int(in_channels, "in_channels")
        positive_int(num_outputs, "num_outputs")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers = []
        c_in = widths[0]
        for i, (w, b) in enumerate(zip(widths, blocks)):
            for j in range(b):
                layers.append(BasicBlock(c_in, w, stride=2 if (i > 0 and j == 0) else 1))
                c_in = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_outputs)
        self.num_outputs = num_outputs
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.stem[0].in_channels)
        out = self.layers(self.stem(x))
        out = self.head(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
        return out.squeeze(1) if self.num_outputs == 1 else out


def _check_input(x: Any, channels: int) -> None:
    """A batch ``(N, C, H, W)`` with the model's ``C``, or a ``ValueError`` naming ``x``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a torch tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"x: expected shape (N, {channels}, H, W), got {tuple(x.shape)}"
                         + ("; add a batch dimension with x[None]" if x.ndim == 3 else ""))


def _check_width(width: int) -> int:
    return positive_int(width, "width", meaning="(first-stage channels)")


class CifarResNet(_ResNet):
    """CIFAR ResNet of ``depth = 6n + 2`` layers; ``width`` channels in the first stage (paper: 16)."""

    def __init__(self, depth: int = 110, width: int = 16, in_channels: int = 3, num_outputs: int = 1) -> None:
        if not isinstance(depth, numbers.Integral) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
            shown = ", ".join(map(str, VALID_DEPTHS[:6])) + ", …, 110"
            raise ValueError(f"depth: {show(depth)!r} is not of the form 6n + 2; valid depths are {shown}")
        depth = int(depth)
        n = (depth - 2) // 6
        w = _check_width(width)
        super().__init__(in_channels, (w, 2 * w, 4 * w), (n, n, n), num_outputs)
        self.depth = depth
        self.width = w


class SmallResNet(_ResNet):
    """ResNet-18-style net (``blocks=(2, 2, 2, 2)``, ``width=64``) for 28×28 inputs; shrink both for 8×8 digits."""

    def __init__(self, width: int = 64, blocks: Sequence[int] = (2, 2, 2, 2), in_channels: int = 1,
                 num_outputs: int = 1) -> None:
        w = _check_width(width)
        if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Sequence):
            raise ValueError(f"blocks: expected a list of block counts per stage, e.g. (2, 2, 2, 2), got {blocks!r}")
        blocks = tuple(integer(b, f"blocks[{i}]", minimum=1) for i, b in enumerate(blocks))
        if not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"blocks: need at least one stage with >= 1 block each, got {blocks}")
        super().__init__(in_channels, tuple(w * 2**i for i in range(len(blocks))), blocks, num_outputs)
        self.width = w
        self.blocks = blocks


class SmallCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU, the first three max-pooled), global average pool, linear.

    Layer names match the ``"small_cnn"`` preset of :mod:`fairlib.activations`.
    """

    def __init__(self, n_outputs: int, widths: Sequence[int] = (16, 32, 64, 64), in_channels: int = 3):
        super().__init__()
        positive_int(n_outputs, "n_outputs")
        positive_int(in_channels, "in_channels")
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) != 4:
            raise ValueError(f"widths: expected four channel counts, got {widths!r}")
        for i, w in enumerate(widths):
            positive_int(w, f"widths[{i}]")
        c = in_channels
        for i, w in enumerate(widths):
            layers = [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            setattr(self, f"block{i + 1}", nn.Sequential(*layers))
            c = w
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.block1[0].in_channels)
        for i in range(1, 5):
            x = getattr(self, f"block{i}")(x)
        return self.head(self.pool(x))



def spatial_resnet(num_outputs: int, *, image_size: int, width: int = 8,
                   blocks: Sequence[int] = (1, 1, 1), in_channels: int = 3,
                   hidden: int | None = None) -> nn.Sequential:
    """A :class:`SmallResNet` trunk with a linear head on the *flattened* feature map.

    The quick profile's multi-attribute model. SynthFaces' attributes are small marks at fixed
    places of a centred face (like CelebA's aligned crops); without global average pooling the
    head sees *where* a feature fires, and a tiny network learns the visible attributes in a
    few CPU epochs (with pooling it stays near chance for many epochs). The head dominates the
    weight count, so global magnitude pruning has real choices between layers.

    Parameters
    ----------
    num_outputs
        Logits per image (one per attribute).
    image_size
        Input height = width; the feature map is ``ceil(image_size / 2**(len(blocks) - 1))`` wide.
    width, blocks, in_channels
        As in :class:`SmallResNet`.
    hidden
        Optional width of a hidden fully connected layer (``Linear, ReLU``) before the output
        layer. It adds many weights for little compute, so that a tiny network still has the
        redundancy that lets large ones survive 95-99% sparsity.

    Returns
    -------
    torch.nn.Sequential
        ``stem, layers, Flatten, [Linear, ReLU,] Linear``; input ``(N, C, H, W)``, output
        ``(N, num_outputs)``.
    """
    integer(image_size, "image_size", minimum=4, meaning="(the input's side)")
    positive_int(num_outputs, "num_outputs")
    base = SmallResNet(width=width, blocks=blocks, in_channels=in_channels, num_outputs=num_outputs)
    side = int(image_size)
    for _ in range(len(base.blocks) - 1):
        side = (side + 1) // 2  # a stride-2 3x3 conv with padding 1
    features = width * 2 ** (len(base.blocks) - 1) * side * side
    if hidden is None:
        return nn.Sequential(base.stem, base.layers, nn.Flatten(), nn.Linear(features, int(num_outputs)))
    positive_int(hidden, "hidden", allow_none=True)
    return nn.Sequential(base.stem, base.layers, nn.Flatten(), nn.Linear(features, int(hidden)), nn.ReLU(),
                         nn.Linear(int(hidden), int(num_outputs)))


#: Torchvision backbones and their native input side (the ImageNet preprocessing resizes to it).
TORCHVISION_SIZES: dict[str, int] = {"vgg16": 224, "resnet18": 224, "resnet50": 224, "inception_v3": 299}
#: The input side of each backbone in a rehearsal (``FAIRLIB_SCALE=rehearsal``): a size shrunk like
#: the others, so that the full profile's code runs on a CPU in minutes (Inception v3 needs >= 75).
REHEARSAL_SIZES: dict[str, int] = {"vgg16": 64, "resnet18": 64, "resnet50": 64, "inception_v3": 80}

_COURSE_MODELS: dict[str, Callable[..., nn.Module]] = {}


def _course_models() -> dict[str, Callable[..., nn.Module]]:
    if not _COURSE_MODELS:
        _COURSE_MODELS.update({"cifar_resnet": CifarResNet, "small_resnet": SmallResNet, "resnet18": SmallResNet,
                               "small_cnn": SmallCNN, "spatial_resnet": spatial_resnet})
    return _COURSE_MODELS


def available_models() -> list[str]:
    """Every name :func:`build_model` accepts."""
    return sorted(_course_models()) + [f"torchvision.{k}" for k in sorted(TORCHVISION_SIZES)]


def build_model(name: str, *, seed: int | None = None, weights: str | None = None, **options: Any) -> nn.Module:
    """Build a model by name, with the preprocessing it needs attached.

    Names
    -----
    ``"cifar_resnet"`` (:class:`CifarResNet`), ``"small_resnet"`` or ``"resnet18"``
    (:class:`SmallResNet`, the CIFAR-style ResNet-18 of Chapter 2), ``"small_cnn"``
    (:class:`SmallCNN`), ``"spatial_resnet"`` (:func:`spatial_resnet`), and the torchvision
    ImageNet backbones ``"torchvision.vgg16"``, ``"torchvision.resnet18"``,
    ``"torchvision.resnet50"``, ``"torchvision.inception_v3"``.

    Parameters
    ----------
    seed
        Draw the initialisation from this seed, in a forked RNG (the caller's RNG is untouched).
    weights
        Torchvision only: a weights name (e.g. ``"IMAGENET1K_V1"``), downloaded into the course's
        weights cache; ``None`` gives a random initialisation (``num_classes`` may then be set).
        Under ``FAIRLIB_WEIGHTS=random`` (a rehearsal) every name gives a random initialisation
        and nothing is downloaded (:func:`fairlib.config.pretrained`).
    options
        The constructor's keyword arguments; an unknown one is an error that lists the accepted.

    Returns
    -------
    torch.nn.Module
        With two attributes: ``preprocess``, the batch transform its inputs need after uint8
        images become [0, 1] floats (``None``: none; torchvision: resize to ``input_size`` and
        ImageNet normalisation), and ``input_size`` (the native side, or ``None``; in a rehearsal
        :data:`REHEARSAL_SIZES`).
    """
    integer(seed, "seed", minimum=0, allow_none=True)
    key = str(name).lower().replace("-", "_")
    models = _course_models()
    if key.startswith("torchvision."):
        arch = key.split(".", 1)[1]
        if arch not in TORCHVISION_SIZES:
            raise ValueError(f"name: unknown model {name!r}; available: {available_models()}")
        import torchvision

        from fairlib.activations import imagenet_transform
        from fairlib.config import pretrained

        builder = getattr(torchvision.models, arch)
        norm = {}
        if weights is not None:
            known = torchvision.models.get_model_weights(builder)
            if str(weights) not in known.__members__:
                raise ValueError(f"weights: {name!r} has no weights {weights!r}; available: {list(known.__members__)}")
            # the normalisation the weights were trained with, from their own metadata (torchvision's
            # ImageNet weights all use ImageNet's mean and std; another backbone may not)
            tf = known[str(weights)].transforms()
            norm = {"mean": tuple(tf.mean), "std": tuple(tf.std)}
        weights = pretrained(weights)
        if weights is not None:
            from fairlib.data import configure_weights_cache

            configure_weights_cache()
            options = {**options, "weights": weights}
        else:
            options = {"weights": None, **({"init_weights": True} if arch == "inception_v3" else {}), **options}
        model = _construct(builder, name, options, seed, check=False)
        from fairlib.config import rehearsing

        side = REHEARSAL_SIZES[arch] if rehearsing() else TORCHVISION_SIZES[arch]
        model.preprocess = imagenet_transform(side, **norm)
        model.input_size = side
        return model
    if key not in models:
        raise ValueError(f"name: unknown model {name!r}; available: {available_models()}")
    if weights is not None:
        raise ValueError(f"weights: {name!r} has no pretrained weights; pass weights only for torchvision models")
    model = _construct(models[key], name, options, seed, check=True)
    model.preprocess = None
    model.input_size = options.get("image_size")
    return model


def _construct(builder: Callable[..., nn.Module], name: str, options: dict, seed: int | None, *, check: bool
               ) -> nn.Module:
    if check:
        accepted = [p for p in inspect.signature(builder).parameters if p != "self"]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(f"options: unknown option(s) {unknown} for {name!r}; accepted: {accepted}")
        required = [p.name for p in inspect.signature(builder).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.name != "self"]
        missing = [p for p in required if p not in options]
        if missing:
            raise ValueError(f"options: {name!r} needs {', '.join(f'{p}=...' for p in missing)}; accepted: {accepted}")
    if seed is None:
        return builder(**options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder(**options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- pretrained backbones
@dataclass(frozen=True)
class BackboneSpec:
    """One pretrained ResNet-50 of the bias-transfer chapter: where it comes from and how it sees.

    ``source`` says which library builds it (``"torchvision"``, ``"timm"``, ``"open_clip"``, or
    ``"url"``: a torchvision ResNet-50 whose weights are a state dict at ``weights``);
    ``weights`` the weights name (torchvision), model name (timm), pretrained tag (open_clip) or
    URL; ``feature_dim`` the width of the pooled features the head reads; ``mean``, ``std`` and
    ``side`` the preprocessing the weights were trained with.
    """

    pretraining: str
    source: str
    weights: str
    feature_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    side: int = 224
    #: Size of the weights file in MB, for the compute plan's download column: torchvision's own
    #: metadata for its weights; for the others, computed from the checkpoint's parameter count at
    #: 4 bytes each (BiT: 68.3 M with its 21,843-class head; CLIP: the whole RN50 model, 102 M;
    #: MoCo: query and key encoders with their MLP heads, 2 x 28 M, and the 65,536 x 128 queue).
    download_mb: float = 0.0


_IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: The backbones of Ranjit et al.'s comparison that have public PyTorch weights, one per kind of
#: pretraining. Sources (checked 2026-11-30): timm's ``resnetv2.py`` default config of
#: ``resnetv2_50x1_bit.goog_in21k`` (mean and std 0.5, a 1x1-convolution head); open_clip's
#: ``RN50.json`` and ``constants.py`` (attention-pooled 1,024-d image features, OpenAI's mean and
#: std); facebookresearch/moco's README and ``main_lincls.py`` (MoCo v2, 800 epochs, keys under
#: ``module.encoder_q.``; licence CC-BY-NC 4.0). SimCLR's official weights are TensorFlow only.
BACKBONES: dict[str, BackboneSpec] = {
    "resnet50_in1k": BackboneSpec("supervised, ImageNet-1k", "torchvision", "IMAGENET1K_V2", 2048,
                                  *_IMAGENET_MEAN_STD, download_mb=102.5),
    "bit50_in21k": BackboneSpec("supervised, ImageNet-21k", "timm", "resnetv2_50x1_bit.goog_in21k", 2048,
                                (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), download_mb=273.0),
    "clip_rn50": BackboneSpec("contrastive image-text (CLIP)", "open_clip", "openai", 1024,
                              (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711),
                              download_mb=408.0),
    "moco_v2_rn50": BackboneSpec(
        "self-supervised (MoCo v2), ImageNet-1k", "url",
        "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar", 2048,
        *_IMAGENET_MEAN_STD, download_mb=257.3),
}


class Backbone(nn.Module):
    """A pretrained feature extractor ``body`` (images to ``(N, feature_dim)``) and a linear head ``fc``.

    Every backbone of :data:`BACKBONES` has the same two module names, so the chapter reads
    features at ``layer="body"`` and fine-tunes with ``head="fc"`` whatever the library that
    built it. Attributes ``preprocess`` (the weights' own normalisation at ``input_size``),
    ``input_size``, ``name`` and ``pretraining``.
    """

    def __init__(self, body: nn.Module, feature_dim: int, n_outputs: int) -> None:
        super().__init__()
        self.body = body
        self.fc = nn.Linear(int(feature_dim), int(n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.body(x), 1))


def _moco_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The query encoder of a MoCo checkpoint as a torchvision ResNet-50 state dict, without its head."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError("checkpoint: expected a MoCo checkpoint (a dict with 'state_dict')")
    prefix = "module.encoder_q."
    out = {k[len(prefix):]: v for k, v in state.items()
           if k.startswith(prefix) and not k.startswith(prefix + "fc.")}
    if not out:
        raise ValueError(f"checkpoint: no key starts with {prefix!r}; is this a MoCo checkpoint?")
    return out


def _backbone_body(spec: BackboneSpec, weights: str | None, side: int) -> nn.Module:
    """The feature extractor of ``spec``, pretrained when ``weights`` is given, else randomly initialised."""
    if spec.source in ("torchvision", "url"):
        import torchvision

        body = torchvision.models.resnet50(weights=weights if spec.source == "torchvision" else None)
        body.fc = nn.Identity()
        if weights is not None and spec.source == "url":
            state = _moco_state_dict(torch.hub.load_state_dict_from_url(weights, map_location="cpu",
                                                                        weights_only=False))
            body.load_state_dict(state)  # strict: a key that does not fit is an error, not a silent skip
        return body
    if spec.source == "timm":
        try:
            import timm
        except ImportError:
            raise ImportError("build_backbone: this backbone needs timm; pip install \"fairlib[transfer]\" "
                              "(or pip install timm)") from None
        return timm.create_model(spec.weights, pretrained=weights is not None, num_classes=0)
    try:
        import open_clip
    except ImportError:
        raise ImportError("build_backbone: this backbone needs open_clip; pip install \"fairlib[transfer]\" "
                          "(or pip install open_clip_torch)") from None
    import logging

    root, level = logging.getLogger(), logging.getLogger().level
    if weights is None:  # open_clip warns on the root logger that the model is initialised randomly: we asked
        root.setLevel(logging.ERROR)
    try:
        # open_clip moves the model to `device` at the end: keep it where torch builds by default
        # (the meta device while fairlib.plan measures it)
        clip = open_clip.create_model("RN50", pretrained=weights, force_image_size=side if side != 224 else None,
                                      device=torch.empty(0).device)
    finally:
        root.setLevel(level)
    return clip.visual  # the image tower only: the text tower is not needed


def build_backbone(name: str, *, n_outputs: int = 1000, seed: int | None = None,
                   random_weights: bool = False) -> Backbone:
    """A pretrained backbone of :data:`BACKBONES`, as a :class:`Backbone` with its own preprocessing.

    Parameters
    ----------
    name
        A key of :data:`BACKBONES`.
    n_outputs
        Outputs of the new linear head ``fc`` (replaced again by the fine-tuning code).
    seed
        Seeds the random parts (the head; the whole network under ``FAIRLIB_WEIGHTS=random``).
    random_weights
        Build the architecture only, with random weights and nothing downloaded, whatever
        ``FAIRLIB_WEIGHTS`` says (what :mod:`fairlib.plan`'s cost models measure).

    Returns
    -------
    Backbone
        Under ``FAIRLIB_WEIGHTS=random`` (a rehearsal, the tests) nothing is downloaded and every
        weight is random; in a rehearsal the input side is 64 px.

    Raises
    ------
    ValueError
        An unknown name (the message lists them).
    ImportError
        timm or open_clip missing; the message names ``pip install "fairlib[transfer]"``.
    """
    key = str(name).lower().replace("-", "_")
    if key not in BACKBONES:
        raise ValueError(f"name: unknown backbone {name!r}; available: {list(BACKBONES)}")
    integer(seed, "seed", minimum=0, allow_none=True)
    n_outputs = positive_int(n_outputs, "n_outputs")
    from fairlib.activations import imagenet_transform
    from fairlib.config import pretrained, rehearsing

    spec = BACKBONES[key]
    weights = None if random_weights else pretrained(spec.weights)
    if weights is not None:
        from fairlib.data import configure_weights_cache

        configure_weights_cache()
    # a rehearsal feeds 64 px; a cost model (random_weights) measures the real input side
    side = 64 if rehearsing() and not random_weights else spec.side
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = Backbone(_backbone_body(spec, weights, side), spec.feature_dim, n_outputs)
    model.preprocess = imagenet_transform(side, mean=spec.mean, std=spec.std)
    model.input_size = side
    model.name = key
    model.pretraining = spec.pretraining
    return model.eval()
