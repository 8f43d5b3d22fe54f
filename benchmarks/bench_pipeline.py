"""Input-pipeline throughput: uint8 image cache -> augmentation -> batch, at 128 x 128 on 2 CPU threads.

A T4 trains a ResNet-18 at 128 px at roughly 1,000-2,000 images/s with mixed precision; Colab's
free tier has two CPU cores to feed it. The goal (issue "The real path, rehearsed"): the engine's
own data path delivers at least 3,000 images/s, so that the GPU is not starved.

Measured, in one process with ``torch.set_num_threads(2)``, over one epoch of N images cached in
the uint8 memory map (:func:`fairlib.data.image_tensor`):

``gather``     shuffled batches of 256 read from the memory map (the engine's ``TensorBatches``);
``augment``    the same, then :func:`fairlib.training.augment_batch` (random 4-pixel-padded crops and
               flips) and the uint8 -> float conversion;
``engine``     for information: :func:`fairlib.training.train` for one epoch on the CPU with
               ``supervised_step(augment=...)`` and a model that does next to nothing (a global average
               pool and a 3 -> 2 linear layer). On the CPU the engine converts to float before the
               step augments, and the step's forward, backward and bookkeeping run on the same two
               cores; on a GPU the batch is copied as uint8 and converted and augmented there, so the
               CPU's share is the ``gather`` row.

The goal applies to ``gather`` (the CPU's work when augmentation runs on the GPU, as the engine
does on CUDA) and to ``augment`` (the worst case: augmentation on the CPU too).

Run: ``python benchmarks/bench_pipeline.py [N]`` (default 20000).
"""

from __future__ import annotations

import sys
import tempfile
import time

import pandas as pd
import torch
from torch import nn

from fairlib.data import AttributeDataset, image_tensor
from fairlib.training import TensorBatches, _EpochBatches, augment_batch, supervised_step, train

SIZE, BATCH, GOAL = 128, 256, 3000


def _cached(n: int, directory: str) -> torch.Tensor:
    attrs = pd.DataFrame({"label": pd.Categorical(["0"] * n, categories=["0"])})

    def read(i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(i)
        return torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8, generator=g)

    ds = AttributeDataset(attrs, read, name="bench-pipeline", split="train")
    ds.cache_key = f"bench-pipeline-{n}"
    return image_tensor(ds, directory=directory, batch_size=BATCH, show_progress=False)


def _batches(x: torch.Tensor) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(TensorBatches(x), collate_fn=lambda b: b,
                                       batch_sampler=_EpochBatches(len(x), BATCH, torch.Generator(), True))


def main(n: int) -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as directory:
        x = _cached(n, directory)
        rates = {}
        start = time.perf_counter()
        for (batch,) in _batches(x):
            batch.sum()
        rates["gather"] = n / (time.perf_counter() - start)
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for (batch,) in _batches(x):
            augment_batch(batch, g).float().div_(255)
        rates["augment"] = n / (time.perf_counter() - start)
        y = torch.zeros(n, dtype=torch.long)
        model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
        start = time.perf_counter()
        train(model, (x, y), epochs=1, batch_size=BATCH, step=supervised_step("cross_entropy", augment=augment_batch),
              optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), device="cpu", num_threads=2,
              show_progress=False)
        rates["engine"] = n / (time.perf_counter() - start)
    print(f"{n} images of 3x{SIZE}x{SIZE}, batches of {BATCH}, 2 CPU threads (images/s; goal >= {GOAL}):")
    for name, rate in rates.items():
        verdict = "(information)" if name == "engine" else "ok" if rate >= GOAL else "BELOW GOAL"
        print(f"  {name:<8} {rate:>9,.0f}  {verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
