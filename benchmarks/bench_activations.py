"""Activation capture, topographic layout and streaming NAPs: the speed and memory goals of
Krug & Stober's chapters (issue 4).

1. Capture throughput as a ratio to a plain ``no_grad`` forward pass of the same model and batch
   (goal: at least 0.9): torchvision ResNet50 (no weights) at 224 x 224, every preset layer
   subsampled to 8 x 8 and written to the float16 memory-mapped store.
2. Layout time at 2,048 channels: :func:`fairlib.topomap.relax` for 1,000 steps (goal: at most
   15 s on the 2-core build machine), and UMAP of 2,048 profile vectors after numba's warm-up.
3. Peak memory of :class:`fairlib.naps.StreamingNAPs` at two dataset sizes (goal: flat, i.e.
   O(groups x layer size) whatever the number of examples), measured with tracemalloc (numpy
   reports its buffers to it).

Run: ``python benchmarks/bench_activations.py`` (or ``make bench``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc

import numpy as np
import torch
import torchvision

from fairlib.activations import capture_activations, layer_preset
from fairlib.naps import StreamingNAPs
from fairlib.topomap import relax, umap_positions


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def capture_ratio(n: int = 64, batch: int = 16, size: int = 224, repeats: int = 3) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(n, 3, size, size)

    @torch.no_grad()
    def plain():
        for i in range(0, n, batch):
            model(x[i:i + batch])

    def capture():
        with tempfile.TemporaryDirectory() as d:
            capture_activations(model, x, "resnet50", reductions=("subsample",), batch_size=batch,
                                directory=d, device="cpu")

    plain(), capture()  # warm-up: allocator, oneDNN primitives, page cache
    # interleaved, so that a slow spell of the machine hits both the same way
    t_plain, t_capture = [], []
    for _ in range(repeats):
        t_plain.append(timed(plain))
        t_capture.append(timed(capture))
    p, c = statistics.median(t_plain), statistics.median(t_capture)
    n_layers = len(layer_preset("resnet50"))  # input, pool1, 16 residual blocks, avg_pool, predictions
    print(f"capture  ResNet50 {size}x{size}, {n} images in batches of {batch}, {n_layers} layers "
          "subsampled to 8x8 -> float16 memmap")
    print(f"         plain forward {p * 1e3:7.1f} ms   capture {c * 1e3:7.1f} ms   "
          f"(medians of {repeats})")
    print(f"         throughput ratio capture/plain = {p / c:.3f}  (goal >= 0.9)")


def layout_time(n_channels: int = 2048, n_steps: int = 1000) -> None:
    rng = np.random.default_rng(0)
    start = rng.random((n_channels, 2))
    t_relax = timed(lambda: relax(start, n_steps))
    print(f"layout   relax: {n_channels} channels x {n_steps} steps = {t_relax:.2f} s  "
          f"({torch.get_num_threads()} threads; goal <= 15 s)")
    vectors = rng.normal(size=(n_channels, 126)).astype(np.float32)
    umap_positions(vectors[:64])  # numba compiles on the first fit
    t_umap = timed(lambda: umap_positions(vectors))
    print(f"         UMAP of {n_channels} x 126 profile vectors (after warm-up) = {t_umap:.2f} s")


def streaming_peak(n_examples: int, n_groups: int = 126, layer: tuple = (512, 7, 7),
                   batch: int = 256) -> int:
    rng = np.random.default_rng(0)
    naps = StreamingNAPs()
    tracemalloc.start()
    for start in range(0, n_examples, batch):
        b = min(batch, n_examples - start)
        # each batch is produced and dropped as a real capture loop would
        acts = rng.standard_normal((b, *layer), dtype=np.float32)
        naps.update(acts, rng.integers(0, n_groups, b))
        del acts
    naps.result()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def streaming_memory() -> None:
    layer = (512, 7, 7)
    d = int(np.prod(layer))
    print(f"NAPs     streaming, 126 groups, layer {layer} ({d} values), batches of 256")
    peaks = []
    for n in (5_000, 20_000):
        peak = streaming_peak(n, layer=layer)
        peaks.append(peak)
        print(f"         N = {n:6d}: peak {peak / 2**20:7.1f} MiB   "
              f"(an in-memory float32 array of all activations: {n * d * 4 / 2**20:7.1f} MiB)")
    print(f"         peak ratio N=20000 / N=5000 = {peaks[1] / peaks[0]:.3f}  (goal: flat, about 1)")


def main() -> None:
    torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    capture_ratio()
    layout_time()
    streaming_memory()


if __name__ == "__main__":
    main()
