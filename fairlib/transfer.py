r"""Bias transfer through fine-tuning: association scores, their tests, and the Bias Transfer Score.

Ranjit, Wang, Ray & Ordonez (2023) ask whether the biased associations a pretrained model encodes
survive fine-tuning. Our copy of the paper is a summary and an abstract, so the operational
details below are **our choices**, made explicit (the chapter discusses each):

1. **Canonical sets** (:class:`CanonicalSets`): images of each *concept* alone (an object with
   no person/figure), of the *attribute* alone (value ``a`` and value ``b``, e.g. man / woman,
   style A / style B), and of each concept *paired* with each attribute value.
2. **Embeddings** (:func:`embed`): any layer of any torch model, captured with
   :func:`fairlib.activations.capture_activations`, globally average-pooled to ``(N, D)``.
3. **Association score** of concept :math:`c` (:func:`association_scores`), the difference of
   mean cosine similarities of its images :math:`X_c` to the two attribute sets:

   .. math::
       s_c = \frac{1}{|X_c||A|}\sum_{x\in X_c, y\in A}\cos(x,y)
           - \frac{1}{|X_c||B|}\sum_{x\in X_c, y\in B}\cos(x,y).

   Positive: the concept sits closer to attribute value ``a``.
4. **Effect size and permutation test** (:func:`association_effect_sizes`), WEAT-style
   (Caliskan et al., 2017) with the roles of the sets adapted: every attribute image :math:`y`
   gets the mean similarity :math:`m_c(y) = \operatorname{mean}_{x\in X_c}\cos(x, y)`; then
   :math:`d_c = (\bar m_c(A) - \bar m_c(B)) / \operatorname{sd}_{y\in A\cup B} m_c(y)` (the
   numerator is :math:`s_c`), and the two-sided p-value permutes the a/b labels of the
   attribute images: :math:`p = (1 + \#\{|s^{\pi}_c| \ge |s_c|\}) / (1 + P)`.
5. **Bias Transfer Score** :func:`fairlib.metrics.bias_transfer_score` (Spearman's ρ of the
   scores before and after fine-tuning, over concepts), with a percentile bootstrap interval
   over concepts (:func:`bias_transfer_interval`).

Fine-tuning helpers (:func:`fine_tune`, :func:`transfer_run`) train a copy of a backbone with a
new head, either as a linear probe (frozen backbone, batch-norm statistics frozen too) or in full,
and score the associations before and after. Canonical-set builders: SynthFaces scenes
(:func:`scene_canonical_sets`, quick profile) and COCO val2017 images and captions
(:func:`coco_canonical_sets`, full profile).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from fairlib._validation import positive_int, to_numpy
from fairlib.activations import capture_activations
from fairlib.config import get_device
from fairlib.metrics import bias_transfer_score
from fairlib.training import Callback, TrainState, supervised_step, train

__all__ = [
    "CanonicalSets",
    "scene_canonical_sets",
    "coco_canonical_sets",
    "coco_multilabel",
    "MAN_WORDS",
    "WOMAN_WORDS",
    "embed",
    "association_scores",
    "association_effect_sizes",
    "score_model",
    "bias_transfer_interval",
    "association_changes",
    "replace_head",
    "fine_tune",
    "TransferResult",
    "transfer_run",
]

ArrayLike = Any  # numpy array or torch tensor


# --------------------------------------------------------------------------------------------
# canonical sets


@dataclass
class CanonicalSets:
    """Images that isolate concepts and an attribute, all ``uint8 (n, 3, H, W)`` tensors.

    Attributes
    ----------
    concepts
        Concept name -> images of the concept alone.
    attribute_a, attribute_b
        Images of the attribute alone, value ``a`` and value ``b``.
    paired_a, paired_b
        Concept name -> images of the concept together with attribute value ``a`` (``b``);
        may be empty when a source has no such images.
    names
        Display names of the two attribute values, e.g. ``("man", "woman")``.
    """

    concepts: dict[str, torch.Tensor]
    attribute_a: torch.Tensor
    attribute_b: torch.Tensor
    paired_a: dict[str, torch.Tensor] = field(default_factory=dict)
    paired_b: dict[str, torch.Tensor] = field(default_factory=dict)
    names: tuple[str, str] = ("a", "b")

    def sizes(self) -> pd.DataFrame:
        """Images per concept and set: one row per concept."""
        rows = {c: {"alone": len(x), f"with {self.names[0]}": len(self.paired_a.get(c, ())),
                    f"with {self.names[1]}": len(self.paired_b.get(c, ()))}
                for c, x in self.concepts.items()}
        return pd.DataFrame(rows).T


def scene_canonical_sets(n: int, *, n_objects: int = 8, size: int = 32, seed: int = 0) -> CanonicalSets:
    """Canonical sets from SynthFaces' scene mode (:func:`fairlib.data.synthfaces.canonical_sets`).

    Concepts are the ``n_objects`` icons (``n // n_objects`` images each, icon alone); the
    attribute is the figure's style (A = value ``a``, B = value ``b``; ``n // 2`` figures each,
    no icon); paired sets show the icon beside a figure of each style. The renderer matches the
    sets index by index (same background, lighting, pose, placement), so they differ only in
    what is drawn.
    """
    from fairlib.data.synthfaces import OBJECT_NAMES, canonical_sets

    raw = canonical_sets(n, n_objects=n_objects, size=size, seed=seed)
    obj_imgs, obj_attr = raw["object_alone"]
    sty_imgs, sty_attr = raw["style_alone"]
    codes = obj_attr["object"].cat.codes.to_numpy()
    names = OBJECT_NAMES[:n_objects]
    concepts = {names[k]: obj_imgs[torch.from_numpy(np.flatnonzero(codes == k))] for k in range(n_objects)}
    paired_a = {names[k]: raw["object_with_A"][0][torch.from_numpy(np.flatnonzero(codes == k))]
                for k in range(n_objects)}
    paired_b = {names[k]: raw["object_with_B"][0][torch.from_numpy(np.flatnonzero(codes == k))]
                for k in range(n_objects)}
    style = sty_attr["style"].astype(str).to_numpy()
    return CanonicalSets(concepts, sty_imgs[torch.from_numpy(np.flatnonzero(style == "A"))],
                         sty_imgs[torch.from_numpy(np.flatnonzero(style == "B"))],
                         paired_a, paired_b, names=("style A", "style B"))


#: Caption words that mark a person as a man / a woman (lower case, whole words).
MAN_WORDS: tuple[str, ...] = ("man", "men", "boy", "boys", "male", "gentleman", "gentlemen", "guy", "guys")
WOMAN_WORDS: tuple[str, ...] = ("woman", "women", "girl", "girls", "female", "lady", "ladies")


def _coco_files(directory: str | Path, split: str, kinds: Sequence[str]) -> tuple[Path, dict[str, Path]]:
    from fairlib.data.paths import DatasetNotFoundError

    root = Path(directory).expanduser()
    files = {k: root / "annotations" / f"{k}_{split}.json" for k in kinds}
    for f in files.values():
        if not f.is_file():
            raise DatasetNotFoundError("coco", root, f"annotations/{f.name}", root.parent)
    if not (root / split).is_dir():
        raise DatasetNotFoundError("coco", root, f"image folder {split}/", root.parent)
    return root, files


def _load_images(paths: Sequence[Path], size: int) -> torch.Tensor:
    """Read images as RGB, scale them to ``size x size`` (no crop) -> uint8 ``(n, 3, size, size)``."""
    from PIL import Image

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        out[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    return out


def _gender_of_captions(captions: Sequence[str]) -> str | None:
    words = set()
    for c in captions:
        words.update(re.findall(r"[a-z]+", c.lower()))
    man, woman = bool(words & set(MAN_WORDS)), bool(words & set(WOMAN_WORDS))
    if man and not woman:
        return "man"
    if woman and not man:
        return "woman"
    return None  # no gendered word, or both: ambiguous, left out


def coco_canonical_sets(
    directory: str | Path,
    *,
    split: str = "val2017",
    categories: Sequence[str] | None = None,
    n_per_set: int = 50,
    min_images: int = 10,
    size: int = 224,
    seed: int = 0,
) -> CanonicalSets:
    """Canonical sets from COCO images, instance annotations and captions (the paper's source).

    Reads ``<directory>/annotations/captions_<split>.json`` and ``instances_<split>.json`` (COCO's
    own format) and images from ``<directory>/<split>/``. An image's gender is ``man`` if its
    captions contain a word of :data:`MAN_WORDS` and none of :data:`WOMAN_WORDS` (and vice
    versa); images with both or neither are left out.

    * attribute ``a`` / ``b``: person images captioned man / woman containing none of the
      chosen categories;
    * concept alone: images of the category without any person annotation;
    * paired: images of the category with a person, captioned man / woman.

    Parameters
    ----------
    categories
        COCO category names to use as concepts; default: every non-person category with at least
        ``min_images`` images in each of its three sets.
    n_per_set
        Largest number of images drawn (seeded, without replacement) per set.
    min_images
        A concept with fewer images alone is dropped (or raises, if it was named explicitly).
    size
        Images are scaled (not cropped) to ``size x size``.

    Raises
    ------
    fairlib.data.DatasetNotFoundError
        The annotation files or the image folder are missing (the message has the fetch command).
    ValueError
        Unknown category names, or fewer than two usable concepts.
    """
    for name, v in (("n_per_set", n_per_set), ("min_images", min_images), ("size", size)):
        positive_int(v, name)
    root, files = _coco_files(directory, split, ("captions", "instances"))
    instances = json.loads(files["instances"].read_text())
    captions = json.loads(files["captions"].read_text())
    cat_name = {c["id"]: c["name"] for c in instances["categories"]}
    person_ids = {i for i, n in cat_name.items() if n == "person"}
    file_of = {im["id"]: im["file_name"] for im in instances["images"]}
    cats_of: dict[int, set[str]] = {i: set() for i in file_of}
    for ann in instances["annotations"]:
        cats_of.setdefault(ann["image_id"], set()).add(cat_name[ann["category_id"]])
    caps: dict[int, list[str]] = {}
    for ann in captions["annotations"]:
        caps.setdefault(ann["image_id"], []).append(ann["caption"])
    gender = {i: _gender_of_captions(caps.get(i, [])) for i in file_of}
    has_person = {i: bool(cats_of[i] & {cat_name[p] for p in person_ids}) for i in file_of}

    all_cats = sorted({n for i, n in cat_name.items() if i not in person_ids})
    if categories is not None:
        unknown = [c for c in categories if c not in all_cats]
        if unknown:
            raise ValueError(f"categories: unknown COCO categories {unknown}; available: {', '.join(all_cats)}")
        chosen = list(categories)
    else:
        chosen = all_cats
    rng = np.random.default_rng(seed)

    def pick(ids: list[int]) -> list[int]:
        ids = sorted(ids)
        if len(ids) > n_per_set:
            ids = sorted(rng.choice(ids, n_per_set, replace=False).tolist())
        return ids

    ids = sorted(file_of)
    concept_ids, pa_ids, pb_ids = {}, {}, {}
    for c in chosen:
        alone = [i for i in ids if c in cats_of[i] and not has_person[i]]
        with_a = [i for i in ids if c in cats_of[i] and has_person[i] and gender[i] == "man"]
        with_b = [i for i in ids if c in cats_of[i] and has_person[i] and gender[i] == "woman"]
        enough = len(alone) >= min_images
        if categories is None and not (enough and len(with_a) >= min_images and len(with_b) >= min_images):
            continue
        if not enough:
            raise ValueError(f"categories: {c!r} has only {len(alone)} images without a person "
                             f"(min_images={min_images}); drop it or lower min_images")
        concept_ids[c], pa_ids[c], pb_ids[c] = pick(alone), pick(with_a), pick(with_b)
    if len(concept_ids) < 2:
        raise ValueError(f"categories: only {len(concept_ids)} concept(s) have at least {min_images} "
                         "images in every set; lower min_images or use a larger split")
    chosen_set = set(concept_ids)
    attr = {g: [i for i in ids if has_person[i] and gender[i] == g and not (cats_of[i] & chosen_set)]
            for g in ("man", "woman")}
    for g, v in attr.items():
        if len(v) < min_images:
            raise ValueError(f"directory: only {len(v)} person images captioned {g!r} without the chosen "
                             f"categories (min_images={min_images})")
        attr[g] = pick(v)

    def load(id_list: list[int]) -> torch.Tensor:
        return _load_images([root / split / file_of[i] for i in id_list], size)

    return CanonicalSets(
        {c: load(v) for c, v in concept_ids.items()}, load(attr["man"]), load(attr["woman"]),
        {c: load(v) for c, v in pa_ids.items()}, {c: load(v) for c, v in pb_ids.items()},
        names=("man", "woman"))


class _CocoMultiLabel(torch.utils.data.Dataset):
    """Lazily loaded COCO images with ``labels`` (N, n_categories) as a tensor attribute."""

    def __init__(self, paths: list[Path], labels: torch.Tensor, size: int):
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return _load_images([self.paths[i]], self.size)[0], self.labels[i]


def coco_multilabel(directory: str | Path, *, split: str = "val2017", n: int | None = None,
                    exclude: Sequence[str] = (), size: int = 224, seed: int = 0) -> torch.utils.data.Dataset:
    """COCO multi-label object classification as a lazily loading Dataset (a fine-tuning target).

    Items are ``(uint8 image (3, size, size), float labels (K,))``, one 0/1 label per category of
    the annotation file (K = 80 for COCO), sorted by category id; ``dataset.labels`` holds all
    rows. ``exclude`` drops images by file name (e.g. those of the canonical sets); ``n`` draws
    a seeded subset. Raises :class:`fairlib.data.DatasetNotFoundError` when files are missing.
    """
    root, files = _coco_files(directory, split, ("instances",))
    inst = json.loads(files["instances"].read_text())
    cat_index = {c["id"]: k for k, c in enumerate(sorted(inst["categories"], key=lambda c: c["id"]))}
    file_of = {im["id"]: im["file_name"] for im in inst["images"]}
    excluded = set(exclude)
    ids = sorted(i for i, f in file_of.items() if f not in excluded)
    if n is not None:
        if n < 1 or n > len(ids):
            raise ValueError(f"n: expected 1..{len(ids)} images, got {n}")
        ids = sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())
    pos = {i: k for k, i in enumerate(ids)}
    labels = torch.zeros((len(ids), len(cat_index)))
    for ann in inst["annotations"]:
        if ann["image_id"] in pos:
            labels[pos[ann["image_id"]], cat_index[ann["category_id"]]] = 1.0
    return _CocoMultiLabel([root / split / file_of[i] for i in ids], labels, size)


# --------------------------------------------------------------------------------------------
# embeddings and association scores


def embed(model: nn.Module, images: torch.Tensor, layer: str, *, batch_size: int = 256,
          transform: Callable[[torch.Tensor], torch.Tensor] | None = None, device: Any = None) -> np.ndarray:
    """Embeddings of ``images`` at one ``layer`` of ``model``, globally average-pooled: ``(N, D)``.

    Uses :func:`fairlib.activations.capture_activations` (``reductions=("mean",)``), so ``layer``
    is any module name of ``model`` (an unknown name lists the available ones). ``transform`` is
    the batch transform applied before the model (default: uint8 -> [0, 1] floats).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images: expected a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    if len(images) == 0:
        raise ValueError("images: the set is empty")
    store = capture_activations(model, images, [layer], reductions=("mean",), batch_size=batch_size,
                                transform=transform, device=device)
    return np.asarray(store.get(layer, "mean"), dtype=np.float64).reshape(len(images), -1)


def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    arr = to_numpy(x, name).astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected an (n, D) array of embeddings, got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name}: is empty; pass at least one embedding")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1)
    if (norms == 0).any():
        raise ValueError(f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros, so its cosine "
                         "similarity is undefined (use a layer before the final ReLU or centre the embeddings)")
    return arr / norms[:, None]


