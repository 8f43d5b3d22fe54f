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
(:func:`coco_canonical_sets`, full profile, read through ``fairlib.data.load_dataset("coco")``);
:func:`coco_multilabel` is the full profile's fine-tuning target, without the canonical images.

Chapter 7's experiment is :func:`run_transfer` (one fine-tuning run: BTS, its interval, the
scores before and after, the counts of threshold crossings) over :func:`transfer_grid`; its
cached first step :func:`transfer_setup` builds the data, pretrains (quick) or loads (full) the
backbone and scores it; :func:`scene_transfer_data` builds the quick profile's scenes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

from fairlib import sweep
from fairlib._memo import Memo
from fairlib._validation import as_labels, binary, integer, number, positive_int, to_numpy
from fairlib.activations import capture_activations
from fairlib.config import get_device
from fairlib.data.coco import MAN_WORDS, WOMAN_WORDS, multilabel_targets
from fairlib.metrics import bias_transfer_score
from fairlib.training import Callback, TrainState, supervised_step, train

__all__ = [
    "CanonicalSets",
    "scene_canonical_sets",
    "coco_canonical_sets",
    "coco_multilabel",
    "MultiLabelTensors",
    "cached_multilabel",
    "content_ids",
    "canonical_overlap",
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
    "planted_association",
    "cooccurrence_tables",
    "SceneTransferData",
    "scene_transfer_data",
    "TransferSetup",
    "transfer_setup",
    "transfer_target",
    "run_transfer",
    "transfer_grid",
    "run_table",
    "target_contrast",
    "planted_contrast",
    "planted_contrast",
    "holm_significant",
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
    ids
        Set name -> the ids of its images, in the order of the tensors: ``"attribute_a"``,
        ``"attribute_b"``, ``"concept:<c>"``, ``"paired_a:<c>"``, ``"paired_b:<c>"``. COCO image
        ids for :func:`coco_canonical_sets` (so that a fine-tuning target can leave them out,
        :meth:`all_ids`); row indices into the rendered sets for :func:`scene_canonical_sets`.
    """

    concepts: dict[str, torch.Tensor]
    attribute_a: torch.Tensor
    attribute_b: torch.Tensor
    paired_a: dict[str, torch.Tensor] = field(default_factory=dict)
    paired_b: dict[str, torch.Tensor] = field(default_factory=dict)
    names: tuple[str, str] = ("a", "b")
    ids: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.concepts, Mapping):
            raise ValueError("concepts: expected a mapping concept name -> (n, 3, H, W) images")
        for name in ("attribute_a", "attribute_b"):
            x = getattr(self, name)
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                raise ValueError(f"{name}: expected a (n, 3, H, W) image tensor, got "
                                 f"{getattr(x, 'shape', type(x).__name__)}")
        if len(tuple(self.names)) != 2:
            raise ValueError(f"names: expected the two attribute values' names, got {self.names!r}")

    def sizes(self) -> pd.DataFrame:
        """Images per concept and set: one row per concept."""
        rows = {c: {"alone": len(x), f"with {self.names[0]}": len(self.paired_a.get(c, ())),
                    f"with {self.names[1]}": len(self.paired_b.get(c, ()))}
                for c, x in self.concepts.items()}
        return pd.DataFrame(rows).T

    def all_ids(self) -> list[int]:
        """Every image id of every set, sorted, each once (e.g. ``exclude=`` of :func:`coco_multilabel`)."""
        return sorted({int(i) for v in self.ids.values() for i in v})


def _set_ids(concepts: Mapping[str, Sequence[int]], a: Sequence[int], b: Sequence[int],
             paired_a: Mapping[str, Sequence[int]], paired_b: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    out = {"attribute_a": [int(i) for i in a], "attribute_b": [int(i) for i in b]}
    for prefix, sets in (("concept", concepts), ("paired_a", paired_a), ("paired_b", paired_b)):
        out.update({f"{prefix}:{c}": [int(i) for i in v] for c, v in sets.items()})
    return out


def scene_canonical_sets(n: int, *, n_objects: int = 8, size: int = 32, seed: int = 0) -> CanonicalSets:
    """Canonical sets from SynthFaces' scene mode (:func:`fairlib.data.synthfaces.canonical_sets`).

    Concepts are the ``n_objects`` icons (``n // n_objects`` images each, icon alone); the
    attribute is the figure's style (A = value ``a``, B = value ``b``; ``n // 2`` figures each,
    no icon); paired sets show the icon beside a figure of each style. The renderer matches the
    sets index by index (same background, lighting, pose, placement), so they differ only in
    what is drawn. ``ids`` holds each set's row indices into the rendered sets.
    """
    from fairlib.data.synthfaces import OBJECT_NAMES, canonical_sets

    if isinstance(n_objects, (int, np.integer)) and not isinstance(n_objects, bool):
        integer(n, "n", minimum=max(2, int(n_objects)), meaning="(at least one image per icon)")
    raw = canonical_sets(n, n_objects=n_objects, size=size, seed=seed)
    obj_imgs, obj_attr = raw["object_alone"]
    sty_imgs, sty_attr = raw["style_alone"]
    codes = obj_attr["object"].cat.codes.to_numpy()
    names = OBJECT_NAMES[:n_objects]
    rows = {names[k]: np.flatnonzero(codes == k) for k in range(n_objects)}
    concepts = {c: obj_imgs[torch.from_numpy(r)] for c, r in rows.items()}
    paired_a = {c: raw["object_with_A"][0][torch.from_numpy(r)] for c, r in rows.items()}
    paired_b = {c: raw["object_with_B"][0][torch.from_numpy(r)] for c, r in rows.items()}
    style = sty_attr["style"].astype(str).to_numpy()
    rows_a, rows_b = np.flatnonzero(style == "A"), np.flatnonzero(style == "B")
    return CanonicalSets(concepts, sty_imgs[torch.from_numpy(rows_a)], sty_imgs[torch.from_numpy(rows_b)],
                         paired_a, paired_b, names=("style A", "style B"),
                         ids=_set_ids(rows, rows_a, rows_b, rows, rows))


def coco_canonical_sets(
    root: Any = None,
    *,
    split: str = "val2017",
    categories: Sequence[str] | None = None,
    n_per_set: int = 50,
    min_images: int = 10,
    size: int = 224,
    seed: int = 0,
) -> CanonicalSets:
    """Canonical sets from COCO images, instance annotations and captions (the paper's source).

    Reads COCO through ``fairlib.data.load_dataset("coco", split, root=root, size=size)``
    (:func:`fairlib.data.coco.load_coco`: ``<root>/coco/annotations/{instances,captions}_<split>.json``
    and the images in ``<root>/coco/<split>/``). An image's gender is ``man`` if its captions
    contain a word of :data:`MAN_WORDS` and none of :data:`WOMAN_WORDS` (and vice versa); images
    with both or neither are left out.

    * attribute ``a`` / ``b``: person images captioned man / woman containing none of the
      chosen categories;
    * concept alone: images of the category without any person annotation;
    * paired: images of the category with a person, captioned man / woman.

    Parameters
    ----------
    root
        The data root (COCO lies in ``<root>/coco``); ``None``: :func:`fairlib.data.data_root`.
    categories
        COCO category names to use as concepts; default: every non-person category with at least
        ``min_images`` images in each of its three sets.
    n_per_set
        Largest number of images drawn (seeded, without replacement) per set.
    min_images
        A concept with fewer images alone is dropped (or raises, if it was named explicitly).
    size
        Images are scaled (not cropped) to ``size x size``.

    Returns
    -------
    CanonicalSets
        With ``ids``: the COCO image ids of every set (:meth:`CanonicalSets.all_ids`).

    Raises
    ------
    fairlib.data.DatasetNotFoundError
        The annotation files or the image folder are missing.
    ValueError
        Unknown category names, or fewer than two usable concepts.
    """
    from fairlib.data import load_dataset

    for name, v in (("n_per_set", n_per_set), ("min_images", min_images), ("size", size)):
        positive_int(v, name)
    ds = load_dataset("coco", split, root=root, size=size)
    has = {c: ds.attributes[c].cat.codes.to_numpy() == 1 for c in ds.attributes.columns}
    has_person = has.get("person", np.zeros(len(ds), dtype=bool))
    gender = ds.metadata["gender"].to_numpy()
    image_ids = ds.metadata["image_id"].to_numpy()  # rows are sorted by image id

    all_cats = sorted(c for c in has if c != "person")
    if categories is not None:
        unknown = [c for c in categories if c not in all_cats]
        if unknown:
            raise ValueError(f"categories: unknown COCO categories {unknown}; available: {', '.join(all_cats)}")
        chosen = list(categories)
    else:
        chosen = all_cats
    rng = np.random.default_rng(seed)

    def pick(rows: np.ndarray) -> np.ndarray:
        if len(rows) > n_per_set:
            rows = np.sort(rng.choice(rows, n_per_set, replace=False))
        return rows

    man, woman = has_person & (gender == "man"), has_person & (gender == "woman")
    concept_rows, pa_rows, pb_rows = {}, {}, {}
    for c in chosen:
        alone, with_a, with_b = (np.flatnonzero(has[c] & m) for m in (~has_person, man, woman))
        enough = len(alone) >= min_images
        if categories is None and not (enough and len(with_a) >= min_images and len(with_b) >= min_images):
            continue
        if not enough:
            raise ValueError(f"categories: {c!r} has only {len(alone)} images without a person "
                             f"(min_images={min_images}); drop it or lower min_images")
        concept_rows[c], pa_rows[c], pb_rows[c] = pick(alone), pick(with_a), pick(with_b)
    if len(concept_rows) < 2:
        raise ValueError(f"categories: only {len(concept_rows)} concept(s) have at least {min_images} "
                         "images in every set; lower min_images or use a larger split")
    any_chosen = np.any([has[c] for c in concept_rows], axis=0)
    attr = {}
    for g, mask in (("man", man), ("woman", woman)):
        rows = np.flatnonzero(mask & ~any_chosen)
        if len(rows) < min_images:
            raise ValueError(f"root: only {len(rows)} person images captioned {g!r} without the chosen "
                             f"categories (min_images={min_images})")
        attr[g] = pick(rows)

    def load(rows: np.ndarray) -> torch.Tensor:
        return torch.stack([ds.raw_image(int(r)) for r in rows])

    def ids(rows: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
        return {c: image_ids[r].tolist() for c, r in rows.items()}

    return CanonicalSets(
        {c: load(v) for c, v in concept_rows.items()}, load(attr["man"]), load(attr["woman"]),
        {c: load(v) for c, v in pa_rows.items()}, {c: load(v) for c, v in pb_rows.items()},
        names=("man", "woman"),
        ids=_set_ids(ids(concept_rows), image_ids[attr["man"]], image_ids[attr["woman"]], ids(pa_rows),
                     ids(pb_rows)))


def coco_multilabel(root: Any = None, *, split: str = "val2017", n: int | None = None,
                    exclude: Sequence[int] | CanonicalSets = (), size: int = 224,
                    seed: int = 0) -> torch.utils.data.Dataset:
    """COCO multi-label object classification as a lazily loading Dataset (a fine-tuning target).

    Reads ``fairlib.data.load_dataset("coco", split, root=root, size=size, captions=False)`` and
    turns it into items ``(uint8 image (3, size, size), float labels (K,))``, one 0/1 label per
    category of the annotation file (K = 80 for COCO), sorted by category id
    (:func:`fairlib.data.coco.multilabel_targets`); ``dataset.labels`` holds all rows and
    ``dataset.image_ids`` their image ids.

    Parameters
    ----------
    root
        The data root (COCO lies in ``<root>/coco``); ``None``: :func:`fairlib.data.data_root`.
    n
        Draw a seeded subset of this many images (after the exclusion); ``None``: all.
    exclude
        COCO image ids to leave out, or a :class:`CanonicalSets` (all its ids): fine-tuning on the
        images that the associations are scored on would leak them into the model.

    Raises
    ------
    fairlib.data.DatasetNotFoundError
        The annotation file or the image folder is missing.
    """
    from fairlib.data import load_dataset

    if isinstance(exclude, CanonicalSets):
        exclude = exclude.all_ids()
    ds = load_dataset("coco", split, root=root, size=size, captions=False)
    return multilabel_targets(ds, n=n, exclude=exclude, seed=seed)

class MultiLabelTensors(tuple):
    """A multi-label target held as tensors: ``(images, labels)`` with the COCO ids kept.

    A ``tuple`` (so :func:`fine_tune` reads it batch by batch, without a ``__getitem__`` per
    image) with attributes ``images`` (``uint8 (N, 3, H, W)``, e.g. a memory-mapped cache),
    ``labels`` (``float (N, K)``), ``image_ids`` and ``categories``. Built by
    :func:`cached_multilabel`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    image_ids: list[int]
    categories: list[str]

    def __new__(cls, images: torch.Tensor, labels: torch.Tensor, image_ids: Sequence[int],
                categories: Sequence[str]) -> MultiLabelTensors:
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"images: expected a (N, 3, H, W) tensor, got {getattr(images, 'shape', type(images))}")
        if len(images) != len(labels) or len(images) != len(image_ids):
            raise ValueError(f"images, labels, image_ids: lengths {len(images)}, {len(labels)} and "
                             f"{len(image_ids)} differ; pass one row per image")
        out = super().__new__(cls, (images, labels))
        out.images, out.labels = images, labels
        out.image_ids, out.categories = [int(i) for i in image_ids], list(categories)
        return out


def cached_multilabel(target: torch.utils.data.Dataset, *, num_workers: int = 0, directory: Any = None,
                      ) -> MultiLabelTensors:
    """A lazily loading COCO target (:func:`coco_multilabel`) as ``uint8`` tensors from the image cache.

    Every image is decoded once (``num_workers`` loader processes) into the memory-mapped
    ``uint8`` cache of :func:`fairlib.data.image_tensor`, named by the parent split's cache key and
    a digest of the target's rows, and reused by every later epoch, seed and run; the lazy target
    decodes and resizes every JPEG in every epoch instead. The tensors equal the lazy items.

    Parameters
    ----------
    target
        From :func:`coco_multilabel` (it has ``raw_image``, ``cache_key``, ``labels``,
        ``image_ids`` and ``categories``).
    num_workers
        Processes that decode the images in the single caching pass.
    directory
        Cache directory (default :func:`fairlib.data.cache_dir`, ``$FAIRLIB_CACHE``).

    Returns
    -------
    MultiLabelTensors
    """
    from fairlib.data import image_tensor

    missing = [a for a in ("raw_image", "cache_key", "labels", "image_ids", "categories") if not hasattr(target, a)]
    if missing:
        raise ValueError(f"target: lacks {missing}; pass a target from fairlib.transfer.coco_multilabel")
    images = image_tensor(target, num_workers=num_workers, directory=directory)
    return MultiLabelTensors(images, target.labels, target.image_ids, target.categories)


def content_ids(images: torch.Tensor) -> np.ndarray:
    """A 63-bit content hash of every image (BLAKE2b of its bytes): equal images get equal ids.

    Identifies images that have no catalogue id (the rendered scenes of the quick profile), so that
    :func:`canonical_overlap` can look for them in other sets.

    Parameters
    ----------
    images
        ``(N, C, H, W)`` tensor (any dtype; the comparison is exact, byte for byte).

    Returns
    -------
    numpy.ndarray
        ``int64 (N,)``, non-negative.
    """
    import hashlib

    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images: expected a (N, C, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    flat = images.detach().cpu().contiguous().numpy().reshape(len(images), -1)
    return np.array([int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") >> 1
                     for row in flat], dtype=np.int64)


def _canonical_images(sets: CanonicalSets) -> torch.Tensor:
    parts = [sets.attribute_a, sets.attribute_b, *sets.concepts.values(), *sets.paired_a.values(),
             *sets.paired_b.values()]
    return torch.cat([p for p in parts if len(p)])


def canonical_overlap(sets: CanonicalSets, *data: Any) -> int:
    """How many canonical images also appear in the given pretraining or fine-tuning data (0: no leakage).

    Two ways to recognise an image, chosen per dataset:

    * a dataset with ``image_ids`` (a COCO target of :func:`coco_multilabel` or
      :func:`cached_multilabel`) is compared **by COCO id** with :meth:`CanonicalSets.all_ids`;
    * ``(images, labels)`` tensors (the scenes of the quick profile) are compared **by content**:
      :func:`content_ids` of every canonical image against those of the data's images.

    Parameters
    ----------
    sets
        The canonical sets.
    *data
        Datasets to check.

    Returns
    -------
    int
        Distinct canonical images (by id or by content) found in at least one dataset.
    """
    if not isinstance(sets, CanonicalSets):
        raise ValueError(f"sets: expected CanonicalSets, got {type(sets).__name__}")
    by_id: set[int] = set()
    by_content: set[int] = set()
    canonical_hashes: set[int] | None = None
    for k, d in enumerate(data):
        if hasattr(d, "image_ids"):
            by_id |= set(sets.all_ids()) & {int(i) for i in d.image_ids}
        elif isinstance(d, (tuple, list)) and d and isinstance(d[0], torch.Tensor) and d[0].dim() == 4:
            if canonical_hashes is None:
                canonical_hashes = set(content_ids(_canonical_images(sets)).tolist())
            by_content |= canonical_hashes & set(content_ids(d[0]).tolist())
        else:
            raise ValueError(f"data[{k}]: expected a dataset with image_ids (COCO) or (images, labels) tensors, "
                             f"got {type(d).__name__}")
    return len(by_id) + len(by_content)

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
    seed = integer(seed, "seed", minimum=0)
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
    seed = integer(seed, "seed", minimum=0)
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
    number(threshold, "threshold", low=0, low_open=True, expected="a positive number")
    b, a = _aligned(before, after)
    for name, arr in (("before", b), ("after", a)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: the score of {before.index[int(np.flatnonzero(~np.isfinite(arr))[0])]!r} is not "
                             "finite; a NaN association has no status (check the concept's images)")
    on_b, on_a = np.abs(b) >= threshold, np.abs(a) >= threshold
    status = np.select([on_b & on_a & (np.sign(b) != np.sign(a)), on_b & on_a, ~on_b & on_a, on_b & ~on_a],
                       ["flipped", "kept", "introduced", "vanished"], "none")
    return pd.DataFrame({"before": b, "after": a, "status": status}, index=before.index)


# --------------------------------------------------------------------------------------------
# fine-tuning


def _is_head(module: nn.Module) -> bool:
    """A linear layer, or a 1x1 convolution (timm's BiT heads: ``head.fc`` is a ``Conv2d(C, K, 1)``)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1)
                                             and module.groups == 1)


def replace_head(model: nn.Module, head: str, n_outputs: int) -> nn.Module:
    """A deep copy of ``model`` whose head ``head`` (a module name, e.g. ``"fc"`` for torchvision's
    ResNets and :class:`fairlib.models.Backbone`, ``"head"`` for :class:`fairlib.probes.SmallCNN`)
    is a new layer of the same kind with ``n_outputs`` outputs: ``nn.Linear``, or a 1x1
    ``nn.Conv2d`` (timm's ``head.fc``)."""
    modules = dict(model.named_modules())
    if head not in modules or not _is_head(modules[head]):
        heads = [n for n, m in modules.items() if _is_head(m)]
        raise ValueError(f"head: {head!r} is not a linear layer (or 1x1 convolution) of this model; "
                         f"linear layers: {heads}")
    n_outputs = positive_int(n_outputs, "n_outputs")
    new = copy.deepcopy(model)
    parent_name, _, child = head.rpartition(".")
    parent = new.get_submodule(parent_name) if parent_name else new
    old = getattr(parent, child)
    layer = (nn.Linear(old.in_features, int(n_outputs)) if isinstance(old, nn.Linear)
             else nn.Conv2d(old.in_channels, int(n_outputs), 1))
    setattr(parent, child, layer)
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


def _check_targets(data: Any, n_outputs: int, multilabel: bool) -> None:
    """Labels of ``(images, labels)`` data: class codes in ``0..n_outputs-1`` or 0/1 rows."""
    if not (isinstance(data, tuple) and isinstance(data[1], torch.Tensor)):
        return
    y = data[1].detach().cpu().numpy()
    if multilabel:
        if y.ndim == 2 and y.shape[1] == n_outputs:
            binary(y, "data")
        return
    codes = as_labels(y, "data")
    if codes.dtype.kind not in "iu" or codes.min() < 0 or codes.max() >= n_outputs:
        raise ValueError(f"data: labels must be class codes in 0..{n_outputs - 1} (n_outputs={n_outputs}), "
                         f"got {codes.min()!r}..{codes.max()!r}")


class _FrozenBackbone(Callback):
    """Linear probing: the backbone stays in eval mode, so its batch-norm statistics never move."""

    def on_epoch_start(self, state: TrainState) -> None:
        state.model.eval()


def fine_tune(model: nn.Module, data: Any, *, head: str, n_outputs: int, mode: str = "full",
              epochs: int = 3, lr: float = 1e-3, batch_size: int = 128, multilabel: bool = False,
              transform: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
              device: Any = None, show_progress: bool = False, num_workers: int = 0, amp: bool | None = None,
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
        Passed to :func:`fairlib.training.train` (data-loading workers, mixed precision: by default on
        for CUDA, off on a CPU; a resumable checkpoint file).

    Returns
    -------
    (model, losses)
        The fine-tuned copy (eval mode; the input model is untouched) and the mean loss per epoch.
    """
    if mode not in ("linear", "full"):
        raise ValueError(f"mode: expected 'linear' (frozen backbone) or 'full', got {mode!r}")
    epochs = positive_int(epochs, "epochs")
    number(lr, "lr", low=0, low_open=True, expected="a positive finite learning rate")
    n_outputs = positive_int(n_outputs, "n_outputs")
    data = _fine_tune_data(data)
    _check_targets(data, n_outputs, multilabel)
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
        history = train(net, data, epochs=epochs, batch_size=batch_size,
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
        if column not in self.before.columns or column not in self.after.columns:
            raise ValueError(f"column: unknown column {column!r}; available: {list(self.before.columns)}")
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


# --------------------------------------------------------------------------------------------
# the quick profile's data: SynthFaces scenes with planted icon/style co-occurrence


def planted_association(p_b: ArrayLike) -> np.ndarray:
    """The association a co-occurrence table plants in the data: ``P(A | icon) - P(B | icon)``.

    ``p_b[k]`` is the probability that icon ``k`` appears beside a figure of style B (the
    figure is style A otherwise); positive values: the icon goes with style A.
    """
    p_b = np.asarray(to_numpy(p_b, "p_b"), dtype=np.float64)
    if p_b.ndim == 1 and p_b.size == 0:
        raise ValueError("p_b: is empty; pass one probability per icon")
    if p_b.ndim != 1 or not ((p_b >= 0) & (p_b <= 1)).all():
        raise ValueError(f"p_b: expected a 1-D array of probabilities in [0, 1], got {p_b!r}")
    return (1 - p_b) - p_b


def cooccurrence_tables(n_objects: int, *, seed: int = 0, max_abs_rho: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two co-occurrence tables with the same rates and unrelated rankings (pretraining, target).

    The rates ``P(style B | icon)`` are ``n_objects`` evenly spaced values from 0.1 to 0.9. The
    pretraining table assigns them to the icons in a random order; the target table draws further
    random orders until one has ``|Spearman ρ| < max_abs_rho`` with the pretraining one, so the
    target data plants an association ranking unrelated to the pretraining data's.

    Returns
    -------
    (pretraining, target)
        Two ``(n_objects,)`` arrays of ``P(style B | icon)``.
    """
    n_objects = positive_int(n_objects, "n_objects")
    if n_objects < 4:
        raise ValueError(f"n_objects: need at least 4 icons for two unrelated rankings, got {n_objects}")
    if not 0 < max_abs_rho <= 1:
        raise ValueError(f"max_abs_rho: expected a value in (0, 1], got {max_abs_rho!r}")
    rng = np.random.default_rng(seed)
    levels = np.linspace(0.1, 0.9, n_objects)
    pretraining = levels[rng.permutation(n_objects)]
    while True:
        target = levels[rng.permutation(n_objects)]
        if abs(stats.spearmanr(pretraining, target)[0]) < max_abs_rho:
            return pretraining, target


def scene_task(n: int, p_b: ArrayLike, *, n_objects: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` SynthFaces scenes whose icon co-occurs with style B at the rates ``p_b``, labelled by icon.

    Returns
    -------
    (images, labels)
        ``uint8 (n, 3, size, size)`` and ``long (n,)`` icon indices (the classification task of
        pretraining and fine-tuning in the quick profile).
    """
    from fairlib.data import render_scenes

    p_b = np.asarray(p_b, dtype=np.float64)
    images, attrs = render_scenes(n, n_objects=n_objects, cooccurrence=np.c_[1 - p_b, p_b], size=size, seed=seed)
    return images, torch.as_tensor(attrs["object"].cat.codes.to_numpy().copy(), dtype=torch.long)


@dataclass
class SceneTransferData:
    """The quick profile's data (:func:`scene_transfer_data`).

    Attributes
    ----------
    sets
        Canonical sets (icons alone, figures of style A / B alone, icon beside each style).
    pretrain
        ``(images, labels)`` of the pretraining scenes.
    pretrain_pb, target_pb
        ``P(style B | icon)`` of the pretraining and of the target data (:func:`cooccurrence_tables`).
    planted
        Index: concepts; columns ``pretraining`` and ``target``: :func:`planted_association` of each table.
    """

    sets: CanonicalSets
    pretrain: tuple[torch.Tensor, torch.Tensor]
    pretrain_pb: np.ndarray
    target_pb: np.ndarray
    planted: pd.DataFrame


def scene_transfer_data(*, n_objects: int = 8, size: int = 32, canonical_n: int = 400, pretrain_n: int = 4000,
                        seed: int = 0) -> SceneTransferData:
    """Canonical sets, pretraining scenes and both co-occurrence tables of the quick profile.

    Seeds: the tables from ``seed`` (:func:`cooccurrence_tables`), the canonical sets from
    ``seed + 100``, the pretraining scenes from ``seed``. The targets are rendered with
    :func:`scene_task` from ``target_pb`` (see :func:`transfer_target`).
    """
    positive_int(canonical_n, "canonical_n")
    positive_int(pretrain_n, "pretrain_n")
    pretrain_pb, target_pb = cooccurrence_tables(n_objects, seed=seed)
    sets = scene_canonical_sets(canonical_n, n_objects=n_objects, size=size, seed=seed + 100)
    pretrain = scene_task(pretrain_n, pretrain_pb, n_objects=n_objects, size=size, seed=seed)
    planted = pd.DataFrame({"pretraining": planted_association(pretrain_pb), "target": planted_association(target_pb)},
                           index=list(sets.concepts))
    return SceneTransferData(sets, pretrain, pretrain_pb, target_pb, planted)


def rotation_pretext(images: torch.Tensor, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A self-supervised task from unlabelled images: each image rotated by :math:`k \cdot 90°`, target :math:`k`.

    RotNet's pretext task (Gidaris et al., ICLR 2018), with one rotation drawn per image (seeded),
    so that a pretraining epoch has as many images and steps as the supervised one.

    Parameters
    ----------
    images
        ``(N, C, H, H)``, square.

    Returns
    -------
    (rotated, k)
        ``(N, C, H, H)`` images and ``(N,)`` int64 rotations in {0, 1, 2, 3} (counter-clockwise).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images: expected a tensor (N, C, H, H) of square images, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    k = torch.from_numpy(np.random.default_rng(integer(seed, "seed", minimum=0)).integers(0, 4, len(images)))
    out = images.clone()
    for r in (1, 2, 3):
        idx = k == r
        out[idx] = torch.rot90(images[idx], r, dims=(-2, -1))
    return out, k


#: The quick profile's two kinds of pretraining of the same small CNN on the same scenes, for the
#: same epochs, rate and batch size (so the same number of optimiser steps): finding (1)'s contrast
#: of supervised and self-supervised pretraining, in miniature.
SCENE_BACKBONES = {
    "small_cnn_supervised": "supervised (names the icon)",
    "small_cnn_rotation": "self-supervised (predicts the rotation)",
}
#: Finding (1)'s pair per source: (supervised, self-supervised). Full: BiT's ImageNet-21k ResNet-50
#: against MoCo v2 (the paper's claim is about supervised pretraining on large datasets such as ImageNet-21k).
CONTRAST = {"scenes": ("small_cnn_supervised", "small_cnn_rotation"), "coco": ("bit50_in21k", "moco_v2_rn50")}


def pretraining_kind(backbone: str) -> str:
    """How ``backbone`` (a name of :data:`SCENE_BACKBONES` or :data:`fairlib.models.BACKBONES`) was pretrained."""
    from fairlib.models import BACKBONES

    if backbone in SCENE_BACKBONES:
        return SCENE_BACKBONES[backbone]
    if backbone in BACKBONES:
        return BACKBONES[backbone].pretraining
    raise ValueError(f"backbone: unknown {backbone!r}; choose from {[*SCENE_BACKBONES, *BACKBONES]}")


def holm_significant(p_values: ArrayLike, alpha: float = 0.05) -> np.ndarray:
    r"""Which of ``m`` hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``.

    Sort the p-values, :math:`p_{(1)} \le \dots \le p_{(m)}`; reject :math:`H_{(1)}, \dots, H_{(k)}`
    for the largest :math:`k` with :math:`p_{(j)} \le \alpha / (m - j + 1)` for every :math:`j \le k`
    (Holm, 1979). The chance of rejecting any true null stays at most ``alpha`` whatever the
    dependence between the tests (the concepts of one model share their attribute images, so
    their p-values are dependent). Uncorrected, ``m`` true nulls at ``alpha = 0.05`` give
    :math:`0.05\,m` false rejections on average.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` booleans in the order of ``p_values``.
    """
    p = np.asarray(to_numpy(p_values, "p_values"), dtype=np.float64).reshape(-1)
    if np.isnan(p).any() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"p_values: expected p-values in [0, 1] without NaN, got {p!r}")
    alpha = number(alpha, "alpha", low=0, high=1, low_open=True, high_open=True, expected="a level in (0, 1)")
    m = len(p)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha / (m - np.arange(m))
    k = m if passed.all() else int(np.argmin(passed))  # the first failure stops the procedure
    out = np.zeros(m, dtype=bool)
    out[order[:k]] = True
    return out


def pretraining_contrast(results: pd.DataFrame, *, supervised: str, self_supervised: str,
                         alpha: float = 0.05, level: float = 0.95) -> dict[str, Any]:
    r"""Finding (1): does the supervised backbone keep more of its ranking than the self-supervised one?

    Pairs the full fine-tuning runs of the two backbones by ``(target, seed)`` and takes the mean
    of the differences of their BTS, :math:`d_i = \mathrm{BTS}^{sup}_i - \mathrm{BTS}^{ssl}_i`, with
    a t interval (:func:`fairlib.amplification.mean_ci`). A backbone that held no association
    before fine-tuning has nothing to keep, so the contrast is then not testable. "Held" counts the
    concepts whose permutation p-value before fine-tuning is significant after Holm's correction
    for the number of concepts (:func:`holm_significant` at family-wise level ``alpha``):
    uncorrected, a backbone without any association would pass this gate by chance with a few
    dozen concepts.

    Parameters
    ----------
    results
        Rows of :func:`run_transfer` with columns ``backbone``, ``mode``, ``target``, ``seed``,
        ``bts`` and ``p_before``.
    alpha
        Family-wise level of the Holm-corrected test of the associations before fine-tuning.

    Returns
    -------
    dict
        ``held`` ({backbone: concepts significant before, Holm-corrected}), ``n_pairs``,
        ``testable`` (bool), ``reason`` (why not, else ""), ``mean``, ``low``, ``high`` (NaN when
        not testable).
    """
    from fairlib.amplification import mean_ci

    missing = {"backbone", "mode", "target", "seed", "bts", "p_before"} - set(results.columns)
    if missing:
        raise ValueError(f"results: missing columns {sorted(missing)}; pass the frame of sweep.run(run_transfer, ...)")
    full = results[results["mode"] == "full"]
    absent = [b for b in (supervised, self_supervised) if b not in set(full["backbone"])]
    if absent:
        raise ValueError(f"backbone: no full fine-tuning runs of {absent}; the results have "
                         f"{sorted(set(full['backbone']))}")
    # the scores before fine-tuning are the same in every run of a backbone
    held = {b: int(holm_significant(full[full["backbone"] == b]["p_before"].iloc[0], alpha).sum())
            for b in (supervised, self_supervised)}
    key = ["target", "seed"]
    diff = (full[full["backbone"] == supervised].set_index(key)["bts"].astype(float)
            - full[full["backbone"] == self_supervised].set_index(key)["bts"].astype(float)).dropna()
    out: dict[str, Any] = {"held": held, "n_pairs": int(len(diff)), "testable": False, "reason": "",
                           "mean": float("nan"), "low": float("nan"), "high": float("nan")}
    if min(held.values()) == 0:
        out["reason"] = "a backbone held no significant association before fine-tuning (Holm-corrected)"
    elif len(diff) < 2:
        out["reason"] = "fewer than two paired runs"
    else:
        out["mean"], out["low"], out["high"] = (float(v) for v in mean_ci(diff.to_numpy(), confidence=level))
        out["testable"] = True
    return out


# --------------------------------------------------------------------------------------------
# experiments

#: Configuration keys of each step, per source (what the cached setup and target depend on).
_SETUP_KEYS = {
    "scenes": ("source", "data_seed", "backbone", "n_objects", "size", "canonical_n", "pretrain_n", "pretrain_epochs",
               "pretrain_lr", "batch_size", "head", "layer", "n_permutations"),
    "coco": ("source", "data_seed", "backbone", "size", "canonical_n", "min_images", "canonical_split",
             "layer", "n_permutations"),
}
_TARGET_KEYS = {"scenes": ("target_n", "target_seed"), "coco": ("target_split", "target_n", "target_seed")}
_MEMOS = {"setup": Memo(1), "target": Memo(2)}  # one pretraining serves every run of a sweep


def _cached(kind: str, config: Mapping[str, Any], keys: Sequence[str], build: Callable[[], Any]) -> Any:
    """``build()`` once per distinct value of ``config``'s ``keys`` (the latest few are kept)."""
    missing = [k for k in keys if k not in config]
    if missing:
        raise ValueError(f"config: missing {missing} (see transfer_grid for complete configurations)")
    identity = {k: config[k] for k in keys}
    if config.get("source") == "coco":  # files are read from the data root in effect now
        from fairlib.data import data_root

        identity["data_root"] = str(data_root().resolve())
    return _MEMOS[kind].get(identity, build)


def _source(config: Mapping[str, Any]) -> str:
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a mapping (a configuration of transfer_grid), got {type(config).__name__}")
    source = config.get("source")
    if source not in _SETUP_KEYS:
        raise ValueError(f"source: expected 'scenes' (quick) or 'coco' (full), got {source!r}")
    return source


@dataclass
class TransferSetup:
    """The target-independent part of a transfer experiment (:func:`transfer_setup`).

    Attributes
    ----------
    sets
        Canonical sets.
    model
        The pretrained backbone (never modified: fine-tuning trains copies).
    before
        :func:`score_model` of ``model`` (columns ``score``, ``effect_size``, ``p_value``,
        ``paired_score``), scored with seed ``data_seed``.
    transform
        Batch transform of the model's inputs (``None`` for the small CNN).
    pretrain_losses
        Mean pretraining loss per epoch (quick profile; empty for pretrained weights).
    data
        The quick profile's :class:`SceneTransferData`; ``None`` for COCO.
    """

    sets: CanonicalSets
    model: nn.Module
    before: pd.DataFrame
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    pretrain_losses: list[float] = field(default_factory=list)
    data: SceneTransferData | None = None

    @property
    def planted(self) -> pd.DataFrame | None:
        """The data's planted associations (quick profile), ``None`` where unknown (COCO)."""
        return self.data.planted if self.data is not None else None


def transfer_setup(config: Mapping[str, Any]) -> TransferSetup:
    """Canonical sets, pretrained backbone and its association scores for one configuration (cached).

    ``config`` is a configuration of :func:`transfer_grid` (keys that only the fine-tuning run
    uses are ignored); the result is cached in this process for the setup's keys, so the runs
    of a sweep share one pretraining.

    * ``source="scenes"`` (quick): :func:`scene_transfer_data`, then a
      :class:`fairlib.models.SmallCNN` (``build_model("small_cnn", seed=data_seed)``) trained on
      the pretraining scenes (``pretrain_epochs``, ``pretrain_lr``, ``batch_size``, Adam, via
      :func:`fine_tune` of its ``head``): to name the icon (``backbone="small_cnn_supervised"``)
      or to predict their rotation (``"small_cnn_rotation"``, :func:`rotation_pretext`).
    * ``source="coco"`` (full): :func:`coco_canonical_sets` of ``canonical_split``
      (``canonical_n`` images per set at most, ``min_images``, ``size``) and the pretrained
      ``backbone`` from its own library (:func:`fairlib.models.build_backbone`: torchvision, timm,
      open_clip or MoCo's checkpoint; its ``preprocess`` is the transform; features at
      ``layer="body"``, head ``"fc"``).
    """
    from fairlib.models import build_backbone, build_model

    source = _source(config)

    def build() -> TransferSetup:
        c, seed = config, int(config["data_seed"])
        if source == "scenes":
            if c["backbone"] not in SCENE_BACKBONES:
                raise ValueError(f"backbone: the scenes source pretrains one of {list(SCENE_BACKBONES)}, "
                                 f"got {c['backbone']!r}")
            data = scene_transfer_data(n_objects=c["n_objects"], size=c["size"], canonical_n=c["canonical_n"],
                                       pretrain_n=c["pretrain_n"], seed=seed)
            # the same images, epochs, rate and batch size for both kinds: only the labels differ
            task, n_out = ((data.pretrain, c["n_objects"]) if c["backbone"] == "small_cnn_supervised"
                           else (rotation_pretext(data.pretrain[0], seed=seed), 4))
            model, losses = fine_tune(build_model("small_cnn", n_outputs=n_out, seed=seed), task,
                                      head=c["head"], n_outputs=n_out, epochs=c["pretrain_epochs"],
                                      lr=c["pretrain_lr"], batch_size=c["batch_size"], seed=seed)
            sets, transform = data.sets, None
        else:
            data, losses = None, []
            sets = coco_canonical_sets(split=c["canonical_split"], n_per_set=c["canonical_n"],
                                       min_images=c["min_images"], size=c["size"], seed=seed)
            model = build_backbone(c["backbone"], n_outputs=80, seed=seed)
            transform = model.preprocess
        before = score_model(model, sets, c["layer"], n_permutations=c["n_permutations"], seed=seed,
                             transform=transform)
        return TransferSetup(sets, model, before, transform, list(losses), data)

    return _cached("setup", config, _SETUP_KEYS[source], build)


def transfer_target(config: Mapping[str, Any]) -> Any:
    """The fine-tuning target of one configuration (cached): data for :func:`fine_tune`.

    * ``"scenes"``: ``(images, labels)`` of ``target_n`` scenes rendered with seed
      ``target_seed`` from the target co-occurrence table (:func:`scene_task`);
    * ``"coco"``: :func:`coco_multilabel` of ``target_split``, ``target_n`` images drawn with
      ``target_seed``, **without** the canonical sets' images (no leakage), held as ``uint8``
      tensors from the image cache (:func:`cached_multilabel`, decoded once with ``num_workers``).
    """
    source = _source(config)

    def build() -> Any:
        setup = transfer_setup(config)
        if source == "scenes":
            return scene_task(config["target_n"], setup.data.target_pb, n_objects=config["n_objects"],
                              size=config["size"], seed=config["target_seed"])
        lazy = coco_multilabel(split=config["target_split"], n=config["target_n"], size=config["size"],
                               seed=config["target_seed"], exclude=setup.sets)
        # decoded once into the uint8 cache, not once per epoch, seed and run
        return cached_multilabel(lazy, num_workers=int(config.get("num_workers", 0)))

    return _cached("target", config, _SETUP_KEYS[source] + _TARGET_KEYS[source], build)


def run_transfer(target: str, mode: str, seed: int, *, source: str = "scenes", data_seed: int = 0,
                 n_objects: int = 8, size: int = 32, canonical_n: int = 400, pretrain_n: int = 4000,
                 pretrain_epochs: int = 5, pretrain_lr: float = 3e-3, backbone: str = "small_cnn_supervised",
                 min_images: int = 15, canonical_split: str = "val2017",
                 target_split: str = "val2017", target_n: int = 400, target_seed: int = 1, epochs: int = 5,
                 lr: float = 1e-3, batch_size: int = 64, layer: str = "pool", head: str = "head",
                 n_permutations: int = 1000, n_boot: int = 2000, threshold: float = 0.5,
                 num_workers: int = 0) -> dict[str, Any]:
    """One fine-tuning run of Chapter 7: the BTS and what changed (a :mod:`fairlib.sweep` run function).

    The pretrained backbone, the canonical sets and the scores before fine-tuning come from
    :func:`transfer_setup` (cached: one pretraining per sweep), the target from
    :func:`transfer_target`; :func:`transfer_run` fine-tunes a copy (Adam, ``epochs``, ``lr``,
    ``batch_size``; ``mode`` ``"linear"`` or ``"full"``) and scores it again.

    Parameters
    ----------
    target
        The target's name in the results (``"small"``, ``"large"``); its data are ``target_n``
        images (``target_split`` of COCO, or scenes rendered with ``target_seed``).
    mode
        ``"linear"`` (linear probe) or ``"full"`` fine-tuning.
    seed
        Fine-tuning seed (head initialisation, batch order), also of the permutation test after
        fine-tuning and of the bootstrap.
    source, data_seed, ...
        The setup (:func:`transfer_setup`); ``threshold``: the absolute effect size at which a
        concept counts as associated (:func:`association_changes`).

    Returns
    -------
    dict
        ``bts``, ``bts_low``, ``bts_high`` (95% bootstrap interval over concepts), ``concepts``
        and, in that order, ``score_before``/``score_after``, ``effect_before``/``effect_after``,
        ``p_before``/``p_after``; counts ``introduced``, ``vanished``, ``flipped``, ``kept``;
        ``rho_pretraining_data`` and ``rho_target_data`` (Spearman ρ of the scores after fine-tuning
        with each dataset's planted association; NaN for COCO, where it is unknown),
        ``n_target``, ``n_overlap`` (canonical images found in the data checked, :func:`canonical_overlap`;
        0 means no leakage), ``overlap_checked`` (which data: ``"pretraining and target"`` for
        scenes, ``"target"`` for COCO, whose backbone's pretraining data cannot be checked) and
        ``losses`` (mean loss per epoch).
    """
    config = dict(locals())
    setup = transfer_setup(config)
    data = transfer_target(config)
    n_outputs = n_objects if source == "scenes" else int(data.labels.shape[1])
    res = transfer_run(setup.model, setup.sets, data, layer=layer, head=head, n_outputs=n_outputs, mode=mode,
                       before=setup.before, n_permutations=n_permutations, n_boot=n_boot, seed=seed,
                       transform=setup.transform, epochs=epochs, lr=lr, batch_size=batch_size,
                       multilabel=source == "coco", num_workers=num_workers)
    status = association_changes(res.before["effect_size"], res.after["effect_size"], threshold=threshold)["status"]
    planted = setup.planted
    rho_data = {f"rho_{name}_data": (float(stats.spearmanr(res.after["score"], planted.loc[res.after.index, name])[0])
                                     if planted is not None else float("nan")) for name in ("pretraining", "target")}
    counts = status.value_counts()
    # leakage: canonical images in the pretraining scenes (by content) or in the target (COCO id / content);
    # a real backbone's own pretraining data (ImageNet) is not available to check
    checked = (setup.data.pretrain, data) if setup.data is not None else (data,)
    n_overlap = canonical_overlap(setup.sets, *checked)
    return {
        "bts": res.rho, "bts_low": res.low, "bts_high": res.high,
        "concepts": list(res.before.index),
        "score_before": res.before["score"].tolist(), "score_after": res.after["score"].tolist(),
        "effect_before": res.before["effect_size"].tolist(), "effect_after": res.after["effect_size"].tolist(),
        "p_before": res.before["p_value"].tolist(), "p_after": res.after["p_value"].tolist(),
        **{k: int(counts.get(k, 0)) for k in ("introduced", "vanished", "flipped", "kept")},
        **rho_data,
        "n_target": len(data[0]) if isinstance(data, tuple) else len(data),
        "n_overlap": int(n_overlap),
        "overlap_checked": "pretraining and target" if setup.data is not None else "target",
        "losses": [float(v) for v in res.losses],
    }


#: :func:`transfer_grid`'s settings; ``target_seed`` is an offset from the chapter's seed.
_GRID_SETTINGS: dict[str, dict[str, Any]] = {
    # the small CNN pretrained two ways on the same scenes (SCENE_BACKBONES), the first the chapter's main one
    "quick": {"backbones": list(SCENE_BACKBONES),
              "common": {"source": "scenes", "n_objects": 8, "size": 32, "canonical_n": 400, "pretrain_n": 4000,
                         "pretrain_epochs": 5, "pretrain_lr": 3e-3, "epochs": 5, "lr": 1e-3, "batch_size": 64,
                         "layer": "pool", "head": "head", "n_permutations": 1000, "n_boot": 2000, "threshold": 0.5},
              "targets": {"small": {"target_n": 400, "target_seed": 1}, "large": {"target_n": 4000, "target_seed": 2}}},
    # the paper's kinds of pretraining (fairlib.models.BACKBONES), the first one the chapter's main backbone
    "full": {"backbones": ["resnet50_in1k", "bit50_in21k", "moco_v2_rn50", "clip_rn50"],
             "common": {"source": "coco", "size": 224,
                        "canonical_n": 50, "min_images": 15, "canonical_split": "val2017", "epochs": 3, "lr": 1e-4,
                        "batch_size": 64, "layer": "body", "head": "fc", "n_permutations": 2000, "n_boot": 2000,
                        "threshold": 0.5, "num_workers": 2},
             "targets": {"small": {"target_split": "val2017", "target_n": 1000, "target_seed": 0},
                         "large": {"target_split": "train2017", "target_n": 20000, "target_seed": 0}}},
    # FAIRLIB_SCALE=rehearsal: the full code on the miniature COCO mirror
    "rehearsal": {"backbones": ["resnet50_in1k", "bit50_in21k", "moco_v2_rn50", "clip_rn50"],
                  "common": {"source": "coco", "size": 224,
                             "canonical_n": 6, "min_images": 2, "canonical_split": "val2017", "epochs": 1,
                             "lr": 1e-4, "batch_size": 8, "layer": "body", "head": "fc", "n_permutations": 200,
                             "n_boot": 200, "threshold": 0.5, "num_workers": 2},
                  "targets": {"small": {"target_split": "val2017", "target_n": 24, "target_seed": 0},
                              "large": {"target_split": "train2017", "target_n": 48, "target_seed": 0}}},
}


def transfer_grid(profile: str, seed: int = 0) -> list[dict[str, Any]]:
    """Configurations of :func:`run_transfer` for one profile (``seed``: the chapter's ``SEED``).

    A linear probe on the small target (fine-tuning seed ``seed``), then full fine-tuning on the
    small and the large target for three fine-tuning seeds ``seed, seed + 1, seed + 2``.

    * ``quick``: SynthFaces scenes (8 icons, 32x32, 400 canonical images per set), a small CNN
      pretrained from scratch for 5 epochs on 4,000 scenes, once supervised (naming the icon) and
      once self-supervised (predicting the rotation; :data:`SCENE_BACKBONES`); targets of 400 and
      4,000 scenes; 5 epochs at lr 1e-3, batch 64; layer ``pool``.
    * ``full``: every backbone of ``backbones`` (:data:`fairlib.models.BACKBONES`: supervised
      ImageNet-1k and ImageNet-21k ResNet-50s, MoCo v2, CLIP's RN50), canonical sets from COCO
      val2017 (at most 50 images per set, concepts with at least 15 in each), targets of 1,000
      val2017 and 20,000 train2017 images (without the canonical images); 3 epochs at lr 1e-4,
      batch 64, 2 loader workers (Colab has two cores); features at ``layer="body"``, head ``"fc"``.
    """
    from fairlib.config import select

    seed = integer(seed, "seed", minimum=0)
    s = select(_GRID_SETTINGS, profile)
    targets = {name: {**t, "target_seed": seed + t["target_seed"]} for name, t in s["targets"].items()}
    configs = []
    # one block per backbone (full: the paper's kinds of pretraining; quick: the small CNN pretrained
    # two ways), backbone outermost so that a sweep finishes one backbone's runs before it loads the next
    for backbone in s["backbones"]:
        common = {**s["common"], "data_seed": seed, "backbone": backbone}
        configs.append({"target": "small", "mode": "linear", "seed": seed, **common, **targets["small"]})
        configs += [{"target": name, "mode": "full", "seed": seed + r, **common, **t}
                    for r in range(3) for name, t in targets.items()]
    return configs


def run_table(row: Mapping[str, Any]) -> pd.DataFrame:
    """One run's per-concept results (a row of the frame ``sweep.run(run_transfer, ...)`` returns).

    Returns
    -------
    pandas.DataFrame
        Index: concepts; columns ``score_before``, ``score_after``, ``effect_before``,
        ``effect_after``, ``p_before``, ``p_after`` and ``status``
        (:func:`association_changes` of the effect sizes at the run's ``threshold``).
    """
    cols = ("score_before", "score_after", "effect_before", "effect_after", "p_before", "p_after")
    if not isinstance(row, Mapping) and not isinstance(row, pd.Series):
        raise ValueError(f"row: expected a row of sweep.run(run_transfer, ...), got {type(row).__name__}")
    missing = [c for c in ("concepts", "threshold", *cols) if c not in row]
    if missing:
        raise ValueError(f"row: missing {missing}; pass a row of the frame sweep.run(run_transfer, ...) returns")
    for c in cols:
        if len(row[c]) != len(row["concepts"]):
            raise ValueError(f"row: {c} has {len(row[c])} values for {len(row['concepts'])} concepts")
    table = pd.DataFrame({c: list(row[c]) for c in cols}, index=pd.Index(list(row["concepts"]), name="concept"))
    table["status"] = association_changes(table["effect_before"], table["effect_after"],
                                          threshold=float(row["threshold"]))["status"]
    return table


def _direction(low: float, high: float) -> str:
    return "supports" if low > 0 else "contradicts" if high < 0 else "inconclusive"


def _check_frame(results: Any, columns: Sequence[str]) -> None:
    """``results`` is a frame of :func:`run_transfer` rows with the pairing columns and ``columns``."""
    if not isinstance(results, pd.DataFrame):
        raise ValueError(f"results: expected the frame of sweep.run(run_transfer, ...), got {type(results).__name__}")
    need = ("target", "mode", "seed", "concepts", *columns)
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise ValueError(f"results: missing columns {missing}; pass the frame of sweep.run(run_transfer, ...)")


def _paired_runs(results: pd.DataFrame, *, small: str, large: str, mode: str,
                 level: float) -> tuple[list, dict[tuple[str, Any], pd.Series], list]:
    """The runs of ``mode`` on both targets, paired by fine-tuning seed, for the bootstraps over concepts.

    ``results`` has passed :func:`_check_frame`. Returns ``(seeds, rows, concepts)``: the seeds run
    on both targets, ``{(target, seed): row}`` and the concepts every run scores (the same list in
    each, else an error).
    """
    if not 0 < level < 1:
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    runs = results[results["mode"] == mode]
    seeds = sorted(set(runs.loc[runs["target"] == small, "seed"]) & set(runs.loc[runs["target"] == large, "seed"]))
    if not seeds:
        raise ValueError(f"results: no seed was run in mode {mode!r} on both the {small!r} and the {large!r} target")
    rows = {(t, s): runs[(runs["target"] == t) & (runs["seed"] == s)].iloc[0] for t in (small, large) for s in seeds}
    concepts = list(next(iter(rows.values()))["concepts"])
    if any(list(r["concepts"]) != concepts for r in rows.values()):
        raise ValueError("results: the runs score different concepts; compare runs of one setup (one data_seed)")
    return seeds, rows, concepts


def target_contrast(results: pd.DataFrame, *, small: str = "small", large: str = "large", mode: str = "full",
                    n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    r"""The paper's finding (2) on one sweep, by two measures: the BTS and the count of introduced associations.

    Finding (2) says that fine-tuning on a larger dataset introduces more new biased associations.
    Two measures can carry it, and they need not agree:

    * **BTS**: :math:`\Delta_{\mathrm{BTS}} = \overline{\mathrm{BTS}}_{small} - \overline{\mathrm{BTS}}_{large}`
      (means over fine-tuning seeds); positive: the large target reshuffled the ranking more.
    * **introduced**: :math:`\Delta_{intro} = \bar n_{large} - \bar n_{small}`, the mean number of
      concepts whose absolute effect size crossed the run's ``threshold`` upwards; positive: the
      large target introduced more.

    Each gets a percentile bootstrap interval over **concepts** (the runs share the canonical
    sets; one resample of concepts is applied to every run, so the interval is joint over seeds
    and targets; resamples in which some run's scores are constant are skipped), and a direction:
    ``"supports"`` (the interval lies above 0), ``"contradicts"`` (below 0) or ``"inconclusive"``.
    The mean BTS of each target gets the same interval (``transfer``: ``"supports"`` when it lies
    above 0, i.e. the ranking survived fine-tuning: the paper's finding (3), "biases can transfer").

    Parameters
    ----------
    results
        The frame of ``sweep.run(run_transfer, ...)``: columns ``target``, ``mode``, ``seed``,
        ``concepts``, ``score_before``, ``score_after``, ``effect_before``, ``effect_after``,
        ``threshold``.
    small, large
        The two targets' names; only seeds run on both are used.
    mode
        The fine-tuning mode compared (``"full"``).

    Returns
    -------
    dict
        ``n_seeds``; ``bts_small``/``bts_large`` (means over seeds) with ``_low``/``_high`` and
        ``transfer_small``/``transfer_large``; ``bts_diff``, ``bts_diff_low``, ``bts_diff_high``,
        ``bts_direction``, ``bts_seeds`` (seeds whose large-target BTS is lower); ``intro_small``,
        ``intro_large``, ``intro_diff``, ``intro_diff_low``, ``intro_diff_high``, ``intro_direction``,
        ``intro_seeds`` (seeds whose large target introduced more); ``agree`` (the two directions
        are equal).

    Raises
    ------
    ValueError
        Missing columns, no seed run on both targets, or concept lists that differ between runs.
    """
    _check_frame(results, ("score_before", "score_after", "effect_before", "effect_after", "threshold"))
    n_boot = positive_int(n_boot, "n_boot")
    seeds, rows, concepts = _paired_runs(results, small=small, large=large, mode=mode, level=level)
    c = len(concepts)
    if c < 3:
        raise ValueError(f"results: a bootstrap over concepts needs at least 3 concepts, got {c}")

    def arrays(t: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        before = np.array([rows[t, s]["score_before"] for s in seeds], dtype=np.float64)
        after = np.array([rows[t, s]["score_after"] for s in seeds], dtype=np.float64)
        intro = np.array([(association_changes(pd.Series(list(rows[t, s]["effect_before"]), index=concepts),
                                               pd.Series(list(rows[t, s]["effect_after"]), index=concepts),
                                               threshold=float(rows[t, s]["threshold"]))["status"]
                           == "introduced").to_numpy() for s in seeds])
        return before, after, intro

    data = {t: arrays(t) for t in (small, large)}
    idx = np.random.default_rng(integer(seed, "seed", minimum=0)).integers(0, c, size=(n_boot, c))
    point, boot = {}, {}
    for t, (before, after, intro) in data.items():
        point[t] = (np.array([float(stats.spearmanr(b, a)[0]) for b, a in zip(before, after)]), intro.sum(axis=1))
        rho = np.stack([_spearman_rows(b[idx], a[idx]) for b, a in zip(before, after)])  # (seeds, n_boot)
        boot[t] = (rho.mean(axis=0), intro[:, idx].sum(axis=2).mean(axis=0))
    ok = np.isfinite(boot[small][0]) & np.isfinite(boot[large][0])
    if ok.sum() < n_boot / 2:
        raise ValueError(f"results: {n_boot - int(ok.sum())} of {n_boot} resamples had constant scores; "
                         f"{c} concepts are too few for a bootstrap interval")
    q = [50 * (1 - level), 50 * (1 + level)]
    out: dict[str, Any] = {"n_seeds": len(seeds)}
    for t in (small, large):
        low, high = np.percentile(boot[t][0][ok], q)
        out.update({f"bts_{t}": float(point[t][0].mean()), f"bts_{t}_low": float(low), f"bts_{t}_high": float(high),
                    f"transfer_{t}": _direction(low, high)})
    low, high = np.percentile((boot[small][0] - boot[large][0])[ok], q)
    out.update(bts_diff=float(point[small][0].mean() - point[large][0].mean()), bts_diff_low=float(low),
               bts_diff_high=float(high), bts_direction=_direction(low, high),
               bts_seeds=int((point[large][0] < point[small][0]).sum()))
    low, high = np.percentile((boot[large][1] - boot[small][1])[ok], q)
    out.update(intro_small=float(point[small][1].mean()), intro_large=float(point[large][1].mean()),
               intro_diff=float(point[large][1].mean() - point[small][1].mean()), intro_diff_low=float(low),
               intro_diff_high=float(high), intro_direction=_direction(low, high),
               intro_seeds=int((point[large][1] > point[small][1]).sum()))
    out["agree"] = out["bts_direction"] == out["intro_direction"]
    return out


def planted_contrast(results: pd.DataFrame, planted: pd.DataFrame, *, small: str = "small", large: str = "large",
                     mode: str = "full", n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    r"""Which dataset's planted association the fine-tuned ranking follows, per target, with intervals.

    Where the associations the data planted are known (the quick profile's scenes,
    :attr:`SceneTransferData.planted`), each fine-tuning run gets its **pull** towards the target
    data, :math:`\rho(s', \pi_{tgt}) - \rho(s', \pi_{pre})`: Spearman's ρ of the fine-tuned
    scores :math:`s'` with the target data's planted association minus that with the pretraining
    data's (positive: the ranking follows the target data more closely). Per target, the mean over
    fine-tuning seeds; between targets, :math:`\Delta = \overline{pull}_{large} - \overline{pull}_{small}`
    (positive: the larger target pulled the ranking further towards its own associations, a third
    measure of the paper's finding (2) beside :func:`target_contrast`'s two).

    The intervals are percentile bootstraps over concepts as in :func:`target_contrast`: one
    resample of concepts is applied to every run and to both planted tables, so they are joint over
    seeds and targets; resamples in which some ranking is constant are skipped.

    Parameters
    ----------
    results
        The frame of ``sweep.run(run_transfer, ...)`` for one backbone: columns ``target``,
        ``mode``, ``seed``, ``concepts``, ``score_after``.
    planted
        Index: concepts; columns ``pretraining`` and ``target``.

    Returns
    -------
    dict
        ``n_seeds``; per target ``t``: ``pull_<t>`` (mean over seeds), ``pull_<t>_low``,
        ``pull_<t>_high``, ``follows_<t>`` (``"target"`` when the interval lies above 0,
        ``"pretraining"`` below 0, ``"inconclusive"`` otherwise); ``pull_diff``, ``pull_diff_low``,
        ``pull_diff_high``, ``pull_direction`` (``"supports"``: above 0, ``"contradicts"``,
        ``"inconclusive"``) and ``pull_seeds`` (seeds whose large-target pull is the larger).

    Raises
    ------
    ValueError
        Missing columns, concepts that ``planted`` lacks, no seed run on both targets, or too few
        concepts for a bootstrap.
    """
    _check_frame(results, ("score_after",))
    if not isinstance(planted, pd.DataFrame) or not {"pretraining", "target"} <= set(planted.columns):
        raise ValueError("planted: expected a frame with columns 'pretraining' and 'target' indexed by concept "
                         "(SceneTransferData.planted)")
    n_boot = positive_int(n_boot, "n_boot")
    seeds, rows, concepts = _paired_runs(results, small=small, large=large, mode=mode, level=level)
    absent = [c for c in concepts if c not in planted.index]
    if absent:
        raise ValueError(f"planted: no planted association for {absent[:5]}")
    c = len(concepts)
    if c < 3:
        raise ValueError(f"results: a bootstrap over concepts needs at least 3 concepts, got {c}")
    tables = {k: planted.loc[concepts, k].to_numpy(dtype=np.float64) for k in ("pretraining", "target")}
    idx = np.vstack([np.arange(c), np.random.default_rng(integer(seed, "seed", minimum=0)).integers(0, c, (n_boot, c))])
    pull = {}  # target -> (seeds, 1 + n_boot): row 0 the point estimate, then the resamples
    for t in (small, large):
        after = np.array([rows[t, s]["score_after"] for s in seeds], dtype=np.float64)
        rho = {k: np.stack([_spearman_rows(a[idx], np.broadcast_to(v[idx], idx.shape)) for a in after])
               for k, v in tables.items()}
        pull[t] = rho["target"] - rho["pretraining"]
    mean = {t: pull[t].mean(axis=0) for t in (small, large)}
    ok = np.isfinite(mean[small][1:]) & np.isfinite(mean[large][1:])
    if ok.sum() < n_boot / 2:
        raise ValueError(f"results: {n_boot - int(ok.sum())} of {n_boot} resamples had constant rankings; "
                         f"{c} concepts are too few for a bootstrap interval")
    q = [50 * (1 - level), 50 * (1 + level)]
    out: dict[str, Any] = {"n_seeds": len(seeds)}
    for t in (small, large):
        low, high = np.percentile(mean[t][1:][ok], q)
        out.update({f"pull_{t}": float(mean[t][0]), f"pull_{t}_low": float(low), f"pull_{t}_high": float(high),
                    f"follows_{t}": "target" if low > 0 else "pretraining" if high < 0 else "inconclusive"})
    diff = mean[large] - mean[small]
    low, high = np.percentile(diff[1:][ok], q)
    out.update(pull_diff=float(diff[0]), pull_diff_low=float(low), pull_diff_high=float(high),
               pull_direction=_direction(low, high), pull_seeds=int((pull[large][:, 0] > pull[small][:, 0]).sum()))
    return out


# --------------------------------------------------------------------------- compute plans (fairlib.plan)
#: Upper bound on COCO's concepts: every category but ``person``. The canonical sets keep those with
#: ``min_images`` images in each of their three sets, fewer in val2017; the plan assumes all.
_COCO_CONCEPTS = 79
#: Images of each COCO split, and the typical source image (at most 640 pixels on its long side).
_COCO_IMAGES = {"val2017": 5_000, "train2017": 118_287}
_COCO_SOURCE_PIXELS = 640 * 480
#: Approximate sizes of the COCO 2017 annotation files load_coco parses (bytes), and the resident
#: memory of json.loads per byte of file: 4.8 for the parsed objects plus 1 for the text
#: (measured on a synthetic file with COCO's structure: polygons of floats, image records).
_COCO_JSON_BYTES = {("instances", "val2017"): 20e6, ("captions", "val2017"): 3.9e6,
                    ("instances", "train2017"): 448e6, ("captions", "train2017"): 92e6}
_JSON_RAM_PER_BYTE = 5.8


def _transfer_cost(config: Mapping[str, Any]) -> list:
    """The work of one :func:`run_transfer` configuration.

    Memoised in the run function (counted once per chapter): the setup (canonical sets; quick: the
    small CNN pretrained on ``pretrain_n`` scenes, Adam; full: COCO's annotations parsed and the
    canonical images decoded and held in RAM, ResNet-50's weights) with the scores before
    fine-tuning (every canonical image embedded at batch 256, under autocast, up to ``layer``), and
    each fine-tuning target (COCO: its annotation file parsed, its images decoded once by
    ``num_workers`` loader processes into the ``uint8`` cache, which every epoch then reads).
    Per configuration: ``epochs`` epochs of fine-tuning (Adam;
    ``linear`` trains the head only) and the scores after it. The permutation test and the bootstrap
    are NumPy on concept-by-image similarity matrices (at most 79 x 100 x 2,000 multiply-adds):
    negligible. On the GPU the pretrained backbone stays beside its fine-tuned copy.
    """
    import json

    from fairlib.models import SmallCNN, build_backbone
    from fairlib.plan import Stage, amp_default, builder, measure, stop_at
    from fairlib.training import batch_plan

    source = _source(config)
    # mixed precision as the code runs it on a GPU: fine_tune's default (passed on to train) and
    # capture_activations' (the embeddings)
    amp_tune = bool(config.get("amp", amp_default(fine_tune)))
    amp_embed = amp_default(capture_activations)
    size, bs, epochs = int(config["size"]), int(config["batch_size"]), int(config["epochs"])
    shape = (3, size, size)
    pixels = 3 * size * size
    setup = "07:setup:" + json.dumps({k: config.get(k) for k in _SETUP_KEYS[source]}, sort_keys=True)
    target = setup + ":target:" + json.dumps({k: config.get(k) for k in _TARGET_KEYS[source]}, sort_keys=True)
    n_target = int(config["target_n"])
    stages = []
    if source == "scenes":
        n_canonical = 4 * int(config["canonical_n"])
        model = builder(SmallCNN, int(config["n_objects"]))
        canonical = pixels * n_canonical
        pretrain_n = int(config["pretrain_n"])
        held = canonical + pixels * (pretrain_n + n_target)
        stages.append(Stage("pretrain the small CNN", model, shape, batch_size=bs, optimizer_state=2,
                            train_samples=int(config["pretrain_epochs"]) * sum(batch_plan(pretrain_n, bs)),
                            amp=amp_tune, host_bytes=held, shared=setup))
        io: dict[str, Any] = {}
        weights: tuple[str, ...] = ()
        data: tuple[str, ...] = ()
        trainable = "head" if config["mode"] == "linear" else None
    else:
        n_canonical = _COCO_CONCEPTS * 3 * int(config["canonical_n"]) + 2 * int(config["canonical_n"])
        model = builder(build_backbone, str(config["backbone"]), n_outputs=80, random_weights=True)
        canonical = pixels * n_canonical
        split = str(config["target_split"])
        parse = _JSON_RAM_PER_BYTE * (_COCO_JSON_BYTES[("instances", config["canonical_split"])]
                                      + _COCO_JSON_BYTES[("captions", config["canonical_split"])])
        weights = (f"backbone.{config['backbone']}",)
        data = (f"coco/{config['canonical_split']}",)
        stages.append(Stage("parse annotations, decode canonical sets", images=n_canonical, pipeline="decode",
                            source_pixels=_COCO_SOURCE_PIXELS, host_bytes=canonical + parse, data=data,
                            weights=weights, shared=setup))
        # the target's labels (N x 80 int64) and metadata stay memoised; its annotation file is
        # parsed while the canonical images are held
        labels = 2 * 8 * 80 * _COCO_IMAGES[split]
        held = canonical + labels
        stages.append(Stage("parse the target's annotations",
                            host_bytes=held + _JSON_RAM_PER_BYTE * _COCO_JSON_BYTES[("instances", split)],
                            data=(f"coco/{split}",), shared=target))
        workers = int(config.get("num_workers", 0))
        # the target is decoded once into the uint8 cache (cached_multilabel), shared by every run on it
        stages.append(Stage("decode the target into the uint8 cache", images=n_target, pipeline="decode",
                            source_pixels=_COCO_SOURCE_PIXELS, workers=workers, host_bytes=held,
                            data=(f"coco/{split}",), shared=target))
        io = {"pipeline": "cache", "source_pixels": size * size, "workers": workers, "data": (f"coco/{split}",)}
        trainable = str(config["head"]) if config["mode"] == "linear" else None
    embed = builder(stop_at, model, str(config["layer"]))
    backbone = measure(model, shape, 1).param_bytes
    stages.append(Stage("score the pretrained model", embed, shape, eval_samples=n_canonical, eval_batch_size=256,
                        amp=amp_embed, host_bytes=held, weights=weights, data=data, shared=setup))
    stages.append(Stage("fine-tune", model, shape, train_samples=epochs * sum(batch_plan(n_target, bs)), batch_size=bs,
                        optimizer_state=2, trainable=trainable, amp=amp_tune, host_bytes=held,
                        gpu_bytes=backbone, **io))
    stages.append(Stage("score the fine-tuned model", embed, shape, eval_samples=n_canonical, eval_batch_size=256,
                        amp=amp_embed, host_bytes=held, gpu_bytes=backbone))
    return stages


sweep.register("07_bias_transfer", "transfer", run_transfer, transfer_grid,
               "BTS of a linear probe and of full fine-tuning on a small and a large target, over fine-tuning seeds",
               cost=_transfer_cost)
