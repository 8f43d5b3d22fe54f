"""Render the SynthFaces gallery on the datasets page: book/images/synthfaces_gallery.png.

Run from the repository root: ``python book/_scripts/make_gallery.py``. Deterministic (seed 0).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fairlib.data.synthfaces import (  # noqa: E402
    AGE_BINS,
    PALETTE_LEVELS,
    canonical_sets,
    render_faces,
    render_multiattribute,
)

OUT = Path(__file__).resolve().parents[1] / "images" / "synthfaces_gallery.png"


def _show(ax, img, title):
    ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=6)
    ax.axis("off")


def main() -> None:
    fig, axes = plt.subplots(4, 8, figsize=(8, 4.9), dpi=150)
    # row 1: one face per palette level (ages and styles mixed)
    imgs, attrs = render_faces(400, group_weights="uniform", seed=0)
    for j, level in enumerate(PALETTE_LEVELS):
        i = int(np.flatnonzero(attrs["palette"] == level)[0])
        _show(axes[0, j], imgs[i], f"palette {level}\nage {attrs['age'][i]}, style {attrs['style'][i]}")
    i = int(np.flatnonzero(attrs["style"] == "B")[1])
    _show(axes[0, 7], imgs[i], f"palette {attrs['palette'][i]}\nage {attrs['age'][i]}, style B")
    # row 2: the age bins at palette-cue strength 0 (colour no longer tracks palette)
    imgs, attrs = render_faces(400, group_weights="uniform", strengths={"palette": 0}, seed=1)
    for j, age in enumerate([AGE_BINS[k] for k in (0, 1, 2, 3, 4, 5, 6, 8)]):
        i = int(np.flatnonzero(attrs["age"] == age)[0])
        _show(axes[1, j], imgs[i], f"age {age}")
    # row 3: multi-attribute mode, attributes that are on
    imgs, attrs = render_multiattribute(64, seed=2)
    for j in range(8):
        on = [c for c in attrs.columns if attrs[c][j] == 1][:2]
        _show(axes[2, j], imgs[j], ", ".join(on) or "(none)")
    # row 4: scene mode canonical sets for two objects
    sets = canonical_sets(2, n_objects=4, seed=3)
    j = 0
    for i in range(2):
        for name in ("object_alone", "style_alone", "object_with_A", "object_with_B"):
            _show(axes[3, j], sets[name][0][i], name.replace("_", " "))
            j += 1
    fig.suptitle("SynthFaces (synthetic: neutral visual factors, not real people)", fontsize=8)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