def _inputs(concept_embeddings: Mapping[str, ArrayLike], attribute_a: ArrayLike, attribute_b: ArrayLike,
            ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    if not isinstance(concept_embeddings, Mapping) or not concept_embeddings:
        raise ValueError("concept_embeddings: expected a non-empty mapping concept name -> (n_i, D) embeddings")
    a = _matrix(attribute_a, "attribute_a")
    b = _matrix(attribute_b, "attribute_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"attribute_b: has dimension {b.shape[1]}, attribute_a has {a.shape[1]}")
    concepts = {}
    for c, x in concept_embeddings.items():
        m = _matrix(x, f"concept_embeddings[{c!r}]")
        if m.shape[1] != a.shape[1]:
            raise ValueError(f"concept_embeddings[{c!r}]: has dimension {m.shape[1]}, the attribute sets "
                             f"have {a.shape[1]}; embed every set at the same layer")
        concepts[str(c)] = m
    return concepts, a, b


def association_scores(concept_embeddings: Mapping[str, ArrayLike], attribute_a: ArrayLike,
                       attribute_b: ArrayLike) -> pd.Series:
    r"""Association score of every concept: mean cosine similarity to set ``a`` minus that to ``b``.

    .. math:: s_c = \overline{\cos}(X_c, A) - \overline{\cos}(X_c, B)

    Parameters
    ----------
    concept_embeddings
        Concept name -> ``(n_c, D)`` embeddings (numpy or torch) of the concept's images.
    attribute_a, attribute_b
        ``(n_a, D)`` and ``(n_b, D)`` embeddings of the attribute images.

    Returns
    -------
    pandas.Series
        Index: concept names (in the mapping's order); name ``"association"``.
    """
    concepts, a, b = _inputs(concept_embeddings, attribute_a, attribute_b)
    out = {c: float((x @ a.T).mean() - (x @ b.T).mean()) for c, x in concepts.items()}
    return pd.Series(out, name="association", dtype=np.float64)


def association_effect_sizes(concept_embeddings: Mapping[str, ArrayLike], attribute_a: ArrayLike,
                             attribute_b: ArrayLike, *, n_permutations: int = 2000, seed: int = 0,
                             ) -> pd.DataFrame:
    r"""WEAT-style effect size and permutation p-value of every concept's association.

    For concept :math:`c`, each attribute image :math:`y` has mean similarity
    :math:`m_c(y) = \frac{1}{|X_c|}\sum_{x\in X_c}\cos(x, y)`. Then

    .. math:: d_c = \frac{\bar m_c(A) - \bar m_c(B)}{\operatorname{sd}_{y\in A\cup B}\, m_c(y)}

    (sample sd, ``ddof=1``; the numerator is the association score :math:`s_c`). The p-value is
    two-sided: the a/b labels of the ``n_a + n_b`` attribute images are permuted
    ``n_permutations`` times (the same seeded permutations for every concept, all at once as one
    matrix product) and :math:`p = (1 + \#\{|s^\pi_c| \ge |s_c|\}) / (1 + P)`, which is never 0
    and is exact-level valid under the null of exchangeable labels.

    Returns
    -------
    pandas.DataFrame
        Index: concepts; columns ``score`` (:math:`s_c`), ``effect_size`` (:math:`d_c`; 0 when
        every :math:`m_c(y)` is equal) and ``p_value``.
    """
    n_permutations = positive_int(n_permutations, "n_permutations")
    concepts, a, b = _inputs(concept_embeddings, attribute_a, attribute_b)
    if len(a) + len(b) < 3:
        raise ValueError("attribute_a/attribute_b: need at least 3 attribute images in all for a standard deviation")
    ys = np.concatenate([a, b])
    n_a, n_all = len(a), len(ys)
    # m[c, j]: mean similarity of concept c's images to attribute image j
    m = np.stack([(x @ ys.T).mean(axis=0) for x in concepts.values()])
    rng = np.random.default_rng(seed)
    in_a = np.zeros((n_permutations, n_all), dtype=bool)
    order = np.argsort(rng.random((n_permutations, n_all)), axis=1)  # one random permutation per row
    np.put_along_axis(in_a, order[:, :n_a], True, axis=1)
    weights = np.where(in_a, 1.0 / n_a, -1.0 / (n_all - n_a))  # (P, n): mean over a minus mean over b
    observed = m[:, :n_a].mean(axis=1) - m[:, n_a:].mean(axis=1)
    permuted = m @ weights.T  # (C, P)
    # a tolerance so that permutations equal to the observed labelling count as ties
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))
    exceed = (np.abs(permuted) >= np.abs(observed)[:, None] - tol[:, None]).sum(axis=1)
    sd = m.std(axis=1, ddof=1)
    effect = np.divide(observed, sd, out=np.zeros_like(observed), where=sd > 0)
    return pd.DataFrame({"score": observed, "effect_size": effect,
                         "p_value": (1 + exceed) / (1 + n_permutations)}, index=list(concepts))


