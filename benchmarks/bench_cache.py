"""Peak memory of the image cache: caching a split and one training epoch over it, at 1x and 4x.

Each size runs in a fresh process, so ``ru_maxrss`` is that run's own peak. During the epoch the
memory map's pages become resident as they are read; they are file-backed (``RssFile``), which
the kernel reclaims under pressure, so the column that matters for running out of memory is the
anonymous memory (``RssAnon``), sampled after every batch. The dataset stands in
for a face dataset read file by file (one 3x128x128 uint8 image per item, made from its index,
so decoding costs nothing and only the cache's own memory is measured). The goal (issues "One
training engine..." and "The real path, rehearsed"): peak memory flat from 1x to 4x the data,
below 1.5 GB at 80,000 images of 128 px.

Run: ``python benchmarks/bench_cache.py [N ...]`` (default: 20000 80000)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import pandas as pd, torch
from fairlib.data import AttributeDataset, image_tensor
from fairlib.training import TensorBatches, _EpochBatches

n, directory = int(sys.argv[1]), sys.argv[2]
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
anon_peak = 0.0
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
attrs = pd.DataFrame({"label": pd.Categorical(["0"] * n, categories=["0"])})
def read(i):
    return torch.full((3, 128, 128), i % 251, dtype=torch.uint8)
ds = AttributeDataset(attrs, read, name="bench", split="train")
ds.cache_key = f"bench-{n}"
t = time.perf_counter()
x = image_tensor(ds, directory=directory, batch_size=256)
t_cache = time.perf_counter() - t
after_cache = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# one epoch of the engine's data path: shuffled batches of 256 gathered from the memory map
loader = torch.utils.data.DataLoader(TensorBatches(x), batch_sampler=_EpochBatches(n, 256, torch.Generator(), True),
                                     collate_fn=lambda b: b)
t = time.perf_counter()
total = 0
for (batch,) in loader:
    total += int(batch[:, 0, 0, 0].sum())
    anon_peak = max(anon_peak, status("RssAnon"))
t_epoch = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "gb": n * 3 * 128 * 128 / 1e9, "cache_s": t_cache, "epoch_s": t_epoch,
                  "rss_base_mb": base / 1024, "rss_after_cache_mb": after_cache / 1024, "rss_peak_mb": peak / 1024,
                  "anon_peak_mb": anon_peak, "file_mb": status("RssFile")}))
"""


def main(sizes: list[int]) -> None:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as directory:
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), directory], capture_output=True, text=True,
                                 check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'images':>8} {'data GB':>8} {'cache s':>8} {'epoch s':>8} {'RSS base':>9} {'cached':>7} "
          f"{'epoch anon':>10} {'epoch file':>10} {'peak RSS':>9}   (MB)")
    for r in rows:
        print(f"{r['n']:>8} {r['gb']:>8.2f} {r['cache_s']:>8.1f} {r['epoch_s']:>8.1f} {r['rss_base_mb']:>9.0f} "
              f"{r['rss_after_cache_mb']:>7.0f} {r['anon_peak_mb']:>10.0f} {r['file_mb']:>10.0f} "
              f"{r['rss_peak_mb']:>9.0f}")
    if len(rows) > 1:
        k = rows[-1]["n"] // rows[0]["n"]
        caching = rows[-1]["rss_after_cache_mb"] / rows[0]["rss_after_cache_mb"]
        worst = max(r["rss_peak_mb"] - r["file_mb"] for r in rows) / 1024
        print(f"peak RSS without reclaimable file pages: {worst:.2f} GB (goal <= 1.5 GB)")
        print(f"at {k}x the data: peak RSS while caching {caching:.3f}x, "
              f"anonymous memory during the epoch {rows[-1]['anon_peak_mb'] / rows[0]['anon_peak_mb']:.3f}x "
              "(file-backed pages of the memory map are reclaimable page cache)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20000, 80000])
