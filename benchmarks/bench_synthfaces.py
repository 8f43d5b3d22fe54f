"""Time SynthFaces rendering on one CPU thread (the spec: 10,000 64x64 images in <= 5 s).

Run: ``python benchmarks/bench_synthfaces.py``
"""

import time

import torch

from fairlib.data.synthfaces import canonical_sets, render_faces, render_multiattribute, render_scenes


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    torch.set_num_threads(1)  # numpy renders single-threaded; keep torch from competing
    cases = {
        "render_faces(10_000, size=64)": lambda: render_faces(10_000, size=64),
        "render_multiattribute(10_000, size=64)": lambda: render_multiattribute(10_000, size=64),
        "render_scenes(10_000, size=64)": lambda: render_scenes(10_000, size=64, cooccurrence=0.8),
        "render_faces(2_500, size=128)": lambda: render_faces(2_500, size=128),
        "canonical_sets(2_500) (4 sets)": lambda: canonical_sets(2_500),
    }
    for name, fn in cases.items():
        print(f"{name:42s} {best_of(fn):6.2f} s (best of 3)")


if __name__ == "__main__":
    main()