def score_model(model: nn.Module, sets: CanonicalSets, layer: str, *, n_permutations: int = 2000,
                seed: int = 0, paired: bool = True, batch_size: int = 256,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None, device: Any = None,
                ) -> pd.DataFrame:
    """Association of every concept of ``sets`` in ``model``'s ``layer``.

    Columns ``score``, ``effect_size``, ``p_value`` from :func:`association_effect_sizes`
    (concept alone vs attribute alone) and, with ``paired`` and paired sets present,
    ``paired_score``: the mean cosine similarity of the concept-alone images to the concept
    paired with ``a`` minus that to the concept paired with ``b`` (which paired version the model
    sees as closer to the bare concept).
    """
    if not isinstance(sets, CanonicalSets):
        raise ValueError("sets: expected a CanonicalSets (see scene_canonical_sets / coco_canonical_sets)")

    def emb(x: torch.Tensor) -> np.ndarray:
        return embed(model, x, layer, batch_size=batch_size, transform=transform, device=device)

    concepts = {c: emb(x) for c, x in sets.concepts.items()}
    out = association_effect_sizes(concepts, emb(sets.attribute_a), emb(sets.attribute_b),
                                   n_permutations=n_permutations, seed=seed)
    if paired and sets.paired_a and sets.paired_b:
        out["paired_score"] = [
            float(association_scores({c: concepts[c]}, emb(sets.paired_a[c]), emb(sets.paired_b[c])).iloc[0])
            for c in concepts]
    return out


