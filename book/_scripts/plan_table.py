"""Write the Setup page's table of what each chapter's ``full`` profile downloads and costs, and
the compute table of every chapter's ``paper`` profile ("Reproducing the papers at scale").

Usage (``make book`` runs it before building)::

    python book/_scripts/plan_table.py [--out book/_generated/plan_table.md]
                                       [--paper-out book/_generated/paper_table.md]

One row per chapter: the download (the datasets and pretrained weights its full runs read, from
the stages of :func:`fairlib.plan.plan`), the T4-hours and the peak host RAM and GPU memory of
its full plan. Download sizes come from where ``data_scripts.fetch`` gets the bytes:
``data_scripts.sources`` publishes the sizes of the torchvision archives and the COCO zips;
the Hugging Face mirrors' sizes are in :data:`HF_DOWNLOAD_BYTES` (from their file listings, as
the Datasets page records them); pretrained weights' sizes from torchvision's weight metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "book" / "_generated" / "plan_table.md"
DEFAULT_PAPER_OUT = ROOT / "book" / "_generated" / "paper_table.md"

#: Download size (bytes) of each Hugging Face mirror that ``data_scripts.sources.HF_MIRRORS`` names,
#: from the mirrors' file listings (book/datasets.md): FairFace's 0.25/ parquet files (250 + 250 +
#: 63 MB), CelebA's img_align+identity+attr/ shards (about 11 GB), UTKFace.tar.gz (107 MB).
#: Replace an entry with the fetch manifest's exact total when it records one.
HF_DOWNLOAD_BYTES = {"fairface": 563e6, "celeba": 11e9, "utkface": 107e6}
#: COCO: every split needs the annotations archive; each image split its own zip.
COCO_ZIPS = {"coco/val2017": ("annotations_trainval2017.zip", "val2017.zip"),
             "coco/train2017": ("annotations_trainval2017.zip", "train2017.zip")}


def download_files(data: list[str], weights: list[str]) -> dict[str, float]:
    """``{file: bytes}`` of everything the data names and weight names need (shared files once)."""
    sys.path.insert(0, str(ROOT))
    from data_scripts.sources import COCO_FILES, TORCHVISION_FILES

    files: dict[str, float] = {}
    coco = {f.name: f.size for f in COCO_FILES}
    for name in data:
        if name in TORCHVISION_FILES:
            files.update({f.name: float(f.size or 0) for f in TORCHVISION_FILES[name]})
        elif name in COCO_ZIPS:
            files.update({z: float(coco[z] or 0) for z in COCO_ZIPS[name]})
        elif name in HF_DOWNLOAD_BYTES:
            files[name] = HF_DOWNLOAD_BYTES[name]
        else:
            raise ValueError(f"data: no download size for {name!r}; add it to HF_DOWNLOAD_BYTES or data_scripts")
    for weight in weights:
        import torchvision

        arch, _, version = weight.partition(".")
        if arch == "backbone":  # fairlib.models.BACKBONES: its own record of each weights file's size
            from fairlib.models import BACKBONES

            files[weight] = BACKBONES[version].download_mb * 1e6
            continue
        meta = torchvision.models.get_model_weights(arch)[version].meta
        files[weight] = float(meta.get("_file_size", 0)) * 2**20  # torchvision gives MiB
    return files


def _size(n: float) -> str:
    if n <= 0:
        return "none"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def table() -> str:
    """The markdown table (with a caption line stating the rates)."""
    os.environ.pop("FAIRLIB_SCALE", None)  # the table describes real full runs, never a rehearsal
    from fairlib import plan

    rows = ["| chapter | download | T4-hours | peak RAM | peak GPU memory |", "|---|---|---|---|---|"]
    for chapter in plan.chapters():
        p = plan.plan(chapter, "full")
        files = download_files(p.data, p.weights)
        hours = f"{p.gpu_hours_t4:.1f}" if p.gpu_hours_t4 >= 0.1 else "< 0.1"
        gpu = f"{p.peak_gpu_gb:.1f} GB" if p.peak_gpu_gb > 0 else "none"
        rows.append(f"| {chapter} | {_size(sum(files.values()))} | {hours} | {p.peak_host_gb:.1f} GB | {gpu} |")
    r = plan.rates()
    note = (f"Computed from the code by `python -m fairlib.sweep plan CHAPTER --profile full` (the `full` "
            f"profile's limits: {plan.LIMIT_T4_HOURS:g} T4-hours, {plan.LIMIT_HOST_GB:g} GB RAM, "
            f"{plan.LIMIT_GPU_GB:g} GB GPU memory per chapter). T4-hours at {r['t4_amp_flops'] / 1e12:.1f} TFLOP/s "
            f"with mixed precision and {r['t4_fp32_flops'] / 1e12:.1f} TFLOP/s in FP32, sustained: ResNet-50's "
            "training FLOPs times a T4 training throughput derived from NVIDIA's published T4 inference "
            "and V100 training-to-inference ratio (DeepLearningExamples; no measured T4 training figure "
            "is published), bounded below by the input pipeline; peak RAM includes "
            f"{plan.HOST_BASELINE_GB:g} GB for Python and PyTorch. Downloads include pretrained weights.")
    return "\n".join(rows) + "\n\n" + note + "\n"


def paper_table() -> str:
    """The ``paper`` profile of every chapter, one row per experiment: runs, T4-hours, GPU-days, peak memory."""
    os.environ.pop("FAIRLIB_SCALE", None)
    from fairlib import plan

    rows = ["| chapter | experiment | runs | T4-hours | T4-days | peak RAM | peak GPU memory |",
            "|---|---|---:|---:|---:|---:|---:|"]
    total_runs, total_hours = 0, 0.0
    for chapter in plan.chapters():
        p = plan.plan(chapter, "paper")
        for e in p.experiments:
            if not e.supported:
                rows.append(f"| {chapter} | {e.name} | — | — | — | — | {e.note} |")
                continue
            hours = e.gpu_hours_t4
            total_runs, total_hours = total_runs + e.runs, total_hours + hours
            gpu = f"{e.peak_gpu_gb:.1f} GB" if e.peak_gpu_gb > 0 else "none"
            rows.append(f"| {chapter} | {e.name} | {e.runs:,} | {hours:,.1f} | {hours / 24:,.1f} | "
                        f"{e.peak_host_gb:.1f} GB | {gpu} |")
    rows.append(f"| **all** | | **{total_runs:,}** | **{total_hours:,.0f}** | **{total_hours / 24:,.0f}** | | |")
    note = ("Computed from the code by `python -m fairlib.sweep plan CHAPTER --profile paper` with the rates of the "
            "Setup page's table (one T4; a faster GPU divides the hours by its speed-up). Runs add up across "
            "experiments; work that a chapter shares between runs (a cached dataset, one pretraining) is counted "
            "once.")
    return "\n".join(rows) + "\n\n" + note + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write")
    parser.add_argument("--paper-out", type=Path, default=DEFAULT_PAPER_OUT,
                        help="markdown file for the paper profile's table")
    args = parser.parse_args(argv)
    _write(args.out, table())
    _write(args.paper_out, paper_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
