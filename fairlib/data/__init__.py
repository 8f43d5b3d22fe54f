"""Datasets for the course: SynthFaces (rendered, offline) and loaders for real datasets.

Everything goes through :func:`load_dataset`; real datasets are downloaded once with
``python -m data_scripts.fetch NAME --root DIR`` into :func:`data_root`.
"""

from fairlib.data.cache import cache_dir, image_tensor
from fairlib.data.groups import (
    GroupTooSmallError,
    balanced_sample,
    cap_groups,
    intersectional_groups,
)
from fairlib.data.loaders import AttributeDataset
from fairlib.data.paths import (
    COMPLETE_MARKER,
    DatasetNotFoundError,
    configure_weights_cache,
    data_root,
    dataset_dir,
    fetch_command,
    weights_root,
)
from fairlib.data.registry import DATASETS, FETCHABLE, list_datasets, load_dataset
from fairlib.data.synthfaces import (
    SynthFaces,
    canonical_sets,
    render_faces,
    render_multiattribute,
    render_scenes,
)

__all__ = [
    "AttributeDataset",
    "COMPLETE_MARKER",
    "DATASETS",
    "DatasetNotFoundError",
    "FETCHABLE",
    "GroupTooSmallError",
    "SynthFaces",
    "balanced_sample",
    "cache_dir",
    "canonical_sets",
    "cap_groups",
    "configure_weights_cache",
    "data_root",
    "dataset_dir",
    "fetch_command",
    "image_tensor",
    "intersectional_groups",
    "list_datasets",
    "load_dataset",
    "render_faces",
    "render_multiattribute",
    "render_scenes",
    "weights_root",
]