# --------------------------------------------------------------------------------------------
# the Bias Transfer Score with a bootstrap interval


def _aligned(before: ArrayLike, after: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(before, pd.Series) and isinstance(after, pd.Series):
        if set(before.index) != set(after.index):
            differ = sorted(set(before.index) ^ set(after.index))[:5]
            raise ValueError(f"after: concepts differ from before's ({differ})")
        after = after.loc[before.index]
    b = to_numpy(before, "before").astype(np.float64).reshape(-1)
    a = to_numpy(after, "after").astype(np.float64).reshape(-1)
    if len(b) != len(a):
        raise ValueError(f"before/after: {len(b)} and {len(a)} scores; pass one score per concept in both")
    return b, a


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of each row pair (average ranks for ties); NaN where a row is constant."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def bias_transfer_interval(before: ArrayLike, after: ArrayLike, *, n_boot: int = 2000, level: float = 0.95,
                           seed: int = 0) -> tuple[float, float, float]:
    r"""Bias Transfer Score and its percentile bootstrap interval over concepts.

    The point estimate is :func:`fairlib.metrics.bias_transfer_score`. Each bootstrap resample
    draws ``C`` concepts with replacement (keeping each concept's before/after pair); a resample
    in which all drawn ``before`` (or ``after``) scores are equal has no ranking, so its ρ is
    undefined and it is **skipped**: the interval is the ``(1-level)/2`` and ``(1+level)/2``
    percentiles of the remaining resamples. Needs at least 3 concepts (with 2, half of all
    resamples are constant); raises if more than half are skipped all the same.

    Parameters
    ----------
    before, after
        ``(C,)`` association scores; two :class:`pandas.Series` are aligned by concept name.

    Returns
    -------
    (rho, low, high)
    """
    n_boot = positive_int(n_boot, "n_boot")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    b, a = _aligned(before, after)
    rho = bias_transfer_score(b, a)  # validates (>= 2 concepts, no NaN, not constant)
    if len(b) < 3:
        raise ValueError(f"before: a bootstrap interval needs at least 3 concepts, got {len(b)}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(b), size=(n_boot, len(b)))
    boot = _spearman_rows(b[idx], a[idx])
    ok = boot[np.isfinite(boot)]
    if len(ok) < n_boot / 2:
        raise ValueError(f"before/after: {n_boot - len(ok)} of {n_boot} resamples had constant scores; "
                         f"{len(b)} concepts are too few for a bootstrap interval")
    low, high = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(rho), float(low), float(high)


def association_changes(before: pd.Series, after: pd.Series, *, threshold: float) -> pd.DataFrame:
    """Which associations fine-tuning kept, introduced, removed or flipped.

    A concept is *associated* when ``|score| >= threshold``. Status: ``introduced`` (not before,
    now), ``vanished`` (before, not now), ``flipped`` (both, opposite signs), ``kept`` (both, same
    sign), ``none`` (neither).

    Returns
    -------
    pandas.DataFrame
        Index: concepts; columns ``before``, ``after``, ``status``.
    """
    if not isinstance(before, pd.Series) or not isinstance(after, pd.Series):
        raise ValueError("before/after: expected pandas Series indexed by concept")
    if not (isinstance(threshold, (int, float, np.floating)) and threshold > 0):
        raise ValueError(f"threshold: expected a positive number, got {threshold!r}")
    b, a = _aligned(before, after)
    on_b, on_a = np.abs(b) >= threshold, np.abs(a) >= threshold
    status = np.select([on_b & on_a & (np.sign(b) != np.sign(a)), on_b & on_a, ~on_b & on_a, on_b & ~on_a],
                       ["flipped", "kept", "introduced", "vanished"], "none")
    return pd.DataFrame({"before": b, "after": a, "status": status}, index=before.index)


# --------------------------------------------------------------------------------------------
# fine-tuning


def replace_head(model: nn.Module, head: str, n_outputs: int) -> nn.Module:
    """A deep copy of ``model`` whose linear layer ``head`` (a module name, e.g. ``"fc"`` for
    torchvision's ResNets, ``"head"`` for :class:`fairlib.probes.SmallCNN`) is a new
    ``nn.Linear`` with ``n_outputs`` outputs."""
    modules = dict(model.named_modules())
    if head not in modules or not isinstance(modules[head], nn.Linear):
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
        raise ValueError(f"head: {head!r} is not a linear layer of this model; linear layers: {linears}")
    n_outputs = positive_int(n_outputs, "n_outputs")
    new = copy.deepcopy(model)
    parent_name, _, child = head.rpartition(".")
    parent = new.get_submodule(parent_name) if parent_name else new
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, int(n_outputs)))
    return new


