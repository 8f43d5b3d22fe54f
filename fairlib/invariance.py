r"""Adversarially invariant representations (Fader Networks) for fairer classification.

Teru & Chakraborty (2019) train a Fader Network (Lample et al., 2017) so that its latent code
carries no information about race, then classify gender from the frozen latent. This module
holds every piece of that pipeline:

=================================  ============================================================
object                             role
=================================  ============================================================
:class:`FaderNet`                  encoder, attribute-conditioned decoder, latent discriminator
:class:`VanillaAutoencoder`        same topology, no attribute input, no discriminator
:func:`lambda_schedule`            linear ramp of :math:`\lambda_E` (Fader's schedule)
:func:`adversarial_loss`           the encoder's adversarial term: a random *other* value (Fader's
                                   code) or the *uniform* distribution (the only target whose
                                   optimum is "cannot tell")
:func:`discriminator_step`,        the two alternating updates of one training iteration
:func:`autoencoder_step`
:func:`train_fader`,               whole training runs with a per-epoch history and model
:func:`train_autoencoder`          selection by discriminator accuracy
:class:`LatentCNN`,                the paper's gender classifier on frozen latents
:func:`train_latent_classifier`    (SimpleCNN, SimpleCNN-WL with :func:`inverse_frequency_weights`,
                                   FaderCNN)
:func:`encode`                     latents of images (``torch.no_grad``; predictions go through
                                   :func:`fairlib.training.predict`)
:func:`stratified_split`           equal test size per group (474 per race in the paper)
:func:`group_report`,              per-group accuracy, overall, variance, worst group, gap
:func:`comparison_table`
:func:`latent_probe`               can a fresh linear classifier still read the attribute?
:class:`FaceSplit`,                the chapter's data: SynthFaces with the paper's race shares
:func:`imbalanced_synthfaces`,     (quick) or UTKFace (full), split as in the paper
:func:`utkface_split`
:func:`run_classifier`,            the chapter's experiments (:mod:`fairlib.sweep` run function
:func:`classifier_grid`,           and grids per profile): one classifier on one latent space,
:func:`lambda_grid`                and the :math:`\lambda_E` sweep
=================================  ============================================================

Size rule
---------
Every encoder block halves the image side, and blocks are added until the side equals
``latent_size`` (4 by default): ``n_blocks = log2(image_size / latent_size)``. The channels are
the *last* ``n_blocks`` entries of the paper's ladder C16-C32-C64-C128-C256-C512 scaled by
``max_channels / 512``, so the latent is always ``max_channels × latent_size × latent_size``:
512×4×4 for 256×256 (6 blocks, the paper), 128×128 (5 blocks: C32…C512) and 64×64 (4 blocks:
C64…C512). Smaller ``max_channels`` shrink the whole net for CPU runs (the chapter's quick
profile).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from fairlib import metrics, sweep
from fairlib._memo import Memo
from fairlib._validation import as_1d, as_labels, integer, number, positive_int, show, to_numpy
from fairlib.config import get_device, select
from fairlib.training import Callback, TrainState, predict, supervised_step, train

__all__ = [
    "PAPER_LADDER",
    "encoder_channels",
    "FaderNet",
    "VanillaAutoencoder",
    "LatentCNN",
    "lambda_schedule",
    "other_attribute",
    "ADVERSARIAL_TARGETS",
    "adversarial_loss",
    "discriminator_step",
    "autoencoder_step",
    "train_fader",
    "train_autoencoder",
    "encode",
    "fader_step",
    "inverse_frequency_weights",
    "train_latent_classifier",
    "stratified_split",
    "group_report",
    "comparison_table",
    "latent_probe",
    "to_unit_range",
    "SYNTH_LEVELS",
    "PAPER_TRAIN_SHARE",
    "STYLE_STRENGTH",
    "TRAIN_STYLE_SHARE",
    "SEEDS",
    "FaceSplit",
    "imbalanced_synthfaces",
    "utkface_split",
    "CLASSIFIERS",
    "experiment_data",
    "experiment_autoencoder",
    "experiment_settings",
    "run_classifier",
    "classifier_grid",
    "lambda_grid",
    "classifier_table",
]

#: The paper's encoder channels for 256×256 inputs (C16-C32-C64-C128-C256-C512).
PAPER_LADDER: tuple[int, ...] = (16, 32, 64, 128, 256, 512)


# --------------------------------------------------------------------------- architecture
def encoder_channels(image_size: int, latent_size: int = 4, max_channels: int = 512) -> list[int]:
    """Channels of each encoder block for a square input (see the module's size rule).

    Parameters
    ----------
    image_size
        Input side in pixels; ``image_size / latent_size`` must be a power of two, 2 to 64.
    latent_size
        Side of the latent feature map (the paper: 4).
    max_channels
        Channels of the last block, i.e. of the latent (the paper: 512); a multiple of 32 so
        that the scaled ladder stays integral down to 64×64 inputs.

    Returns
    -------
    list[int]
        E.g. ``[16, 32, 64, 128, 256, 512]`` for 256 and ``[64, 128, 256, 512]`` for 64.
    """
    for name, v in (("image_size", image_size), ("latent_size", latent_size), ("max_channels", max_channels)):
        positive_int(v, name)
    ratio = image_size / latent_size
    n = int(round(math.log2(ratio))) if ratio >= 1 else 0
    if ratio != 2**n or not 1 <= n <= len(PAPER_LADDER):
        raise ValueError(
            f"image_size: {image_size} / latent_size {latent_size} must be 2, 4, …, 64 (each block "
            f"halves the side); e.g. image_size 64, 128 or 256 with latent_size 4"
        )
    scale = max_channels / PAPER_LADDER[-1]
    chans = [max(1, int(round(c * scale))) for c in PAPER_LADDER[-n:]]
    return chans


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    # Conv(4×4, stride 2, padding 1) halves the side exactly; LeakyReLU(0.2) as in Fader.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


class _Encoder(nn.Module):
    def __init__(self, channels: Sequence[int], in_channels: int = 3) -> None:
        super().__init__()
        blocks, c_in = [], in_channels
        for c in channels:
            blocks.append(_conv_block(c_in, c))
            c_in = c
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _Decoder(nn.Module):
    """Transposed convolutions mirroring the encoder; every layer sees the one-hot attribute.

    Layer ``j`` receives ``channels[-1-j] + n_attributes`` input channels: the attribute is
    broadcast to constant feature maps of the current side and concatenated (Fader's design;
    the paper: C512+5 − C256+5 − … − C16+5).
    """

    def __init__(self, channels: Sequence[int], n_attributes: int, out_channels: int = 3) -> None:
        super().__init__()
        self.n_attributes = n_attributes
        rev = list(channels)[::-1]
        outs = rev[1:] + [out_channels]
        self.layers = nn.ModuleList()
        for j, (c_in, c_out) in enumerate(zip(rev, outs)):
            deconv = nn.ConvTranspose2d(c_in + n_attributes, c_out, 4, 2, 1)
            last = j == len(rev) - 1
            # the last layer maps to pixels in [-1, 1], matching the scaled inputs
            self.layers.append(nn.Sequential(deconv, nn.Tanh()) if last else
                               nn.Sequential(deconv, nn.BatchNorm2d(c_out), nn.ReLU()))

    def forward(self, z: torch.Tensor, attr_onehot: torch.Tensor | None = None) -> torch.Tensor:
        h = z
        for layer in self.layers:
            if self.n_attributes:
                maps = attr_onehot[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
                h = torch.cat([h, maps.to(h.dtype)], dim=1)
            h = layer(h)
        return h


class _Discriminator(nn.Module):
    """One C512 block on the latent, then FC(512) and FC(n_attributes) (the paper, Sec. 3.1)."""

    def __init__(self, latent_channels: int, latent_size: int, n_attributes: int, width: int = 512,
                 dropout: float = 0.3) -> None:
        super().__init__()
        side = max(1, latent_size // 2)
        self.conv = _conv_block(latent_channels, width)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * side * side, width),
                                nn.LeakyReLU(0.2), nn.Dropout(dropout), nn.Linear(width, n_attributes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(z))


def _check_n_attributes(n: Any) -> int:
    return integer(n, "n_attributes", minimum=2, meaning="(number of attribute values)")


def _number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, meaning: str = "") -> float:
    return number(value, name, low=low, high=high, low_open=low_open, high_open=high_open, meaning=meaning)


def _check_codes(attr: Any, n: int, name: str, length: int | None = None) -> None:
    """``attr`` must be a 1-D integer tensor of codes in ``0..n-1`` (and ``length`` long)."""
    if not isinstance(attr, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of integer codes, got {type(attr).__name__}; "
                         "wrap it with torch.as_tensor(..., dtype=torch.long)")
    if attr.ndim != 1 or attr.is_floating_point() or attr.is_complex() or attr.dtype == torch.bool:
        raise ValueError(f"{name}: expected a 1-D tensor of integer codes (torch.long), got "
                         f"{attr.dtype} of shape {tuple(attr.shape)}")
    if length is not None and len(attr) != length:
        raise ValueError(f"{name}: {len(attr)} codes for {length} images")
    if attr.numel() and (int(attr.min()) < 0 or int(attr.max()) >= n):
        raise ValueError(f"{name}: codes must lie in 0..{n - 1}, got {int(attr.min())}..{int(attr.max())}")


def _check_batch(model: Any, x: Any, attr: Any) -> None:
    """The arguments of one manual training step of a :class:`FaderNet`."""
    if not isinstance(model, FaderNet):
        raise ValueError(f"model: expected a FaderNet (it needs a discriminator), got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x: expected a tensor (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if not x.is_floating_point() or not torch.isfinite(x).all() or x.numel() and float(x.abs().max()) > 1:
        raise ValueError("x: expected finite float images scaled to [-1, 1]; convert them with to_unit_range")
    _check_codes(attr, model.n_attributes, "attr", len(x))


class VanillaAutoencoder(nn.Module):
    """The FaderNet topology without attribute input or discriminator (SimpleCNN's encoder).

    Parameters
    ----------
    image_size, latent_size, max_channels
        See :func:`encoder_channels`.

    Shapes: ``encode``: ``(N, 3, S, S)`` in [-1, 1] -> ``(N, max_channels, latent_size,
    latent_size)``; ``forward`` returns the reconstruction, same shape as the input.
    """

    def __init__(self, image_size: int = 256, *, latent_size: int = 4, max_channels: int = 512) -> None:
        super().__init__()
        self.channels = encoder_channels(image_size, latent_size, max_channels)
        self.image_size, self.latent_size = int(image_size), int(latent_size)
        self.encoder = _Encoder(self.channels)
        self.decoder = _Decoder(self.channels, 0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        s = self.image_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"x: expected images of shape (N, 3, {s}, {s}) (the net's image_size), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return self.encoder(x)

    def decode(self, z: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x))


class FaderNet(VanillaAutoencoder):
    """Fader Network: encoder, attribute-conditioned decoder and latent discriminator.

    Parameters
    ----------
    image_size
        Input side (64, 128, 256, …; see :func:`encoder_channels`).
    n_attributes
        Number of values of the protected attribute (the paper: 5 races).
    latent_size, max_channels
        See :func:`encoder_channels`; ``max_channels`` also sets the discriminator's C512 block
        and hidden FC width.
    dis_dropout
        Dropout in the discriminator's FC layers (Fader uses 0.3).

    Notes
    -----
    ``decode(z, attr)`` takes integer attribute codes ``(N,)`` (turned into one-hot vectors) or
    one-hot/soft vectors ``(N, n_attributes)``; swapping ``attr`` at decoding time is how the
    chapter shows what the decoder learned to take from the attribute.
    """

    def __init__(self, image_size: int = 256, n_attributes: int = 5, *, latent_size: int = 4,
                 max_channels: int = 512, dis_dropout: float = 0.3) -> None:
        super().__init__(image_size, latent_size=latent_size, max_channels=max_channels)
        self.n_attributes = _check_n_attributes(n_attributes)
        dis_dropout = _number(dis_dropout, "dis_dropout", low=0, high=1, high_open=True,
                              meaning="(dropout probability)")
        self.decoder = _Decoder(self.channels, self.n_attributes)
        self.discriminator = _Discriminator(self.channels[-1], self.latent_size, self.n_attributes,
                                            width=max_channels, dropout=dis_dropout)

    def onehot(self, attr: torch.Tensor) -> torch.Tensor:
        if not isinstance(attr, torch.Tensor):
            raise ValueError(f"attr: expected a tensor of codes (N,) or one-hot rows (N, {self.n_attributes}), "
                             f"got {type(attr).__name__}; wrap it with torch.as_tensor")
        if attr.ndim == 1 and attr.is_floating_point() and bool((attr != attr.round()).any()):
            raise ValueError("attr: codes (N,) must be whole numbers; pass one-hot or soft rows "
                             f"(N, {self.n_attributes}) for mixtures")
        if attr.ndim == 1:
            if attr.numel() and (int(attr.min()) < 0 or int(attr.max()) >= self.n_attributes):
                raise ValueError(f"attr: codes must lie in 0..{self.n_attributes - 1}, got "
                                 f"{int(attr.min())}..{int(attr.max())}")
            return F.one_hot(attr.long(), self.n_attributes).float()
        if attr.ndim == 2 and attr.shape[1] == self.n_attributes:
            return attr.float()
        raise ValueError(
            f"attr: expected codes (N,) or one-hot (N, {self.n_attributes}), got shape {tuple(attr.shape)}")

    def decode(self, z: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        if attr is None:
            raise ValueError("attr: FaderNet's decoder needs the attribute of every image")
        return self.decoder(z, self.onehot(attr))

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x), attr)


class LatentCNN(nn.Module):
    """The paper's classifier on a frozen latent: C512-C128-MaxPool2-C64-C16-FC (Sec. 3.2).

    3×3 convolutions with padding 1 and stride 1 (the paper says stride 2 but also that "input
    size remains the same", which only stride 1 gives), each with BatchNorm and ReLU; dropout
    after the first, third and fourth convolutions and before the FC layer. Channels are scaled
    by ``width / 512``.

    Shapes: ``(N, C, L, L)`` latent -> ``(N, n_classes)`` logits.
    """

    def __init__(self, latent_channels: int = 512, n_classes: int = 2, *, latent_size: int = 4,
                 width: int = 512, dropout: float = 0.3) -> None:
        super().__init__()
        latent_channels = positive_int(latent_channels, "latent_channels")
        n_classes = integer(n_classes, "n_classes", minimum=2, meaning="(number of target classes)")
        latent_size = positive_int(latent_size, "latent_size")
        width = positive_int(width, "width")
        dropout = _number(dropout, "dropout", low=0, high=1, high_open=True, meaning="(dropout probability)")
        self.latent_channels, self.latent_size = latent_channels, latent_size
        c = [max(4, int(round(k * width / 512))) for k in (512, 128, 64, 16)]

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, 1, 1), nn.BatchNorm2d(b), nn.ReLU()]

        side = max(1, latent_size // 2)
        self.net = nn.Sequential(
            *block(latent_channels, c[0]), nn.Dropout(dropout),
            *block(c[0], c[1]), nn.MaxPool2d(2),
            *block(c[1], c[2]), nn.Dropout(dropout),
            *block(c[2], c[3]), nn.Dropout(dropout),
            nn.Flatten(), nn.Linear(c[3] * side * side, n_classes),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, s = self.latent_channels, self.latent_size
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or tuple(z.shape[1:]) != (c, s, s):
            raise ValueError(f"z: expected latents of shape (N, {c}, {s}, {s}), got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        return self.net(z)


# --------------------------------------------------------------------------- training
def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` [0, 255] or float [0, 1] images -> float32 in [-1, 1] (the decoder's tanh range)."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images: expected a torch tensor, got {type(images).__name__}; use torch.as_tensor")
    if images.dtype == torch.uint8:
        return images.float().div(127.5).sub(1.0)
    x = images.float()
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError("images: float images must be finite and lie in [0, 1]; pass uint8 or scale them first")
    return x.mul(2.0).sub(1.0)


def lambda_schedule(step: int, lambda_e: float, ramp_steps: int) -> float:
    r"""Weight of the adversarial term at a training step: :math:`\lambda_E\min(t/T, 1)`.

    Fader's schedule: :math:`\lambda_E` grows linearly from 0 at step 0 to its final value at
    ``ramp_steps`` and stays there; ``ramp_steps = 0`` applies the final value at once.
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step: must be non-negative, got {show(step)!r}")
    _number(lambda_e, "lambda_e", low=0)
    integer(ramp_steps, "ramp_steps", minimum=0)
    if ramp_steps == 0:
        return float(lambda_e)
    return float(lambda_e) * min(step / ramp_steps, 1.0)


def other_attribute(attr: torch.Tensor, n_attributes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly drawn attribute value different from ``attr`` (the adversarial target).

    With two values this is Fader's flip :math:`1-y`; with more it is what Fader's code does for
    a categorical attribute: shift the code by a random offset in ``1..n-1`` modulo ``n``.
    """
    n_attributes = _check_n_attributes(n_attributes)
    _check_codes(attr, n_attributes, "attr")
    shift = torch.randint(1, n_attributes, attr.shape, generator=generator, device="cpu").to(attr.device)
    return (attr + shift) % n_attributes


#: The encoder's adversarial targets (see :func:`adversarial_loss`).
ADVERSARIAL_TARGETS: tuple[str, ...] = ("other", "uniform")


def _check_target(target: Any, name: str = "target") -> str:
    if not isinstance(target, str) or target not in ADVERSARIAL_TARGETS:
        raise ValueError(f"{name}: expected one of {list(ADVERSARIAL_TARGETS)} ('other': a random other value, "
                         f"Fader's code; 'uniform': cannot tell), got {target!r}")
    return target


def adversarial_loss(logits: torch.Tensor, attr: torch.Tensor, *, target: str = "other",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The encoder's adversarial term for one batch of discriminator logits (mean over the batch).

    Two targets for :math:`K` attribute values, :math:`P = \mathrm{softmax}(\text{logits})`:

    ``"other"`` (Fader's code; the paper's :math:`1-y` when :math:`K = 2`)
        :math:`-\log P(y'\mid z)` with :math:`y'` drawn uniformly among the :math:`K-1` other
        values (:func:`other_attribute`); in expectation
        :math:`-\frac{1}{K-1}\sum_{k\ne y}\log P(k\mid z)`. For a fixed discriminator it is
        smallest at :math:`P(y\mid z) = 0` and :math:`1/(K-1)` on every other value, where it
        equals :math:`\log(K-1)`, *below* the :math:`\log K` of "cannot tell": the optimum still
        reveals :math:`y` (it is the one value never predicted).
    ``"uniform"``
        :math:`-\frac1K\sum_k\log P(k\mid z)`, the cross-entropy to the uniform distribution:
        :math:`\log K + \mathrm{KL}(u\,\Vert\,P) \ge \log K`, with equality only at
        :math:`P(k\mid z) = 1/K`, so "cannot tell" is its only optimum. Draws nothing.

    Parameters
    ----------
    logits
        ``(N, K)`` discriminator outputs, ``K >= 2``.
    attr
        ``(N,)`` integer codes of the true attribute in ``0..K-1``.
    target
        ``"other"`` or ``"uniform"``.
    generator
        Draws the other values of ``"other"``.

    Returns
    -------
    torch.Tensor
        A scalar (differentiable in ``logits``).
    """
    target = _check_target(target)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits: expected a tensor (N, K) with K >= 2 attribute values, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"logits: expected floating-point scores, got {logits.dtype}")
    _check_codes(attr, logits.shape[1], "attr", len(logits))
    logits = logits.float()
    if target == "uniform":
        return -F.log_softmax(logits, dim=1).mean(dim=1).mean()
    return F.cross_entropy(logits, other_attribute(attr, logits.shape[1], generator))


def _unit_to_pm1(x: torch.Tensor) -> torch.Tensor:
    """The engine's [0, 1] inputs -> [-1, 1] (the decoder's tanh range), batch by batch on the device."""
    return x.mul(2.0).sub(1.0)


def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"{name}: expected a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if images.dtype != torch.uint8:
        to_unit_range(images)  # validates the [0, 1] range of float images
    return images


def _discriminator_loss(model: FaderNet, x: torch.Tensor, attr: torch.Tensor,
                        class_weights: torch.Tensor | None = None) -> torch.Tensor:
    model.encoder.eval()
    model.discriminator.train()
    with torch.no_grad():
        z = model.encode(x)
    return F.cross_entropy(model.discriminator(z).float(), attr, weight=class_weights)


def _autoencoder_losses(model: FaderNet, x: torch.Tensor, attr: torch.Tensor, generator: torch.Generator | None,
                        target: str = "other") -> tuple[torch.Tensor, torch.Tensor]:
    model.encoder.train()
    model.decoder.train()
    model.discriminator.eval()
    z = model.encode(x)
    mse = F.mse_loss(model.decode(z, attr).float(), x.float())
    adv = adversarial_loss(model.discriminator(z).float(), attr, target=target, generator=generator)
    return mse, adv


def _apply(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def discriminator_step(model: FaderNet, opt: torch.optim.Optimizer, x: torch.Tensor, attr: torch.Tensor,
                       class_weights: torch.Tensor | None = None) -> float:
    r"""One update of the discriminator: :math:`L_{dis} = -\frac1m\sum\log P_{dis}(y\mid E(x))`.

    The encoder runs in eval mode without gradient, so only the discriminator moves.
    ``class_weights`` ``(n_attributes,)`` optionally weights the cross-entropy per attribute value
    (see ``balance_discriminator`` in :func:`train_fader`). Returns the loss before the update.
    """
    _check_batch(model, x, attr)
    _check_class_weights(class_weights, model.n_attributes)
    loss = _discriminator_loss(model, x, attr, class_weights)
    _apply(opt, loss)
    return float(loss.detach())


def autoencoder_step(model: FaderNet, opt: torch.optim.Optimizer, x: torch.Tensor, attr: torch.Tensor,
                     lam: float, *, recon_weight: float = 1.0, adversarial_target: str = "other",
                     generator: torch.Generator | None = None) -> tuple[float, float]:
    r"""One update of encoder and decoder (the paper's adversarial objective).

    .. math::

        L = \frac1m\sum\lVert D(E(x), y) - x\rVert^2 \;-\; \lambda_E\,\frac1m\sum\log P_{dis}(y'\mid E(x))

    with :math:`y'` a different attribute value (:func:`other_attribute`) for
    ``adversarial_target="other"``, or the cross-entropy to the uniform distribution for
    ``"uniform"`` (:func:`adversarial_loss`): the encoder is pushed to make the discriminator
    predict a wrong value, or no value. The discriminator is in eval mode and its
    parameters are not in ``opt``. ``recon_weight`` scales the MSE term (0 isolates the
    adversarial term, as the tests do). Returns ``(mse, adversarial cross-entropy)``.
    """
    _check_batch(model, x, attr)
    _number(lam, "lam", low=0)
    _number(recon_weight, "recon_weight", low=0)
    _check_target(adversarial_target, "adversarial_target")
    mse, adv = _autoencoder_losses(model, x, attr, generator, adversarial_target)
    _apply(opt, recon_weight * mse + lam * adv)
    return float(mse.detach()), float(adv.detach())


def fader_step(*, lambda_e: float, ramp_steps: int, class_weights: torch.Tensor | None = None,
               recon_weight: float = 1.0, adversarial_target: str = "other"
               ) -> Callable[[TrainState, tuple], dict[str, float]]:
    r"""The engine's step for a :class:`FaderNet`: a discriminator update, then an
    encoder/decoder update with :math:`\lambda_E` at the current step (:func:`lambda_schedule`).

    Uses the optimisers named ``"dis"`` and ``"ae"``; draws the adversarial targets of
    ``adversarial_target="other"`` from the run's generator (see :func:`adversarial_loss`).
    """
    _number(lambda_e, "lambda_e", low=0)
    integer(ramp_steps, "ramp_steps", minimum=0)
    _number(recon_weight, "recon_weight", low=0)
    _check_target(adversarial_target, "adversarial_target")
    if class_weights is not None and (not isinstance(class_weights, torch.Tensor) or class_weights.ndim != 1):
        raise ValueError("class_weights: expected a 1-D tensor with one weight per attribute value")

    def step(state: TrainState, batch: tuple) -> dict[str, float]:
        x, attr = batch[0], batch[1]
        model = state.model
        dis = _discriminator_loss(model, x, attr, class_weights)
        state.optimize(dis, "dis")
        lam = lambda_schedule(state.step, lambda_e, ramp_steps)
        mse, adv = _autoencoder_losses(model, x, attr, state.generator, adversarial_target)
        state.optimize(recon_weight * mse + lam * adv, "ae")
        return {"train_mse": float(mse.detach()), "dis_loss": float(dis.detach()), "adv_loss": float(adv.detach())}

    return step


def _check_class_weights(class_weights: Any, n: int) -> None:
    if class_weights is None:
        return
    if not isinstance(class_weights, torch.Tensor) or tuple(class_weights.shape) != (n,):
        got = tuple(class_weights.shape) if isinstance(class_weights, torch.Tensor) else class_weights
        raise ValueError(f"class_weights: expected a tensor of shape ({n},), one weight per attribute value, "
                         f"got {got!r}")
    if not torch.isfinite(class_weights).all() or (class_weights < 0).any():
        raise ValueError("class_weights: weights must be finite and non-negative")


def _check_data(images: torch.Tensor, attr: Any, name: str = "images") -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"{name}: expected a tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    a = torch.as_tensor(as_labels(np.asarray(attr).reshape(-1), "attributes").astype(np.int64))
    if len(a) != len(images):
        raise ValueError(f"attributes: {len(a)} values for {len(images)} images")
    return images, a


def encode(model: VanillaAutoencoder, images: torch.Tensor, batch_size: int = 512, device: Any = None) -> torch.Tensor:
    """Latents ``(N, C, L, L)`` of uint8 or [0, 1] float images, on the CPU."""
    if not isinstance(model, VanillaAutoencoder):
        raise ValueError(f"model: expected a VanillaAutoencoder or FaderNet, got {type(model).__name__}")
    return predict(model.encoder, _check_images(images), batch_size=batch_size, device=device,
                   transform=_unit_to_pm1)


class _ReconstructionError(nn.Module):
    """Per-example mean squared reconstruction error of a FaderNet (inputs already in [-1, 1])."""

    def __init__(self, model: VanillaAutoencoder):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return (self.model(x, attr) - x).pow(2).flatten(1).mean(1)


def _selection_key(*, epoch: int, step: int, dis_acc: float, dis_classes: int, ramp_steps: int
                   ) -> tuple[bool, bool, float, int]:
    """The rank of one epoch in :func:`train_fader`'s selection: the epoch with the largest key is kept.

    In order: the epoch ends after the ramp; its discriminator predicts more than one group on the
    validation set (one that answers a single group has a balanced accuracy of exactly 1/K whatever
    the latent holds, so its accuracy measures nothing); the lower discriminator accuracy; the later
    epoch (ties).
    """
    return step >= ramp_steps, dis_classes > 1, -dis_acc, epoch


def _selected_epoch(history: pd.DataFrame, ramp_steps: int) -> int:
    """The epoch :func:`train_fader` keeps, from a history with ``epoch``, ``step``, ``dis_acc``, ``dis_classes``."""
    keys = [_selection_key(epoch=int(r.epoch), step=int(r.step), dis_acc=float(r.dis_acc),
                           dis_classes=int(r.dis_classes), ramp_steps=ramp_steps) for r in history.itertuples()]
    return max(keys)[3]


class _FaderEpoch(Callback):
    """Validation MSE and discriminator accuracy after every epoch, and the selection by discriminator accuracy."""

    def __init__(self, val_x: torch.Tensor, val_a: torch.Tensor, *, lambda_e: float, ramp_steps: int, select: bool):
        self.val_x, self.val_a = val_x, val_a
        self.lambda_e, self.ramp_steps, self.select = lambda_e, ramp_steps, select
        self.best: tuple[bool, bool, float, int] | None = None  # the kept epoch's _selection_key
        self.best_state: dict | None = None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        model, dev = state.model, state.device
        errors = predict(_ReconstructionError(model), (self.val_x, self.val_a), n_inputs=2, batch_size=512,
                         device=dev, transform=_unit_to_pm1)
        z = predict(model.encoder, self.val_x, batch_size=512, device=dev, transform=_unit_to_pm1)
        guess = predict(model.discriminator, z, output="labels", batch_size=512, device=dev)
        # balanced accuracy (mean recall over the groups present): on a validation set with equal
        # group sizes (the chapter's) it is the plain accuracy; on an imbalanced one (UTKFace's
        # validation split) plain accuracy would reward a latent that reveals the majority alone
        hits = (guess == self.val_a).float()
        dis_acc = float(torch.stack([hits[self.val_a == k].mean() for k in torch.unique(self.val_a)]).mean())
        dis_classes = int(torch.unique(guess).numel())  # 1: the discriminator answers one group for every image
        row.update({"lambda": lambda_schedule(state.step, self.lambda_e, self.ramp_steps),
                    "val_mse": float(errors.mean()), "dis_acc": dis_acc, "dis_classes": dis_classes})
        key = _selection_key(epoch=state.epoch + 1, step=state.step, dis_acc=dis_acc, dis_classes=dis_classes,
                             ramp_steps=self.ramp_steps)
        if self.select and (self.best is None or key > tuple(self.best)):
            self.best = key
            self.best_state = copy.deepcopy(model.state_dict())

    def on_fit_end(self, state: TrainState) -> None:
        if self.select and self.best_state is not None:
            state.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_state": self.best_state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        best = saved["best"]
        if best is not None and len(best) == 3:  # a checkpoint of the earlier rule: (dis_acc, epoch, after ramp)
            best = (bool(best[2]), True, -float(best[0]), int(best[1]))
        self.best, self.best_state = best, saved["best_state"]


def train_fader(model: FaderNet, images: torch.Tensor, attr: Any, *, epochs: int = 10, batch_size: int = 32,
                lambda_e: float = 1e-4, ramp_steps: int = 500_000, lr: float = 2e-4,
                betas: tuple[float, float] = (0.5, 0.999), val: tuple[torch.Tensor, Any] | None = None,
                select: bool = True, balance_discriminator: bool = False, adversarial_target: str = "other",
                seed: int = 0, device: Any = None, show_progress: bool = True, checkpoint: Any = None
                ) -> pd.DataFrame:
    """Train a :class:`FaderNet` by alternating discriminator and autoencoder steps.

    Parameters
    ----------
    model
        The network; trained in place (and, with ``select``, reset to the selected epoch).
    images
        ``(N, 3, S, S)`` uint8 or [0, 1] float; scaled to [-1, 1] batch by batch.
    attr
        ``(N,)`` integer codes of the protected attribute.
    epochs, batch_size, lr, betas
        Adam for both players; lr 2e-4 and β1 = 0.5 are the defaults of Fader Networks' code (the
        invariance paper writes plain gradient steps with one step size and gives no values).
    lambda_e, ramp_steps
        Final adversarial weight and the number of steps of its linear ramp
        (:func:`lambda_schedule`; Fader's defaults: 1e-4 over 500,000 steps).
    val
        ``(images, attr)`` for the per-epoch discriminator accuracy and reconstruction error;
        the training set is used when absent.
    select
        Model selection by discriminator accuracy (the paper selects "by referring to the
        discriminator accuracy" and gives no rule; this one is ours): among the epochs that end
        after the ramp whose discriminator predicts more than one group on ``val``, restore the
        weights of the one with the lowest discriminator accuracy on ``val`` (the most invariant
        latent by that measure; ties: the later epoch). Earlier epochs are excluded because a
        discriminator that has not learned yet is trivially fooled; epochs whose discriminator
        answers one group for every image (``dis_classes == 1``, a balanced accuracy of exactly
        ``1 / n_groups`` whatever the latent holds: collapsed, not fooled) are used only when no
        other post-ramp epoch exists, and pre-ramp epochs only when no epoch ends after the ramp.
        The minimum of a few noisy accuracies lies below their mean, so the selected value can
        fall below chance by noise alone.
    balance_discriminator
        Weight the discriminator's cross-entropy by inverse attribute frequency. Not in the
        paper or Fader; useful under heavy imbalance, where an unweighted discriminator can
        score well by recognising the majority alone, so the encoder is only pushed to hide
        "majority or not".
    adversarial_target
        ``"other"`` (Fader's code) or ``"uniform"``; see :func:`adversarial_loss`.
    checkpoint
        A file to resume from and save to after every epoch (see :func:`fairlib.training.train`).

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, ``step``, ``lambda``, ``train_mse``, ``val_mse``,
        ``dis_acc`` (the discriminator's balanced accuracy on the validation set: the mean recall
        over its groups, chance ``1 / n_groups``; with equal group sizes, as in the chapter, it is
        the plain accuracy), ``dis_classes`` (how many groups the discriminator predicts on the
        validation set; 1: it answers one group for every image), ``dis_loss`` (the
        discriminator's training cross-entropy, weighted as trained, averaged over the epoch's
        batches; ``log(n_groups)`` is that of an output that ignores the latent), ``adv_loss``,
        ``candidate`` (bool: the epochs the selection chose among) and ``selected`` (bool).
    """
    if not isinstance(model, FaderNet):
        raise ValueError(f"model: expected a FaderNet, got {type(model).__name__}; "
                         "train a VanillaAutoencoder with train_autoencoder")
    images, a = _check_data(_check_images(images), attr)
    if int(a.max()) >= model.n_attributes or int(a.min()) < 0:
        raise ValueError(f"attr: codes must lie in 0..{model.n_attributes - 1}")
    _number(lambda_e, "lambda_e", low=0)
    integer(ramp_steps, "ramp_steps", minimum=0)
    _number(lr, "lr", low=0, low_open=True, meaning="(learning rate)")
    _check_target(adversarial_target, "adversarial_target")
    device = torch.device(device) if device is not None else get_device()
    if val is not None and not (isinstance(val, (tuple, list)) and len(val) == 2):
        raise ValueError("val: expected a pair (images, attr) of the validation set")
    vx, va = (images, a) if val is None else _check_data(_check_images(val[0], "val"), val[1], name="val images")
    if val is not None and (int(va.max()) >= model.n_attributes or int(va.min()) < 0):
        raise ValueError(f"val: attribute codes must lie in 0..{model.n_attributes - 1}")
    cw = None
    if balance_discriminator:
        counts = torch.bincount(a, minlength=model.n_attributes).float().clamp(min=1)
        cw = (len(a) / (model.n_attributes * counts)).to(device)
    tracker = _FaderEpoch(_check_images(vx), va, lambda_e=lambda_e, ramp_steps=ramp_steps, select=select)
    history = train(
        model, (images, a), epochs=epochs, batch_size=batch_size,
        optimizer=lambda m: {
            "dis": torch.optim.Adam(m.discriminator.parameters(), lr=lr, betas=betas),
            "ae": torch.optim.Adam(list(m.encoder.parameters()) + list(m.decoder.parameters()), lr=lr, betas=betas)},
        step=fader_step(lambda_e=lambda_e, ramp_steps=ramp_steps, class_weights=cw,
                        adversarial_target=adversarial_target),
        callbacks=[tracker], transform=_unit_to_pm1, seed=seed, device=device,
        show_progress=show_progress, desc="FaderNet", checkpoint=checkpoint)
    history = history[["epoch", "step", "lambda", "train_mse", "val_mse", "dis_acc", "dis_classes", "dis_loss",
                       "adv_loss"]].copy()
    history["candidate"] = history["selected"] = False
    if select and tracker.best is not None:
        tiers = [_selection_key(epoch=int(r.epoch), step=int(r.step), dis_acc=float(r.dis_acc),
                                dis_classes=int(r.dis_classes), ramp_steps=ramp_steps)[:2]
                 for r in history.itertuples()]
        history["candidate"] = [tier == tuple(tracker.best[:2]) for tier in tiers]
        history.loc[history["epoch"] == tracker.best[3], "selected"] = True
    return history


def train_autoencoder(model: VanillaAutoencoder, images: torch.Tensor, *, epochs: int = 10, batch_size: int = 32,
                      lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0,
                      device: Any = None, show_progress: bool = True) -> pd.DataFrame:
    """Train the vanilla autoencoder on reconstruction MSE alone (same optimiser as Fader).

    Returns one row per epoch: ``epoch``, ``train_mse``.
    """
    if not isinstance(model, VanillaAutoencoder):
        raise ValueError(f"model: expected a VanillaAutoencoder, got {type(model).__name__}")
    _number(lr, "lr", low=0, low_open=True, meaning="(learning rate)")
    images, _ = _check_data(_check_images(images), np.zeros(len(images), dtype=np.int64))
    history = train(model, images, epochs=epochs, batch_size=batch_size,
                    optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=lr, betas=betas),
                    step=supervised_step("mse"), transform=_unit_to_pm1, seed=seed, device=device,
                    show_progress=show_progress, desc="autoencoder")
    return history.rename(columns={"loss": "train_mse"})[["epoch", "train_mse"]]


# --------------------------------------------------------------------------- classifiers
def inverse_frequency_weights(groups: Any) -> np.ndarray:
    r"""Per-sample loss weights :math:`w_i = N / (G\,n_{g(i)})` (SimpleCNN-WL).

    Each group's weights sum to :math:`N/G`, so every group contributes equally and the mean
    weight is 1 (the loss keeps its scale). Shape ``(N,)``.
    """
    g = as_labels(groups, "groups")
    values, codes, counts = np.unique(g, return_inverse=True, return_counts=True)
    return (len(g) / (len(values) * counts))[codes.reshape(-1)].astype(np.float64)


def train_latent_classifier(latents: torch.Tensor, targets: Any, *, n_classes: int = 2,
                            sample_weights: Any = None, width: int = 512, epochs: int = 20,
                            batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                            dropout: float = 0.3, seed: int = 0, device: Any = None) -> LatentCNN:
    """Train a :class:`LatentCNN` on frozen latents ``(N, C, L, L)`` with Adam.

    ``sample_weights`` (``(N,)``, e.g. :func:`inverse_frequency_weights`) weights each example's
    cross-entropy: SimpleCNN-WL. The initialisation is drawn from ``seed`` (in a forked RNG).
    Returns the model in eval mode.
    """
    latents, t = _check_data(latents, targets, name="latents")
    n_classes = integer(n_classes, "n_classes", minimum=2, meaning="(number of target classes)")
    if int(t.min()) < 0 or int(t.max()) >= n_classes:
        raise ValueError(f"targets: codes must lie in 0..{n_classes - 1} (n_classes={n_classes}), "
                         f"got {int(t.min())}..{int(t.max())}")
    if latents.is_floating_point() and not torch.isfinite(latents).all():
        raise ValueError("latents: contains NaN or infinite values")
    if sample_weights is None:
        w = torch.ones(len(t))
    else:
        sw = as_1d(sample_weights, "sample_weights")
        if sw.dtype.kind not in "iuf" or (sw < 0).any():
            raise ValueError("sample_weights: expected finite non-negative numbers (e.g. inverse_frequency_weights)")
        w = torch.as_tensor(np.asarray(sample_weights), dtype=torch.float32).reshape(-1)
    if len(w) != len(t):
        raise ValueError(f"sample_weights: {len(w)} weights for {len(t)} examples")
    _number(lr, "lr", low=0, low_open=True, meaning="(learning rate)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LatentCNN(latents.shape[1], n_classes, latent_size=latents.shape[2], width=width, dropout=dropout)
    train(model, (latents, t, w), epochs=epochs, batch_size=batch_size,
          optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=lr, weight_decay=weight_decay),
          step=supervised_step("cross_entropy"), seed=seed, device=device)
    return model


# --------------------------------------------------------------------------- evaluation
def stratified_split(groups: Any, test_per_group: int, *, val_fraction: float = 0.1, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation/test indices with exactly ``test_per_group`` test examples per group.

    The paper's protocol (Sec. 4.1): draw the test set first, 474 images per race, then keep
    ``val_fraction`` of the rest for validation. Every group must keep at least one training
    example.

    Returns
    -------
    (train, val, test)
        Sorted ``int64`` index arrays into ``groups``.

    Raises
    ------
    fairlib.data.GroupTooSmallError (a ValueError)
        Naming the group with too few examples.
    """
    from fairlib.data.groups import GroupTooSmallError

    g = as_labels(groups, "groups")
    test_per_group = positive_int(test_per_group, "test_per_group")
    number(val_fraction, "val_fraction", low=0, high=1, high_open=True, expected="a number in [0, 1)")
    rng = np.random.default_rng(seed)
    test, rest = [], []
    for value in pd.unique(g):
        members = np.flatnonzero(g == value)
        if members.size <= test_per_group:
            raise GroupTooSmallError(
                f"test_per_group: group {show(value)!r} has {members.size} examples, needs more than "
                f"{test_per_group} (the test share plus at least one for training); lower test_per_group")
        members = rng.permutation(members)
        test.append(members[:test_per_group])
        rest.append(members[test_per_group:])
    rest_all = rng.permutation(np.concatenate(rest))
    n_val = int(round(val_fraction * rest_all.size))
    return np.sort(rest_all[n_val:]), np.sort(rest_all[:n_val]), np.sort(np.concatenate(test))


def group_report(y_true: Any, y_pred: Any, *, groups: Any) -> dict[str, Any]:
    """Per-group accuracy and its summaries, in percent (the paper's Table 1 plus two more).

    Returns a dict with ``per_group`` (pandas.Series, %), ``overall`` (%), ``variance``
    (:func:`fairlib.metrics.accuracy_variance`, pp²), ``worst`` (%) and ``gap`` (pp).
    """
    yt, yp = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    return {
        "per_group": 100 * metrics.group_accuracy(yt, yp, groups=groups),
        "overall": 100 * float((yt == yp).mean()),
        "variance": metrics.accuracy_variance(yt, yp, groups=groups),
        "worst": 100 * metrics.worst_group_accuracy(yt, yp, groups=groups),
        "gap": 100 * metrics.accuracy_gap(yt, yp, groups=groups),
    }


def comparison_table(results: Mapping[str, tuple[Any, Any, Any]], group_names: Sequence[str] | None = None
                     ) -> pd.DataFrame:
    """A Table-1-like frame: one column per model, rows ``All classes``, each group,
    ``Variance``, ``Worst group``, ``Largest gap``; ``results`` maps a model name to
    ``(y_true, y_pred, groups)``."""
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results: expected a non-empty mapping model name -> (y_true, y_pred, groups)")
    cols = {}
    for name, value in results.items():
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise ValueError(f"results: the entry of {name!r} must be a triple (y_true, y_pred, groups)")
        yt, yp, g = value
        rep = group_report(yt, yp, groups=g)
        per = rep["per_group"]
        if group_names is not None:
            if any(int(i) >= len(group_names) for i in per.index):
                raise ValueError(f"group_names: {len(group_names)} names for group codes {list(per.index)}")
            per.index = [group_names[int(i)] for i in per.index]
        cols[name] = pd.concat([pd.Series({"All classes": rep["overall"]}), per,
                                pd.Series({"Variance": rep["variance"], "Worst group": rep["worst"],
                                           "Largest gap": rep["gap"]})])
    return pd.DataFrame(cols)


def latent_probe(latents: Any, attr: Any, *, folds: int = 5, seed: int = 0, C: float = 1.0,
                 return_predictions: bool = False) -> float | tuple[float, np.ndarray]:
    """How well a fresh linear classifier recovers the attribute from flattened latents.

    Standardised features, scikit-learn ``LogisticRegression``, stratified ``folds``-fold
    cross-validation: every example is predicted by the fold model that did not see it, and
    the score is the balanced accuracy of these out-of-fold predictions (the mean recall over
    the attribute values; chance is ``1 / n_values``). Use a set with equal group sizes (e.g.
    the stratified test split) so the probe cannot win by predicting the majority group.

    Parameters
    ----------
    latents
        ``(N, ...)`` numbers, flattened to ``(N, D)``.
    attr
        ``(N,)`` attribute values.
    folds, seed, C
        Cross-validation folds, the shuffling seed and the inverse regularisation strength.
    return_predictions
        Also return the ``(N,)`` out-of-fold predictions (for a bootstrap interval of the score
        with :func:`fairlib.metrics.bootstrap_interval`, ``groups=attr``, ``statistic="mean"``).

    Returns
    -------
    float, or (float, numpy.ndarray)
        The balanced accuracy in [0, 1], and with ``return_predictions`` the predictions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = integer(folds, "folds", minimum=2, meaning="(cross-validation folds)")
    C = _number(C, "C", low=0, low_open=True, meaning="(inverse regularisation strength)")
    z = latents.detach().cpu().numpy() if isinstance(latents, torch.Tensor) else to_numpy(latents, "latents")
    if z.ndim < 2 or len(z) == 0:
        raise ValueError(f"latents: expected a non-empty array (N, ...), got shape {z.shape}")
    z = z.reshape(len(z), -1)
    if z.dtype.kind not in "iufb" or not np.isfinite(z).all():
        raise ValueError("latents: expected finite numbers (no NaN or inf)")
    a = as_labels(attr, "attr")
    if len(a) != len(z):
        raise ValueError(f"attr: {len(a)} values for {len(z)} latents")
    counts = pd.Series(a).value_counts()
    if len(counts) < 2:
        raise ValueError(f"attr: only one value ({show(counts.index[0])!r}); a probe needs at least two groups")
    if counts.min() < folds:
        raise ValueError(f"attr: group {counts.idxmin()!r} has {counts.min()} examples, fewer than folds={folds}")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    guess = cross_val_predict(clf, z, a, cv=cv)
    score = float(balanced_accuracy_score(a, guess))
    return (score, guess) if return_predictions else score


# --------------------------------------------------------------------------- the chapter's data
#: SynthFaces palette levels that stand for the paper's five races (the majority first).
SYNTH_LEVELS: tuple[str, ...] = ("P1", "P3", "P5", "P6", "P7")
#: The paper's training shares of White, Black, Asian, Indian and Others, as its Sec. 4.2 states them
#: (UTKFace's own race labels are far less skewed: the full profile's group table shows them).
PAPER_TRAIN_SHARE: tuple[float, ...] = (0.88, 0.04, 0.035, 0.03, 0.015)
#: How visible the target (hair style) is in each SynthFaces group: 1 renders it fully, lower
#: values mix in a random style. A constructed design choice that gives the minorities a harder cue.
#: Every value is above 0.5, so every group stays learnable: at strength ``s`` the rendered style
#: of A lies in {0, 1 - s} and of B in {s, 1} (a margin of 2s - 1); at 0.5 half the images of a
#: group would render the same midpoint for both styles and no classifier could exceed 75 %.
STYLE_STRENGTH: tuple[float, ...] = (1.0, 0.85, 0.8, 0.75, 0.7)
#: The share of style B in each group's *training* images in the quick profile (validation and
#: test stay at one half): in the minorities the palette predicts the style, a shortcut that a
#: classifier on a palette-invariant latent cannot take. A constructed design choice.
TRAIN_STYLE_SHARE: tuple[float, ...] = (0.5, 0.85, 0.15, 0.85, 0.15)


@dataclass(frozen=True)
class FaceSplit:
    """Images with a protected attribute and a target, split as in the paper.

    Attributes
    ----------
    images
        ``(N, 3, S, S)`` uint8 (for UTKFace a tensor backed by a memory map).
    groups, targets
        ``(N,)`` int64 codes of the protected attribute (race, palette) and of the target
        (gender, hair style).
    group_names, target_names
        The names of the codes, in code order.
    train, val, test
        Sorted int64 index arrays; the test set has the same number of examples in every group.
    """

    images: torch.Tensor
    groups: np.ndarray
    targets: np.ndarray
    group_names: list[str]
    target_names: list[str]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def group_counts(self) -> pd.DataFrame:
        """Examples per group (rows, in code order) and split (columns), with the training share in %."""
        names = dict(enumerate(self.group_names))
        counts = pd.DataFrame({split: pd.Series(self.groups[idx]).map(names).value_counts()
                               for split, idx in (("train", self.train), ("validation", self.val),
                                                  ("test", self.test))})
        counts = counts.reindex(self.group_names).fillna(0).astype(int)
        counts["train share (%)"] = (100 * counts["train"] / counts["train"].sum()).round(1)
        return counts


def imbalanced_synthfaces(n_train: int = 3000, *, test_per_group: int = 60, val_per_group: int = 30,
                          size: int = 32, seed: int = 0, levels: Sequence[str] = SYNTH_LEVELS,
                          train_share: Sequence[float] = PAPER_TRAIN_SHARE,
                          style_strength: Sequence[float] = STYLE_STRENGTH,
                          train_style_share: Sequence[float] | None = None) -> FaceSplit:
    """SynthFaces with the paper's race imbalance: palette protected, hair style the target.

    Each palette group is rendered on its own (with its own style strength), twice: ``round(share
    * n_train)`` training images, whose share of style B is ``train_style_share`` (one half when
    ``None``), and ``test_per_group + val_per_group`` held-out images with both styles equally
    likely, split at random into the test and validation sets. So training keeps the paper's
    shares (and any planted palette–style correlation), while validation and test have equal
    groups and no correlation.

    Parameters
    ----------
    n_train
        Training images in all (about: the group counts are rounded); every group needs at
        least one.
    test_per_group, val_per_group
        Held-out images per group.
    size
        Image side (16 to 128).
    seed
        Group ``k`` is rendered with seed ``10 * seed + k`` (training) and ``10 * seed + k + 5000``
        (held out); the held-out split uses ``seed``.
    levels, train_share, style_strength
        One entry per group: the SynthFaces palette level, its training share and its style
        strength in [0, 1].
    train_style_share
        One entry per group in [0, 1]: P(style B | group) in the training split; ``None`` for
        one half everywhere (no correlation).

    Returns
    -------
    FaceSplit
        Group names are the palette levels, target names ``["A", "B"]``.
    """
    from fairlib.data.synthfaces import PALETTE_LEVELS, render_faces

    levels, train_share, style_strength = list(levels), list(train_share), list(style_strength)
    if not len(levels) == len(train_share) == len(style_strength) >= 2:
        raise ValueError(f"levels, train_share, style_strength: need one entry per group (at least 2), got "
                         f"{len(levels)}, {len(train_share)} and {len(style_strength)}")
    if train_style_share is None:
        style_share = [0.5] * len(levels)
    elif isinstance(train_style_share, (str, bytes)) or not isinstance(train_style_share, Sequence):
        raise ValueError(f"train_style_share: expected one share of style B per group (a list), or None, "
                         f"got {train_style_share!r}")
    else:
        style_share = list(train_style_share)
        if len(style_share) != len(levels):
            raise ValueError(f"train_style_share: need one entry per group ({len(levels)}), got {len(style_share)}")
    unknown = [v for v in levels if v not in PALETTE_LEVELS]
    if unknown:
        raise ValueError(f"levels: unknown palette levels {unknown}; choose from {list(PALETTE_LEVELS)}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels: each palette level may appear once, got {levels}")
    for k, (share, strength, b_share) in enumerate(zip(train_share, style_strength, style_share)):
        _number(share, f"train_share[{k}]", low=0, high=1)
        _number(strength, f"style_strength[{k}]", low=0, high=1)
        _number(b_share, f"train_style_share[{k}]", low=0, high=1)
    test_per_group = positive_int(test_per_group, "test_per_group")
    held_out = test_per_group + positive_int(val_per_group, "val_per_group")
    positive_int(n_train, "n_train")
    rng = np.random.default_rng(seed)
    images, groups, targets, train, val, test = [], [], [], [], [], []
    offset = 0
    for k, (level, share, strength, b_share) in enumerate(zip(levels, train_share, style_strength, style_share)):
        n = int(round(share * n_train))
        if n < 1:
            raise ValueError(f"n_train: group {level!r} gets {n} training images (share {share:g} of {n_train}); "
                             "raise n_train")
        for part, (count, b, render_seed) in enumerate(((n, float(b_share), seed * 10 + k),
                                                        (held_out, 0.5, seed * 10 + k + 5000))):
            weights = np.zeros((len(PALETTE_LEVELS), 9, 2))
            weights[PALETTE_LEVELS.index(level), :, 0] = 1.0 - b  # this palette only, all ages
            weights[PALETTE_LEVELS.index(level), :, 1] = b
            x, attrs = render_faces(count, size=size, strengths={"style": strength}, group_weights=weights,
                                    seed=render_seed)
            images.append(x)
            groups.append(np.full(count, k, dtype=np.int64))
            targets.append(attrs["style"].cat.codes.to_numpy().astype(np.int64))
            where = offset + np.arange(count)
            if part == 0:
                train.append(where)
            else:
                where = rng.permutation(where)
                test.append(where[:test_per_group])
                val.append(where[test_per_group:])
            offset += count
    return FaceSplit(torch.cat(images), np.concatenate(groups), np.concatenate(targets), levels, ["A", "B"],
                     np.sort(np.concatenate(train)), np.sort(np.concatenate(val)), np.sort(np.concatenate(test)))


def utkface_split(*, test_per_group: int = 474, val_fraction: float = 0.1, val_per_group: int | None = None,
                  size: int = 256, seed: int = 0, root: Any = None, show_progress: bool = True) -> FaceSplit:
    """UTKFace with race protected and gender the target, the test set drawn as in the paper.

    Every image (``load_dataset("utkface", "all")``) is read once into a uint8 memory map
    (:func:`fairlib.data.image_tensor`); then ``test_per_group`` test images per race (the paper:
    474) and, for validation, ``val_per_group`` images per race from the rest (balanced: the
    chapter's choice, so that model selection weighs every race equally) or, when
    ``val_per_group`` is ``None``, ``val_fraction`` of the rest at random (the paper's 10 %,
    imbalanced), both with :func:`stratified_split`.

    Raises
    ------
    fairlib.data.DatasetNotFoundError
        UTKFace is not under the data root (fetch it with ``python -m data_scripts.fetch utkface``).
    """
    from fairlib.data import image_tensor, load_dataset

    positive_int(test_per_group, "test_per_group")
    _number(val_fraction, "val_fraction", low=0, high=1, high_open=True)
    if val_per_group is not None:
        positive_int(val_per_group, "val_per_group")
    ds = load_dataset("utkface", "all", root=root, size=size)
    images = image_tensor(ds, num_workers=2, show_progress=show_progress)
    groups = ds.attributes["race"].cat.codes.to_numpy().astype(np.int64)
    targets = ds.attributes["gender"].cat.codes.to_numpy().astype(np.int64)
    if val_per_group is None:
        train_idx, val_idx, test_idx = stratified_split(groups, test_per_group, val_fraction=val_fraction,
                                                        seed=seed)
    else:  # the test set first, then an equal-per-race validation set from the rest
        rest, _, test_idx = stratified_split(groups, test_per_group, val_fraction=0.0, seed=seed)
        train_r, _, val_r = stratified_split(groups[rest], val_per_group, val_fraction=0.0, seed=seed)
        train_idx, val_idx = rest[train_r], rest[val_r]
    return FaceSplit(images, groups, targets, list(ds.schema["race"]), list(ds.schema["gender"]),
                     train_idx, val_idx, test_idx)


# --------------------------------------------------------------------------- experiments
#: The three classifiers of the paper's Table 1; the first two share the vanilla latent.
CLASSIFIERS: tuple[str, ...] = ("SimpleCNN", "SimpleCNN-WL", "FaderCNN")

# quick: SynthFaces at 32×32 (64×64 does not fit the chapter's 3-minute CPU budget with five
# autoencoders), nets narrowed to a 64×4×4 latent, a few epochs. full: UTKFace at 256×256 with the
# paper's 512×4×4 latent and test split (474 test images per race); planned at about one T4-hour for
# both experiments (`python -m fairlib.sweep plan 06_adversarial_invariance`), so ``paper`` is ``full``.
#
# quick: 200 test images per group (a noise floor 10^4 p(1-p)/n of about 9 pp² at p = 0.75) and the
# training-only palette–style correlation TRAIN_STYLE_SHARE. Both profiles select the Fader net on a
# validation set with equal groups (the paper's is a random 10 %), and the main Fader net uses
# Fader's "other" adversarial target; the λ_E sweep compares it with the "uniform" one.
_SETTINGS: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "synthfaces", "size": 32, "n_train": 3000, "test_per_group": 200, "val_per_group": 60,
              "train_style_share": list(TRAIN_STYLE_SHARE),
              "max_channels": 64, "ae_epochs": 6, "batch_size": 64, "lr": 1e-3, "lambda_e": 1.0, "ramp_steps": 100,
              "balance_discriminator": True, "adversarial_target": "other", "cls_epochs": 10},
    "full": {"dataset": "utkface", "size": 256, "test_per_group": 474, "val_per_group": 200,
             "max_channels": 512, "ae_epochs": 40, "batch_size": 32, "lr": 2e-4, "lambda_e": 0.01,
             "ramp_steps": 10_000, "balance_discriminator": True, "adversarial_target": "other", "cls_epochs": 30},
    # FAIRLIB_SCALE=rehearsal: the full code on the miniature UTKFace mirror
    "rehearsal": {"test_per_group": 6, "val_per_group": 6, "ae_epochs": 1, "cls_epochs": 1, "batch_size": 8,
                  "ramp_steps": 2},
}
#: The other final values of λ_E in the sweep (the main value is added); every value above 0 is run
#: with both adversarial targets.
_LAMBDAS: dict[str, list[float]] = {"quick": [0.0, 3.0], "full": [0.0, 0.001, 0.1]}
#: The seeds of the chapter's repeats of Table 1 (data draw, split and initialisations).
SEEDS: tuple[int, ...] = (0, 1, 2)

_DATA_KEYS = ("dataset", "size", "n_train", "test_per_group", "val_per_group", "val_fraction", "train_style_share",
              "seed")
_AE_KEYS = ("max_channels", "ae_epochs", "batch_size", "lr", "seed")
_FADER_KEYS = ("lambda_e", "ramp_steps", "balance_discriminator", "adversarial_target")
_DATA = Memo(2)  # the last two datasets (a sweep's runs render or read their data once)
_AUTOENCODERS = Memo(3)  # the last three trained autoencoders


def experiment_data(config: Mapping[str, Any]) -> FaceSplit:
    """The data of one run configuration (its ``dataset``, ``size``, split sizes and ``seed``).

    ``dataset="synthfaces"`` calls :func:`imbalanced_synthfaces` (keys ``n_train``,
    ``test_per_group``, ``val_per_group``, optional ``train_style_share``), ``"utkface"``
    :func:`utkface_split` (keys ``test_per_group`` and ``val_per_group``, or ``val_fraction``). The
    last two splits are kept in memory, so the runs of a sweep render or read their data once; other
    keys of ``config`` are ignored.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a mapping (a configuration of classifier_grid), "
                         f"got {type(config).__name__}")
    dataset = config.get("dataset")
    needed = {"synthfaces": ("size", "n_train", "test_per_group", "val_per_group"),
              "utkface": ("size", "test_per_group")}
    if dataset not in needed:
        raise ValueError(f"dataset: expected 'synthfaces' (quick) or 'utkface' (full), got {dataset!r}")
    missing = [k for k in needed[dataset] if config.get(k) is None]
    if missing:
        raise ValueError(f"config: missing {missing} for dataset {dataset!r} (see classifier_grid for complete "
                         "configurations)")
    return _DATA.get({k: config.get(k) for k in _DATA_KEYS}, lambda: _experiment_data(config))


def _experiment_data(config: Mapping[str, Any]) -> FaceSplit:
    dataset, seed = config.get("dataset"), int(config.get("seed", 0))
    if dataset == "synthfaces":
        return imbalanced_synthfaces(config["n_train"], test_per_group=config["test_per_group"],
                                     val_per_group=config["val_per_group"], size=config["size"], seed=seed,
                                     train_style_share=config.get("train_style_share"))
    if dataset == "utkface":
        return utkface_split(test_per_group=config["test_per_group"],
                             val_fraction=config.get("val_fraction") or 0.1,
                             val_per_group=config.get("val_per_group"), size=config["size"], seed=seed)
    raise ValueError(f"dataset: expected 'synthfaces' (quick) or 'utkface' (full), got {dataset!r}")


def _trained(kind: str, config: Mapping[str, Any], show_progress: bool) -> dict[str, Any]:
    if kind not in ("vanilla", "fader"):
        raise ValueError(f"kind: expected 'vanilla' or 'fader', got {kind!r}")
    device = get_device()
    keys = _DATA_KEYS + _AE_KEYS + (_FADER_KEYS if kind == "fader" else ())
    parts = {**{k: config.get(k) for k in keys}, "kind": kind, "device": str(device)}
    return _AUTOENCODERS.get(parts, lambda: _train_autoencoder_of(kind, config, device, show_progress))


def _train_autoencoder_of(kind: str, config: Mapping[str, Any], device: Any, show_progress: bool) -> dict[str, Any]:
    data = experiment_data(config)
    seed = int(config.get("seed", 0))
    x, g = data.images[data.train], data.groups[data.train]
    common = dict(epochs=config["ae_epochs"], batch_size=config["batch_size"], lr=config["lr"], seed=seed,
                  device=device, show_progress=show_progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "vanilla":
            model = VanillaAutoencoder(config["size"], max_channels=config["max_channels"])
        else:
            model = FaderNet(config["size"], len(data.group_names), max_channels=config["max_channels"])
    if kind == "vanilla":
        history = train_autoencoder(model, x, **common)
    else:
        history = train_fader(model, x, g, lambda_e=config["lambda_e"], ramp_steps=config["ramp_steps"],
                              val=(data.images[data.val], data.groups[data.val]),
                              balance_discriminator=bool(config["balance_discriminator"]),
                              adversarial_target=config.get("adversarial_target") or "other", **common)
    return {"model": model, "history": history}


def experiment_autoencoder(kind: str, config: Mapping[str, Any], *, show_progress: bool = True
                           ) -> tuple[VanillaAutoencoder, pd.DataFrame]:
    """The trained autoencoder of one run configuration, and its per-epoch history.

    Parameters
    ----------
    kind
        ``"vanilla"`` (:func:`train_autoencoder`; SimpleCNN's latent) or ``"fader"``
        (:func:`train_fader` with the validation split, selection by discriminator accuracy and
        ``balance_discriminator`` from the config; FaderCNN's latent).
    config
        A configuration of :func:`classifier_grid` or :func:`lambda_grid` (keys used: the data
        keys of :func:`experiment_data`, ``max_channels``, ``ae_epochs``, ``batch_size``, ``lr``,
        ``seed``, and for a Fader net ``lambda_e``, ``ramp_steps``, ``balance_discriminator``,
        ``adversarial_target``, "other" when absent).
        The initialisation is drawn from ``seed`` in a forked RNG.

    Returns
    -------
    (model, history)
        In eval mode on :func:`fairlib.get_device`. The last three trained autoencoders are
        kept in memory, so the runs of :func:`run_classifier` and a figure that needs the model
        share one training; the model is shared, so do not train it further.
    """
    entry = _trained(kind, config, show_progress)
    return entry["model"], entry["history"]


def _latent_summary(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Latents of every image, the fresh probe and the selected epoch's numbers (computed once)."""
    entry = _trained(kind, config, show_progress=False)
    if "latents" not in entry:
        data, model, history = experiment_data(config), entry["model"], entry["history"]
        device = get_device()
        z = encode(model, data.images, device=device)
        entry["latents"] = z
        probe, guess = latent_probe(z[data.test], data.groups[data.test], seed=int(config.get("seed", 0)),
                                    return_predictions=True)
        entry["probe"], entry["probe_predictions"] = 100 * probe, [int(v) for v in guess]
        # per-example reconstruction errors of the validation set (the selected weights)
        val_attr = torch.as_tensor(data.groups[data.val], dtype=torch.long) if kind == "fader" else None
        val_x = data.images[data.val]
        errors = predict(_ReconstructionError(model), val_x if val_attr is None else (val_x, val_attr),
                         n_inputs=1 if val_attr is None else 2, batch_size=512, device=device,
                         transform=_unit_to_pm1)
        entry["val_errors"] = [float(v) for v in errors]
        if kind == "fader":
            sel = history[history["selected"]].iloc[0]
            entry.update(dis_acc=100 * float(sel["dis_acc"]), dis_classes=int(sel["dis_classes"]),
                         val_mse=float(sel["val_mse"]), selected_epoch=int(sel["epoch"]))
        else:  # no discriminator; the final epoch's reconstruction error on the validation set
            entry.update(dis_acc=float("nan"), dis_classes=0, val_mse=float(np.mean(entry["val_errors"])),
                         selected_epoch=int(history["epoch"].iloc[-1]))
    return entry


def run_classifier(classifier: str, *, dataset: str, size: int, test_per_group: int, max_channels: int,
                   ae_epochs: int, batch_size: int, lr: float, lambda_e: float, ramp_steps: int,
                   balance_discriminator: bool, cls_epochs: int, seed: int, n_train: int | None = None,
                   val_per_group: int | None = None, val_fraction: float | None = None,
                   train_style_share: Sequence[float] | None = None,
                   adversarial_target: str = "other") -> dict[str, Any]:
    """One classifier of the paper's Table 1 on a frozen latent, scored per group on the test set.

    ``classifier`` is ``"SimpleCNN"`` (vanilla autoencoder's latent), ``"SimpleCNN-WL"`` (the
    same latent, loss weights :func:`inverse_frequency_weights`) or ``"FaderCNN"`` (the Fader
    net's latent, trained with ``lambda_e`` and ``adversarial_target``). The data comes from
    :func:`experiment_data`, the autoencoder from :func:`experiment_autoencoder` (both shared
    between runs of one process), and the :class:`LatentCNN` (width ``max_channels``,
    ``cls_epochs`` epochs) is seeded with ``seed``. The other keys are described there.

    Returns
    -------
    dict
        ``per_group``: test accuracy (%) of every group in code order; ``overall`` (%),
        ``variance`` (pp², :func:`fairlib.metrics.accuracy_variance`), ``worst`` (%), ``gap``
        (pp); ``dis_acc``: the discriminator's validation accuracy (%) at the selected epoch
        (NaN for the vanilla latent); ``dis_classes``: how many groups that discriminator predicts
        on the validation set (1: it answers one group for every image; 0 for the vanilla
        latent); ``val_mse``: the validation reconstruction error of the selected epoch
        (vanilla: of the last one); ``selected_epoch``; ``probe``: balanced
        accuracy (%) of a fresh linear probe recovering the group from the test latents
        (:func:`latent_probe`). For intervals (:func:`fairlib.metrics.bootstrap_interval`), in
        test-index order: ``test_groups``, ``test_targets``, ``test_predictions`` (the
        classifier's) and ``probe_predictions`` (the probe's out-of-fold guesses of the group);
        and ``val_errors``, the per-image reconstruction errors of the validation set.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier: expected one of {list(CLASSIFIERS)}, got {classifier!r}")
    _check_target(adversarial_target, "adversarial_target")
    config = {"dataset": dataset, "size": size, "test_per_group": test_per_group, "max_channels": max_channels,
              "ae_epochs": ae_epochs, "batch_size": batch_size, "lr": lr, "lambda_e": lambda_e,
              "ramp_steps": ramp_steps, "balance_discriminator": balance_discriminator, "seed": seed,
              "n_train": n_train, "val_per_group": val_per_group, "val_fraction": val_fraction,
              "train_style_share": None if train_style_share is None else [float(v) for v in train_style_share],
              "adversarial_target": adversarial_target}
    data = experiment_data(config)
    latent = _latent_summary("fader" if classifier == "FaderCNN" else "vanilla", config)
    z, train_idx, test_idx = latent["latents"], data.train, data.test
    weights = inverse_frequency_weights(data.groups[train_idx]) if classifier == "SimpleCNN-WL" else None
    clf = train_latent_classifier(z[train_idx], data.targets[train_idx], n_classes=len(data.target_names),
                                  sample_weights=weights, width=max_channels, epochs=cls_epochs, seed=seed,
                                  device=get_device())
    guess = predict(clf, z[test_idx], output="labels").numpy()
    report = group_report(data.targets[test_idx], guess, groups=data.groups[test_idx])
    per_group = report["per_group"].reindex(range(len(data.group_names)))
    return {"per_group": [float(v) for v in per_group], "overall": report["overall"],
            "variance": float(report["variance"]), "worst": report["worst"], "gap": report["gap"],
            "dis_acc": latent["dis_acc"], "dis_classes": latent["dis_classes"], "val_mse": latent["val_mse"],
            "selected_epoch": latent["selected_epoch"],
            "probe": latent["probe"], "test_groups": [int(v) for v in data.groups[test_idx]],
            "test_targets": [int(v) for v in data.targets[test_idx]], "test_predictions": [int(v) for v in guess],
            "probe_predictions": list(latent["probe_predictions"]), "val_errors": list(latent["val_errors"])}


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not len(seeds):
        raise ValueError(f"seeds: expected a non-empty list of seeds, e.g. [0, 1, 2], got {seeds!r}")
    return [integer(s, "seeds", minimum=0) for s in seeds]


def experiment_settings(profile: str) -> dict[str, Any]:
    """The shared settings of the chapter's runs in a profile (a copy; see :func:`run_classifier`)."""
    return dict(select(_SETTINGS, profile))


def classifier_grid(profile: str, seeds: Sequence[int] = SEEDS) -> list[dict]:
    """SimpleCNN, SimpleCNN-WL and FaderCNN (the paper's Table 1) with the profile's settings.

    ``seed`` is the outer axis (all three classifiers of a seed, then the next seed), so that the
    three runs of a seed share its two autoencoders while they are in memory.
    """
    settings = experiment_settings(profile)
    seeds = _check_seeds(seeds)
    return sweep.grid(seed=list(seeds), classifier=list(CLASSIFIERS), **{k: [v] for k, v in settings.items()})


def lambda_grid(profile: str, seeds: Sequence[int] = (0,),
                targets: Sequence[str] = ADVERSARIAL_TARGETS) -> list[dict]:
    """FaderCNN for every final λ_E of the sweep (0: no adversary), the main value included, ascending.

    Every λ_E above 0 is run with each adversarial target in ``targets`` (see
    :func:`adversarial_loss`); λ_E = 0 has no adversarial term, so it is run once, with the
    profile's main target.
    """
    settings = experiment_settings(profile)
    seeds = _check_seeds(seeds)
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence) or not len(targets):
        raise ValueError(f"targets: expected a non-empty list of adversarial targets, e.g. "
                         f"{list(ADVERSARIAL_TARGETS)}, got {targets!r}")
    targets = [_check_target(t, "targets") for t in targets]
    main_target = settings.pop("adversarial_target")
    lambdas = sorted({float(v) for v in select(_LAMBDAS, profile)} | {float(settings.pop("lambda_e"))})
    configs = []
    for seed in seeds:
        for lam in lambdas:
            for target in ([main_target] if lam == 0 else targets):
                configs.append({"classifier": "FaderCNN", "lambda_e": lam, "adversarial_target": target,
                                **settings, "seed": seed})
    return configs


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
#: UTKFace's aligned and cropped release: 23,708 files of 200 x 200 pixels, 3 of them with a
#: malformed name (skipped by the loader), in 5 race groups.
_UTKFACE_IMAGES, _UTKFACE_SOURCE_PIXELS, _UTKFACE_GROUPS = 23_705, 200 * 200, 5


class _FaderStepCost(nn.Module):
    """The work of one :func:`fader_step` as one module (a cost model, never trained).

    Discriminator update: the encoder without gradient, the discriminator forward and backward.
    Encoder/decoder update: encoder, decoder and discriminator forward, backward through all three
    (the discriminator's parameters get gradients too; only the "ae" optimiser steps).
    """

    def __init__(self, image_size: int, n_attributes: int, max_channels: int):
        super().__init__()
        self.net = FaderNet(image_size, n_attributes, max_channels=max_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.net
        with torch.no_grad():
            z = net.encoder(x)
        onehot = x.new_zeros((x.shape[0], net.n_attributes))
        z2 = net.encoder(x)
        return net.discriminator(z), net.decoder(z2, onehot), net.discriminator(z2)


class _FaderEpochCost(nn.Module):
    """The forward passes of :class:`_FaderEpoch` per validation image: reconstruction, encoding, discriminator."""

    def __init__(self, image_size: int, n_attributes: int, max_channels: int):
        super().__init__()
        self.net = FaderNet(image_size, n_attributes, max_channels=max_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.net
        onehot = x.new_zeros((x.shape[0], net.n_attributes))
        return net.decoder(net.encoder(x), onehot), net.discriminator(net.encoder(x))


class _ReconstructionCost(nn.Module):
    """Encoder then decoder of a :class:`VanillaAutoencoder` (a reconstruction's forward pass)."""

    def __init__(self, image_size: int, max_channels: int):
        super().__init__()
        self.net = VanillaAutoencoder(image_size, max_channels=max_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _encoder(image_size: int, max_channels: int) -> nn.Module:
    return VanillaAutoencoder(image_size, max_channels=max_channels).encoder


def _split_sizes(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """``(all, train, val, test)`` images of :func:`experiment_data` for ``config``, and the group count.

    UTKFace: ``test_per_group`` per race, ``val_per_group`` per race (or ``round(val_fraction *
    rest)``) for validation. SynthFaces: ``round(share * n_train)`` per group plus ``test_per_group
    + val_per_group`` held out.
    """
    if config["dataset"] == "utkface":
        n_all, test = _UTKFACE_IMAGES, _UTKFACE_GROUPS * int(config["test_per_group"])
        if config.get("val_per_group") is not None:
            val = _UTKFACE_GROUPS * int(config["val_per_group"])
        else:
            val = int(round(float(config.get("val_fraction") or 0.1) * (n_all - test)))
        return n_all, n_all - test - val, val, test
    groups = len(SYNTH_LEVELS)
    train = sum(int(round(share * int(config["n_train"]))) for share in PAPER_TRAIN_SHARE)
    test, val = groups * int(config["test_per_group"]), groups * int(config["val_per_group"])
    return train + test + val, train, val, test


def _run_classifier_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_classifier` configuration.

    Memoised in the run function, so counted once per chapter: the data (UTKFace decoded once into
    the ``uint8`` cache by 2 workers; SynthFaces rendered into RAM), each autoencoder (vanilla, or
    Fader with its λ_E) and its latent summary (encoding every image at batch 512, and the
    scikit-learn probe on the test latents, on the CPU). Per configuration: the
    :class:`LatentCNN` (``cls_epochs`` epochs of batch 128, Adam) and its test prediction.

    Host memory: training an autoencoder copies the training images out of the cache
    (``images[train]``, and ``images[val]`` for the Fader's per-epoch validation), and the last three
    trained autoencoders stay memoised with the latents of every image (float32, C x 4 x 4), so up
    to three latent arrays are resident while the next one trains.
    """
    import json

    from fairlib.plan import Stage, amp_default, builder, measure
    from fairlib.training import batch_plan, train

    # mixed precision as the engine runs it on a GPU: train()'s and predict()'s defaults
    amp = {"train": amp_default(train), "predict": amp_default(predict)}

    size, channels, bs = int(config["size"]), int(config["max_channels"]), int(config["batch_size"])
    n_all, n_train, n_val, n_test = _split_sizes(config)
    groups = _UTKFACE_GROUPS if config["dataset"] == "utkface" else len(SYNTH_LEVELS)
    pixels = 3 * size * size
    latents = 4 * channels * 4 * 4
    resident = _AUTOENCODERS.maxsize * latents * n_all + (pixels * n_all if config["dataset"] == "synthfaces" else 0)
    keys = json.dumps({k: config.get(k) for k in _DATA_KEYS}, sort_keys=True)
    shape = (3, size, size)
    stages = []
    if config["dataset"] == "utkface":
        stages.append(Stage("cache UTKFace", images=n_all, pipeline="decode", source_pixels=_UTKFACE_SOURCE_PIXELS,
                            workers=2, data=("utkface",), shared=f"06:data:{keys}"))
    else:
        stages.append(Stage("render faces", host_bytes=2 * pixels * n_all, shared=f"06:data:{keys}"))
    fader = config["classifier"] == "FaderCNN"
    kind = "fader" if fader else "vanilla"
    ae_keys = _DATA_KEYS + _AE_KEYS + (_FADER_KEYS if fader else ())
    shared = f"06:{kind}:" + json.dumps({k: config.get(k) for k in ae_keys}, sort_keys=True)
    epochs = int(config["ae_epochs"])
    train_samples = epochs * sum(batch_plan(n_train, bs))
    io = {"pipeline": "cache", "source_pixels": size * size} if config["dataset"] == "utkface" else {}
    if fader:
        host = resident + pixels * (n_train + n_val)
        step = builder(_FaderStepCost, size, groups, channels)
        best = measure(step, shape, 1).param_bytes  # the selected epoch's weights, copied on the GPU
        stages += [Stage("train the Fader network", step, shape, train_samples=train_samples, batch_size=bs,
                         optimizer_state=2, amp=amp["train"], host_bytes=host, gpu_bytes=best, shared=shared),
                   Stage("validation passes", builder(_FaderEpochCost, size, groups, channels), shape,
                         eval_samples=epochs * n_val, eval_batch_size=512, amp=amp["predict"], host_bytes=host,
                         gpu_bytes=best, shared=shared)]
    else:
        host = resident + pixels * n_train
        stages += [Stage("train the autoencoder", builder(_ReconstructionCost, size, channels), shape,
                         train_samples=train_samples, batch_size=bs, optimizer_state=2, amp=amp["train"],
                         host_bytes=host, shared=shared),
                   Stage("validation passes", builder(_ReconstructionCost, size, channels), shape,
                         eval_samples=n_val, eval_batch_size=512, amp=amp["predict"], host_bytes=host, shared=shared)]
    features = channels * 4 * 4
    stages += [Stage("encode every image", builder(_encoder, size, channels), shape, eval_samples=n_all,
                     eval_batch_size=512, amp=amp["predict"], host_bytes=resident, shared=shared, **io),
               # scikit-learn's LogisticRegression (lbfgs, max_iter=2000) in 5-fold cross-validation on
               # the test latents: counted as max_iter passes of a linear layer, an upper bound
               Stage("latent probe (CPU)", builder(nn.Linear, features, groups), (features,), device="cpu",
                     train_samples=5 * 2000 * (n_test - n_test // 5), batch_size=n_test - n_test // 5,
                     host_bytes=resident + 3 * 4 * features * n_test, shared=shared)]
    cls = builder(LatentCNN, channels, 2, latent_size=4, width=channels)
    host = resident + latents * n_train
    stages += [Stage("train the classifier", cls, (channels, 4, 4), batch_size=128, optimizer_state=2,
                     train_samples=int(config["cls_epochs"]) * sum(batch_plan(n_train, 128)), amp=amp["train"],
                     host_bytes=host),
               Stage("test the classifier", cls, (channels, 4, 4), eval_samples=n_test, eval_batch_size=1024,
                     amp=amp["predict"], host_bytes=host)]
    return stages


sweep.register("06_adversarial_invariance", "classifiers", run_classifier, classifier_grid,
               "SimpleCNN, SimpleCNN-WL and FaderCNN on frozen latents: per-group test accuracy (Table 1)",
               cost=_run_classifier_cost)
sweep.register("06_adversarial_invariance", "lambda_sweep", run_classifier, lambda_grid,
               "FaderCNN and the Fader latent over the final λ_E: invariance, reconstruction and accuracy",
               cost=_run_classifier_cost)


# --------------------------------------------------------------------------- figures
def classifier_table(runs: pd.DataFrame, group_names: Sequence[str], by: str = "classifier") -> pd.DataFrame:
    """A Table-1-like frame from :func:`run_classifier` rows: one column per value of ``by``.

    Rows: ``All classes``, each group, ``Variance``, ``Worst group``, ``Largest gap``. Rows with
    the same ``by`` (several seeds) are averaged entry by entry.
    """
    if not isinstance(runs, pd.DataFrame):
        raise ValueError(f"runs: expected a DataFrame of run_classifier rows (sweep.run), got {type(runs).__name__}")
    needed = [by, "overall", "per_group", "variance", "worst", "gap"]
    missing = [c for c in needed if c not in runs.columns]
    if missing:
        raise ValueError(f"{'by' if by in missing else 'runs'}: missing column(s) {missing}; "
                         f"columns are {list(runs.columns)}")
    index = ["All classes", *group_names, "Variance", "Worst group", "Largest gap"]
    cols = {}
    for name, rows in runs.groupby(by, sort=False):
        values = [[r.overall, *r.per_group, r.variance, r.worst, r.gap] for r in rows.itertuples()]
        if len(values[0]) != len(index):
            raise ValueError(f"group_names: {len(group_names)} names for {len(values[0]) - 4} groups")
        cols[name] = pd.Series(np.mean(values, axis=0), index=index)
    return pd.DataFrame(cols)
