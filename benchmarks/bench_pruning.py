"""CPU inference latency of the Chapter 5 quick-profile network: dense vs 90% and 99% globally pruned.

The pruned models go through ``make_permanent``, so their weights are plain dense tensors
that happen to hold zeros, which is what a stock PyTorch deployment of a pruned model looks
like. Dense kernels (MKL-DNN/oneDNN convolutions, GEMM) multiply those zeros like any other
number, so no speed-up is expected; the paper's speed-ups come from a sparsity-aware engine
(DeepSparse), not from the masks themselves.

Run: ``python benchmarks/bench_pruning.py`` (about ten seconds). It writes its numbers to
``benchmarks/bench_pruning.json`` (committed), which Chapter 5 shows beside the machine they
were measured on.
"""

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from fairlib import pruning as P
from fairlib.models import spatial_resnet

SIZE = 24        # the quick profile's image size
OUTPUTS = 12     # its number of targets
BATCH = 64
REPEATS = 20
ROUNDS = 5      # models are interleaved over rounds so that machine load hits all alike


@torch.no_grad()
def median_latency(model: torch.nn.Module, x: torch.Tensor, repeats: int = REPEATS) -> float:
    """Median wall time of one forward pass, in milliseconds, after a warm-up."""
    model.eval()
    for _ in range(5):
        model(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def build(sparsity: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = spatial_resnet(OUTPUTS, image_size=SIZE, width=8, hidden=256)  # the quick profile's network
    if sparsity > 0:
        P.global_magnitude_prune(model, sparsity)
        P.make_permanent(model)  # plain weight tensors with zeros, no masks or hooks
    return model


def main() -> None:
    torch.set_num_threads(1)  # one thread: stable timings on a shared machine (threads do not change the verdict)
    torch.manual_seed(0)
    x = torch.rand(BATCH, 3, SIZE, SIZE)
    print(f"quick-profile spatial ResNet, batch {BATCH} at {SIZE}x{SIZE}, {torch.get_num_threads()} threads, "
          f"median over {ROUNDS} rounds of the median of {REPEATS} forward passes")
    results = {}
    models = {s: build(s) for s in (0.0, 0.9, 0.99)}
    rounds = {s: [] for s in models}
    for _ in range(ROUNDS):
        for s, model in models.items():
            rounds[s].append(median_latency(model, x))
    for s, model in models.items():
        results[s] = statistics.median(rounds[s])
        print(f"  sparsity {P.measure_sparsity(model):6.2%}: {results[s]:7.2f} ms/batch"
              f"   ratio to dense {results[s] / results[0.0]:.2f}")
    best = min(results[0.9], results[0.99]) / results[0.0]
    verdict = ("no speed-up beyond timing noise" if best > 0.75 else
               "an apparent speed-up (unexpected for dense kernels: rerun on a quiet machine)")
    print(f"Unstructured sparsity gives {verdict} with stock PyTorch: the zeros are stored and "
          "multiplied by dense kernels. Speed-ups need sparse kernels or a sparsity-aware engine "
          "(e.g. DeepSparse, as in the paper), or structured/N:M patterns on supporting hardware.")
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps({
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "batch": BATCH, "size": SIZE, "date": time.strftime("%Y-%m-%d"),
        "ms_per_batch": {f"{s:g}": round(results[s], 3) for s in results},
        "measured_sparsity": {f"{s:g}": round(P.measure_sparsity(m), 4) for s, m in models.items()},
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