def _fine_tune_data(data: Any) -> Any:
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"data: {len(x)} images but {len(y)} labels")
        return x, torch.as_tensor(y)
    if not isinstance(data, torch.utils.data.Dataset):
        raise ValueError("data: expected (images, labels) tensors or a Dataset of (image, label) items")
    return data


class _FrozenBackbone(Callback):
    """Linear probing: the backbone stays in eval mode, so its batch-norm statistics never move."""

    def on_epoch_start(self, state: TrainState) -> None:
        state.model.eval()


def fine_tune(model: nn.Module, data: Any, *, head: str, n_outputs: int, mode: str = "full",
              epochs: int = 3, lr: float = 1e-3, batch_size: int = 128, multilabel: bool = False,
              transform: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
              device: Any = None, show_progress: bool = False, num_workers: int = 0, amp: bool = False,
              checkpoint: Any = None) -> tuple[nn.Module, list[float]]:
    """Fine-tune a copy of ``model`` with a new head on a target dataset (Adam).

    Parameters
    ----------
    data
        ``(images, labels)`` tensors or a Dataset of ``(image, label)``; labels are class indices
        (cross-entropy) or, with ``multilabel``, ``(N, n_outputs)`` 0/1 rows (binary cross-entropy).
    head, n_outputs
        See :func:`replace_head`.
    mode
        ``"linear"``: linear probing, only the new head trains and the backbone stays in eval
        mode, so its batch-norm statistics (and hence every backbone embedding) are unchanged;
        ``"full"``: every parameter trains.
    transform
        Batch transform after uint8 images are scaled to [0, 1] (e.g. a normalisation).
    num_workers, amp, checkpoint
        Passed to :func:`fairlib.training.train` (data-loading workers, mixed precision on
        CUDA, a resumable checkpoint file).

    Returns
    -------
    (model, losses)
        The fine-tuned copy (eval mode; the input model is untouched) and the mean loss per epoch.
    """
    if mode not in ("linear", "full"):
        raise ValueError(f"mode: expected 'linear' (frozen backbone) or 'full', got {mode!r}")
    epochs = positive_int(epochs, "epochs")
    device = torch.device(device) if device is not None else get_device()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = replace_head(model, head, n_outputs)
    params = list(net.get_submodule(head).parameters()) if mode == "linear" else list(net.parameters())
    if mode == "linear":
        for p in net.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)

    def loss(out: torch.Tensor, batch: tuple) -> torch.Tensor:
        yb = batch[1]
        if not multilabel:
            return F.cross_entropy(out.float(), yb.long())
        if yb.dim() != 2 or yb.shape[1] != n_outputs:
            raise ValueError(f"data: multilabel targets must be (N, n_outputs={n_outputs}) rows, "
                             f"got shape {tuple(yb.shape)}; set n_outputs to the number of labels")
        return F.binary_cross_entropy_with_logits(out.float(), yb.float())

    try:
        history = train(net, _fine_tune_data(data), epochs=epochs, batch_size=batch_size,
                        optimizer=torch.optim.Adam(params, lr=lr), step=supervised_step(loss),
                        callbacks=[_FrozenBackbone()] if mode == "linear" else [], transform=transform,
                        seed=seed, device=device, num_workers=num_workers, amp=amp, checkpoint=checkpoint,
                        show_progress=show_progress, desc=f"fine-tune ({mode})")
    finally:
        for p in net.parameters():
            p.requires_grad_(True)
    return net.eval(), history["loss"].tolist()


