r"""Residual networks for the bias amplification experiments (He et al.'s CIFAR recipe).

- :class:`CifarResNet`: depth :math:`6n+2` (8, 14, 20, …, 110), three stages of :math:`n`
  basic blocks with ``width``, ``2·width`` and ``4·width`` channels (the paper's ResNet-110 has
  width 16; Hall et al. vary depth 8…110 and first-stage width 4…64).
- :class:`SmallResNet`: a ResNet-18-style net (``blocks=(2, 2, 2, 2)``, 3×3 stem, no max-pool)
  for 28×28 Fashion-MNIST; with fewer blocks and a tiny width it trains in seconds on 8×8 digits.

Both end in global average pooling, so they accept any input size ≥ 1×1, and output one logit
per example (``num_outputs=1``, binary cross-entropy) unless told otherwise. Capacity knobs:
depth and width here, weight decay in the optimizer (:mod:`fairlib.training`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from fairlib._validation import positive_int

__all__ = ["BasicBlock", "CifarResNet", "SmallResNet", "VALID_DEPTHS", "build_model", "count_parameters"]

#: Depths of the CIFAR ResNets the paper uses (6n + 2 for n = 1 … 18).
VALID_DEPTHS = tuple(6 * n + 2 for n in range(1, 19))


class BasicBlock(nn.Module):
    """Two 3×3 conv–BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
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
        out = self.layers(self.stem(x))
        out = self.head(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
        return out.squeeze(1) if self.num_outputs == 1 else out


def _check_width(width: int) -> int:
    return positive_int(width, "width", meaning="(first-stage channels)")


class CifarResNet(_ResNet):
    """CIFAR ResNet of ``depth = 6n + 2`` layers; ``width`` channels in the first stage (paper: 16)."""

    def __init__(self, depth: int = 110, width: int = 16, in_channels: int = 3, num_outputs: int = 1) -> None:
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            shown = ", ".join(map(str, VALID_DEPTHS[:6])) + ", …, 110"
            raise ValueError(f"depth: {depth!r} is not of the form 6n + 2; valid depths are {shown}")
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
        blocks = tuple(int(b) for b in blocks)
        if not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"blocks: need at least one stage with >= 1 block each, got {blocks}")
        super().__init__(in_channels, tuple(w * 2**i for i in range(len(blocks))), blocks, num_outputs)
        self.width = w
        self.blocks = blocks


def build_model(arch: str, **kwargs) -> nn.Module:
    """``"cifar_resnet"`` → :class:`CifarResNet`, ``"small_resnet"`` or ``"resnet18"`` → :class:`SmallResNet`."""
    key = arch.lower()
    if key == "cifar_resnet":
        return CifarResNet(**kwargs)
    if key in ("small_resnet", "resnet18"):
        return SmallResNet(**kwargs)
    raise ValueError(f"arch: unknown architecture {arch!r}; choose cifar_resnet, small_resnet or resnet18")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