@dataclass
class TransferResult:
    """One fine-tuning run: the model, association tables before and after, and the BTS."""

    model: nn.Module
    before: pd.DataFrame
    after: pd.DataFrame
    losses: list[float]
    rho: float
    low: float
    high: float

    def table(self, column: str = "score") -> pd.DataFrame:
        """``before`` and ``after`` values of one column side by side."""
        return pd.DataFrame({"before": self.before[column], "after": self.after[column]})


def transfer_run(model: nn.Module, sets: CanonicalSets, data: Any, *, layer: str, head: str, n_outputs: int,
                 mode: str = "full", before: pd.DataFrame | None = None, n_permutations: int = 2000,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, device: Any = None,
                 **fit_kwargs: Any) -> TransferResult:
    """Score ``model``'s associations, fine-tune it on ``data``, score again, compute the BTS.

    ``before`` reuses a table from :func:`score_model` (the pretrained model's scores do not
    depend on the target). The BTS and its interval use the ``score`` column.
    ``fit_kwargs`` go to :func:`fine_tune`.
    """
    kw = dict(n_permutations=n_permutations, seed=seed, transform=transform, device=device)
    if before is None:
        before = score_model(model, sets, layer, **kw)
    tuned, losses = fine_tune(model, data, head=head, n_outputs=n_outputs, mode=mode, seed=seed,
                              transform=transform, device=device, **fit_kwargs)
    after = score_model(tuned, sets, layer, **kw)
    rho, low, high = bias_transfer_interval(before["score"], after["score"], n_boot=n_boot, level=level, seed=seed)
    return TransferResult(tuned, before, after, losses, rho, low, high)
