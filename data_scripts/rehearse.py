"""Write a miniature copy of every data source in its exact published format: the rehearsal mirror.

Usage::

    python -m data_scripts.rehearse --root MIRROR_DIR
    python -m data_scripts.fetch all --root DATA_DIR --source MIRROR_DIR

The first command writes, for every source of ``data_scripts.sources``, a few files of generated
images in the format the source publishes (the evidence is on the book's Datasets page, "Where the
real data comes from"); the second fetches every dataset from them through the real fetch code,
so that chapters can run their ``full`` code path (``FAIRLIB_SCALE=rehearsal``) on a machine
without network. Layout of ``MIRROR_DIR``::

    huggingface/HuggingFaceM4/FairFace/0.25/{train-0000[01]-of-00002,validation-00000-of-00001}-<hash>.parquet
    huggingface/HuggingFaceM4/FairFace/1.25/...                (the other crop; fetch ignores it)
    huggingface/flwrlabs/celeba/img_align+identity+attr/{train-000NN-of-00019,valid-0000N-of-00003,
                                                         test-0000N-of-00003}.parquet
    huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz            (UTKFace/<age>_<g>_<r>_<datetime>.jpg.chip.jpg)
    torchvision/cifar-10-python.tar.gz, torchvision/cifar-100-python.tar.gz
    torchvision/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz   (Fashion-MNIST)
    cocodataset/annotations/annotations_trainval2017.zip, cocodataset/zips/{val2017,train2017}.zip
    rehearsal.json                                             (what was planted; not part of any source)

What is the same as the real sources: file and member names, archive types, parquet schemas (the
image struct ``{bytes, path}``, ClassLabel integers with their names in the ``huggingface`` schema
metadata, CelebA's bool attributes and ``celeb_id``), pickle keys, idx headers, COCO's JSON
structure with its 80 category ids and names, and the image sizes (FairFace 224x224, CelebA
178x218, UTKFace 200x200, COCO about 640x480, CIFAR 32x32, Fashion-MNIST 28x28). What is not:
the images are noise on a group-dependent colour, JPEG-encoded, and there are a few per group:

* FairFace: 3 per race x age x gender group in train, 1 in validation (378 + 126).
* UTKFace: 4 per race x gender x age bin (``fairlib.data.loaders.UTKFACE_AGE_EDGES``; 360), plus
  three malformed names like those of the real archive (fetch skips them).
* CelebA: 200 train, 50 valid, 50 test rows; every attribute takes both values in every split.
* CIFAR-10: 5 batches of 20 and a test batch of 100 (10 per class each); CIFAR-100: 400 train and
  400 test (4 per fine class); Fashion-MNIST: 100 train, 100 test (10 per class).
* COCO val2017 and train2017, 150 images each (:data:`COCO_PLAN`): for each of dog, umbrella, laptop,
  pizza 8 images alone, 8 with a man and 8 with a woman (captions say so); for bicycle and cake 4 of
  each; 12 person images captioned man and 12 woman without any of those; 3 with both words and 3
  with neither. Chapter 7's ``coco_canonical_sets`` keeps all six concepts for ``min_images <= 4``
  and four for ``min_images`` 5 to 8.

Everything is seeded (the same bytes on every run) and takes a few seconds.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pickle
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from data_scripts.convert import CELEBA_ATTRIBUTES  # the 40 columns, in the mirror's order
from data_scripts.sources import COCO_FILES, HF_MIRRORS, TORCHVISION_FILES

__all__ = ["COCO_CATEGORIES", "COCO_PLAN", "WRITERS", "main", "write_celeba", "write_cifar10", "write_cifar100",
           "write_coco", "write_fairface", "write_fashionmnist", "write_mirror", "write_utkface"]

SEED = 0

# --------------------------------------------------------------------------------------------
# published names (see the Datasets page for the evidence)

#: FairFace's ClassLabel names in the order of the mirror's dataset card (HuggingFaceM4/FairFace README).
FAIRFACE_CLASS_NAMES = {
    "age": ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"],
    "gender": ["Male", "Female"],
    "race": ["East Asian", "Indian", "Black", "White", "Middle Eastern", "Latino_Hispanic", "Southeast Asian"],
}
#: The shard names of the mirror's file listing (0.25 is downloaded, 1.25 is not).
FAIRFACE_SHARDS = {
    "0.25": {"train": ["train-00000-of-00002-d405faba4f4b9b85.parquet",
                       "train-00001-of-00002-dd3cb68164727418.parquet"],
             "validation": ["validation-00000-of-00001-951dbd63c8724ee1.parquet"]},
    "1.25": {"train": ["train-00000-of-00004-e715178553977907.parquet",
                       "train-00001-of-00004-f38b58e3987f3fbf.parquet",
                       "train-00002-of-00004-239e931aa9c3b3e6.parquet",
                       "train-00003-of-00004-847c279691a19548.parquet"],
             "validation": ["validation-00000-of-00001-09e3e67bb00ab4ec.parquet"]},
}

CELEBA_SHARDS = {"train": 19, "valid": 3, "test": 3}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)
#: The coarse label of each fine label, as in CIFAR-100's train and test files.
CIFAR100_FINE_TO_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1,
    10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17, 10, 3, 2, 12,
    12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13, 16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0,
    17, 8, 14, 13,
)

_SUPER = {
    "person": ["person"],
    "vehicle": ["bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"],
    "outdoor": ["traffic light", "fire hydrant", "stop sign", "parking meter", "bench"],
    "animal": ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"],
    "accessory": ["backpack", "umbrella", "handbag", "tie", "suitcase"],
    "sports": ["frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard",
               "surfboard", "tennis racket"],
    "kitchen": ["bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl"],
    "food": ["banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake"],
    "furniture": ["chair", "couch", "potted plant", "bed", "dining table", "toilet"],
    "electronic": ["tv", "laptop", "mouse", "remote", "keyboard", "cell phone"],
    "appliance": ["microwave", "oven", "toaster", "sink", "refrigerator"],
    "indoor": ["book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush"],
}
_COCO_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
             33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
             60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
#: COCO 2017's 80 categories as in instances_*.json: ``{"supercategory", "id", "name"}``, ids 1..90 with gaps.
COCO_CATEGORIES: tuple[dict, ...] = tuple(
    {"supercategory": sup, "id": cid, "name": name}
    for cid, (sup, name) in zip(_COCO_IDS, [(s, n) for s, names in _SUPER.items() for n in names])
)

#: Images planted per concept in each of val2017 and train2017: alone, with a man, with a woman.
COCO_PLAN = {"dog": 8, "umbrella": 8, "laptop": 8, "pizza": 8, "bicycle": 4, "cake": 4}
#: Person images captioned man (and woman) without any concept of :data:`COCO_PLAN`, per split.
COCO_ATTRIBUTE_IMAGES = 12

# --------------------------------------------------------------------------------------------
# images and containers


def _image(rng: np.random.Generator, width: int, height: int, colour: Sequence[int]) -> np.ndarray:
    """Smooth noise on ``colour``: ``uint8 (height, width, 3)``."""
    from PIL import Image

    grid = rng.integers(-45, 46, size=(max(2, height // 16), max(2, width // 16), 3)) + np.asarray(colour)
    small = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((width, height), Image.BILINEAR))


def _jpeg(rng: np.random.Generator, width: int, height: int, colour: Sequence[int], quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_image(rng, width, height, colour)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _colour(*codes: int) -> tuple[int, int, int]:
    """A colour that differs between groups (codes of the group's attributes)."""
    h = 0
    for c in codes:
        h = h * 31 + int(c) + 7
    return 40 + (h * 53) % 176, 40 + (h * 97) % 176, 40 + (h * 151) % 176


def _write_parquet(path: Path, columns: dict, types: dict, features: dict) -> None:
    """A parquet shard as ``datasets`` writes it: the features in the ``huggingface`` schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([pa.field(k, types[k]) for k in columns],
                       metadata={b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    pq.write_table(pa.table(columns, schema=schema), path)


def _image_type():
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _write_targz(path: Path, members: Sequence[tuple[str, bytes | None]]) -> None:
    """A ``.tar.gz`` of ``(name, data)`` members (``data=None``: a directory), byte-identical on every run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_485_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(_gzip_bytes(buf.getvalue()))


def _write_zip(path: Path, members: Sequence[tuple[str, bytes | None]], *, deflate: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2017, 8, 31, 12, 0, 0))
            if data is None:
                info.external_attr = 0o40755 << 16 | 0x10
                zf.writestr(info, b"")
            else:
                info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                zf.writestr(info, data)


# --------------------------------------------------------------------------------------------
# Hugging Face mirrors


def _fairface_rows(rng: np.random.Generator, per_group: int) -> list[tuple[int, int, int]]:
    groups = [(a, g, r) for a in range(9) for g in range(2) for r in range(7)] * per_group
    return [groups[i] for i in rng.permutation(len(groups))]


def write_fairface(root: Path, *, per_group_train: int = 3, per_group_val: int = 1, seed: int = SEED) -> None:
    """``HuggingFaceM4/FairFace``: parquet shards of 224x224 JPEGs with ClassLabel ``age``/``gender``/``race``."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    repo = root / "huggingface" / HF_MIRRORS["fairface"].repo_id
    features = {"image": {"_type": "Image"},
                **{k: {"names": v, "_type": "ClassLabel"} for k, v in FAIRFACE_CLASS_NAMES.items()},
                "service_test": {"dtype": "bool", "_type": "Value"}}
    types = {"image": _image_type(), "age": pa.int64(), "gender": pa.int64(), "race": pa.int64(),
             "service_test": pa.bool_()}
    for config, shards in FAIRFACE_SHARDS.items():
        for split, names in shards.items():
            if config == "0.25":
                rows = _fairface_rows(rng, per_group_train if split == "train" else per_group_val)
            else:  # the 1.25 crops are never downloaded: one row per shard shows that
                rows = [(3, 0, 3)] * len(names)
            for k, name in enumerate(names):
                part = rows[k::len(names)]
                _write_parquet(repo / config / name, {
                    "image": [{"bytes": _jpeg(rng, 224, 224, _colour(r, a, g)), "path": None} for a, g, r in part],
                    "age": [a for a, _, _ in part], "gender": [g for _, g, _ in part],
                    "race": [r for _, _, r in part],
                    "service_test": [bool(rng.integers(2)) for _ in part]}, types, features)
    (repo / "README.md").write_text("---\nlicense: cc-by-4.0\n---\nDataset Card for \"FairFace\" (rehearsal copy)\n")


def write_celeba(root: Path, *, n_train: int = 200, n_valid: int = 50, n_test: int = 50, seed: int = SEED) -> None:
    """``flwrlabs/celeba``: shards under ``img_align+identity+attr/`` of 178x218 JPEGs, ``celeb_id`` (int64)
    and the 40 attributes as bool columns."""
    import pyarrow as pa

    rng = np.random.default_rng(seed + 1)
    base = root / "huggingface" / HF_MIRRORS["celeba"].repo_id / "img_align+identity+attr"
    features = {"image": {"_type": "Image"}, "celeb_id": {"dtype": "int64", "_type": "Value"},
                **{a: {"dtype": "bool", "_type": "Value"} for a in CELEBA_ATTRIBUTES}}
    types = {"image": _image_type(), "celeb_id": pa.int64(), **{a: pa.bool_() for a in CELEBA_ATTRIBUTES}}
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        values = rng.random((n, len(CELEBA_ATTRIBUTES))) < 0.5
        for j in range(len(CELEBA_ATTRIBUTES)):  # every attribute takes both values in every split
            if n >= 2 and values[:, j].all():
                values[0, j] = False
            if n >= 2 and not values[:, j].any():
                values[0, j] = True
        ids = rng.integers(1, 10_178, n)
        shards = CELEBA_SHARDS[split]
        for k in range(shards):
            rows = np.arange(k, n, shards)
            cols = {"image": [{"bytes": _jpeg(rng, 178, 218, _colour(*values[i, [20, 39]])), "path": None}
                              for i in rows],
                    "celeb_id": [int(ids[i]) for i in rows]}
            cols.update({a: [bool(values[i, j]) for i in rows] for j, a in enumerate(CELEBA_ATTRIBUTES)})
            _write_parquet(base / f"{split}-{k:05d}-of-{shards:05d}.parquet", cols, types, features)


#: Names like the few malformed ones of the real archive (a field missing); fetch skips them.
UTKFACE_MALFORMED = ("39_1_20170116174525125.jpg.chip.jpg", "61_1_20170109150557335.jpg.chip.jpg",
                     "61_3_20170109150557335.jpg.chip.jpg")


def write_utkface(root: Path, *, per_group: int = 4, seed: int = SEED) -> None:
    """``py97/UTKFace-Cropped``: ``UTKFace.tar.gz`` with ``UTKFace/[age]_[gender]_[race]_[date&time].jpg.chip.jpg``
    (200x200 JPEGs), ``per_group`` per race x gender x age bin."""
    from fairlib.data.loaders import UTKFACE_AGE_EDGES

    rng = np.random.default_rng(seed + 2)
    members: list[tuple[str, bytes | None]] = [("UTKFace", None)]
    stamp = 20170104000000000
    for b in range(len(UTKFACE_AGE_EDGES) - 1):
        low, high = UTKFACE_AGE_EDGES[b], min(UTKFACE_AGE_EDGES[b + 1], 117)
        for gender in range(2):
            for race in range(5):
                for _ in range(per_group):
                    age = int(rng.integers(low, high))
                    stamp += int(rng.integers(1_000, 90_000))
                    name = f"UTKFace/{age}_{gender}_{race}_{stamp}.jpg.chip.jpg"
                    members.append((name, _jpeg(rng, 200, 200, _colour(race, gender, b))))
    for name in UTKFACE_MALFORMED:
        members.append((f"UTKFace/{name}", _jpeg(rng, 200, 200, (128, 128, 128))))
    head, rest = members[:1], members[1:]
    members = head + [rest[i] for i in rng.permutation(len(rest))]
    repo = root / "huggingface" / HF_MIRRORS["utkface"].repo_id
    _write_targz(repo / "UTKFace.tar.gz", members)
    (repo / "README.md").write_text("---\nlicense: mit\n---\nUTKFace Aligned & Cropped Faces (rehearsal copy)\n")


# --------------------------------------------------------------------------------------------
# torchvision


def _tv_path(root: Path, name: str, index: int = 0) -> Path:
    return root / TORCHVISION_FILES[name][index].mirror_path


def _cifar_data(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """``(n, 3072)`` uint8 rows: red plane, green plane, blue plane of a 32x32 image."""
    out = np.empty((len(labels), 3072), dtype=np.uint8)
    for i, y in enumerate(labels):
        out[i] = _image(rng, 32, 32, _colour(int(y))).transpose(2, 0, 1).reshape(-1)
    return out


def write_cifar10(root: Path, *, n_per_batch: int = 20, n_test: int = 100, seed: int = SEED) -> None:
    """``cifar-10-python.tar.gz``: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}``,
    python pickles with ``data`` (n x 3072 uint8), ``labels`` (0..9 cycling), ``batch_label``, ``filenames``."""
    rng = np.random.default_rng(seed + 3)
    members: list[tuple[str, bytes | None]] = [("cifar-10-batches-py", None)]
    files = [(f"data_batch_{k}", n_per_batch, f"training batch {k} of 5") for k in range(1, 6)]
    for fname, n, label in files + [("test_batch", n_test, "testing batch 1 of 1")]:
        labels = np.arange(n) % 10
        entry = {"batch_label": label, "labels": [int(y) for y in labels], "data": _cifar_data(rng, labels),
                 "filenames": [f"{CIFAR10_CLASSES[y]}_s_{i:06d}.png" for i, y in enumerate(labels)]}
        members.append((f"cifar-10-batches-py/{fname}", pickle.dumps(entry, protocol=2)))
    meta = {"num_cases_per_batch": n_per_batch, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    members.append(("cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2)))
    members.append(("cifar-10-batches-py/readme.html", b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; "
                                                       b"url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n"))
    _write_targz(_tv_path(root, "cifar10"), members)


def write_cifar100(root: Path, *, n_train: int = 400, n_test: int = 400, seed: int = SEED) -> None:
    """``cifar-100-python.tar.gz``: ``cifar-100-python/{train, test, meta, file.txt~}``, pickles with ``data``,
    ``fine_labels`` (0..99 cycling), ``coarse_labels`` (CIFAR-100's own mapping), ``batch_label``, ``filenames``."""
    rng = np.random.default_rng(seed + 4)
    members: list[tuple[str, bytes | None]] = [("cifar-100-python", None)]
    for fname, n in (("train", n_train), ("test", n_test)):
        fine = np.arange(n) % 100
        entry = {"filenames": [f"{CIFAR100_FINE[y]}_s_{i:06d}.png" for i, y in enumerate(fine)],
                 "batch_label": f"{'training' if fname == 'train' else 'testing'} batch 1 of 1",
                 "fine_labels": [int(y) for y in fine],
                 "coarse_labels": [CIFAR100_FINE_TO_COARSE[y] for y in fine], "data": _cifar_data(rng, fine)}
        members.append((f"cifar-100-python/{fname}", pickle.dumps(entry, protocol=2)))
    meta = {"fine_label_names": list(CIFAR100_FINE), "coarse_label_names": list(CIFAR100_COARSE)}
    members.append(("cifar-100-python/meta", pickle.dumps(meta, protocol=2)))
    members.append(("cifar-100-python/file.txt~", b""))
    _write_targz(_tv_path(root, "cifar100"), members)


def write_fashionmnist(root: Path, *, n_train: int = 100, n_test: int = 100, seed: int = SEED) -> None:
    """Fashion-MNIST's four gzipped idx files (magic 0x00000803 images, 0x00000801 labels, big-endian sizes)."""
    rng = np.random.default_rng(seed + 5)
    for k, n in enumerate((n_train, n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.stack([_image(rng, 28, 28, _colour(int(y)))[..., 0] for y in labels]) if n else \
            np.zeros((0, 28, 28), np.uint8)
        img = np.array([0x803, n, 28, 28], dtype=">i4").tobytes() + images.astype(np.uint8).tobytes()
        lab = np.array([0x801, n], dtype=">i4").tobytes() + labels.tobytes()
        for j, data in ((2 * k, img), (2 * k + 1, lab)):
            path = _tv_path(root, "fashionmnist", j)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_gzip_bytes(data))


# --------------------------------------------------------------------------------------------
# COCO


_ALONE = ("A {c} on a table.", "There is a {c} in this picture.", "A close up of a {c}.",
          "A {c} sitting in the sun.", "An old {c} next to a wall.")
_WITH = ("A {g} with a {c}.", "A {g} standing next to a {c}.", "The {g} is looking at the {c}.",
         "A {c} and a {g} outside.", "A young {g} near a {c}.")
_PERSON = ("A {g} standing in a room.", "A {g} smiling at the camera.", "A {g} walking down the street.",
           "Portrait of a {g} in a park.", "A {g} wearing a jacket.")
_BOTH = ("A man and a woman standing together.", "A woman talks to a man.", "A man next to a woman.",
         "Two people, a man and a woman.", "A couple: a woman and a man.")
_NEUTRAL = ("A person walking down the street.", "Someone standing in a doorway.", "A person in a red coat.",
            "A skier on a slope.", "People waiting for a bus.")
_SIZES = ((640, 480), (480, 640), (640, 427), (427, 640), (640, 360))


def _coco_plan() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(categories, captions)`` of every planted image (see :data:`COCO_PLAN`)."""
    plan = []
    for c, n in COCO_PLAN.items():
        plan += [((c,), tuple(t.format(c=c) for t in _ALONE))] * n
        for g in ("man", "woman"):
            plan += [((c, "person"), tuple(t.format(c=c, g=g) for t in _WITH))] * n
    for g in ("man", "woman"):
        extra = [(("person", "cup"), tuple(t.format(g=g) for t in _PERSON))] * 3
        plan += extra + [(("person",), tuple(t.format(g=g) for t in _PERSON))] * (COCO_ATTRIBUTE_IMAGES - 3)
    plan += [(("person",), _BOTH)] * 3 + [(("person",), _NEUTRAL)] * 3
    return plan


def _coco_split(rng: np.random.Generator, split: str, ids: np.ndarray) -> tuple[dict, dict, dict, list]:
    plan = _coco_plan()
    cat_id = {c["name"]: c["id"] for c in COCO_CATEGORIES}
    order = rng.permutation(len(plan))
    images, instances, captions, files = [], [], [], []
    info = {"description": "COCO 2017 Dataset", "url": "http://cocodataset.org", "version": "1.0", "year": 2017,
            "contributor": "COCO Consortium", "date_created": "2017/09/01"}
    licenses = [{"url": "http://creativecommons.org/licenses/by-nc-sa/2.0/", "id": 1,
                 "name": "Attribution-NonCommercial-ShareAlike License"},
                {"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"}]
    for image_id, k in zip(ids, order):
        cats, caps = plan[k]
        width, height = _SIZES[int(rng.integers(len(_SIZES)))]
        fname = f"{int(image_id):012d}.jpg"
        images.append({"license": int(rng.choice([1, 4])), "file_name": fname,
                       "coco_url": f"http://images.cocodataset.org/{split}/{fname}", "height": height,
                       "width": width, "date_captured": "2013-11-14 17:02:52",
                       "flickr_url": f"http://farm4.staticflickr.com/{int(image_id)}.jpg", "id": int(image_id)})
        for c in cats:
            for _ in range(int(rng.integers(1, 3))):
                x, y = float(rng.uniform(0, width / 2)), float(rng.uniform(0, height / 2))
                w, h = float(rng.uniform(20, width / 2)), float(rng.uniform(20, height / 2))
                instances.append({"segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "area": w * h,
                                  "iscrowd": 0, "image_id": int(image_id), "bbox": [x, y, w, h],
                                  "category_id": cat_id[c], "id": 900_000 + len(instances)})
        for cap in caps:
            captions.append({"image_id": int(image_id), "id": 700_000 + len(captions), "caption": cap})
        colour = _colour(*[cat_id[c] for c in cats])
        files.append((f"{split}/{fname}", _jpeg(rng, width, height, colour)))
    inst = {"info": info, "licenses": licenses, "images": images, "annotations": instances,
            "categories": [dict(c) for c in COCO_CATEGORIES]}
    capt = {"info": info, "licenses": licenses, "images": images, "annotations": captions}
    person = next(c for c in COCO_CATEGORIES if c["name"] == "person")
    keyp = {"info": info, "licenses": licenses, "images": images, "annotations": [],
            "categories": [{**person, "keypoints": ["nose"], "skeleton": []}]}
    return inst, capt, keyp, files


def write_coco(root: Path, *, seed: int = SEED) -> None:
    """COCO 2017's three zips: ``annotations/{instances,captions,person_keypoints}_{train,val}2017.json``,
    ``val2017/<12-digit id>.jpg`` and ``train2017/<12-digit id>.jpg`` (:data:`COCO_PLAN` per split)."""
    rng = np.random.default_rng(seed + 6)
    n = len(_coco_plan())
    ids = rng.choice(np.arange(1, 581_930), size=2 * n, replace=False)  # COCO 2017 ids are below 581,930
    annotations: list[tuple[str, bytes | None]] = [("annotations", None)]
    zips = {f.name: f for f in COCO_FILES}
    for split, split_ids in (("train2017", ids[:n]), ("val2017", ids[n:])):
        inst, capt, keyp, files = _coco_split(rng, split, split_ids)
        annotations += [(f"annotations/instances_{split}.json", json.dumps(inst).encode()),
                        (f"annotations/captions_{split}.json", json.dumps(capt).encode()),
                        (f"annotations/person_keypoints_{split}.json", json.dumps(keyp).encode())]
        _write_zip(root / zips[f"{split}.zip"].mirror_path, [(split, None)] + files, deflate=False)
    _write_zip(root / zips["annotations_trainval2017.zip"].mirror_path, annotations, deflate=True)


# --------------------------------------------------------------------------------------------

#: The writer of each dataset's source.
WRITERS: dict[str, Callable[[Path], None]] = {
    "fairface": write_fairface,
    "utkface": write_utkface,
    "celeba": write_celeba,
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "fashionmnist": write_fashionmnist,
    "coco": write_coco,
}


def write_mirror(root: str | Path, names: Sequence[str] | None = None) -> Path:
    """Write the rehearsal mirror (every source of ``names``, default all) under ``root``.

    Parameters
    ----------
    root
        The mirror directory (created); pass it to ``python -m data_scripts.fetch ... --source``.
    names
        Datasets whose sources to write; ``None``: every one of :data:`WRITERS`.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    if isinstance(root, bool) or not isinstance(root, (str, Path)) or str(root).strip() == "":
        raise TypeError(f"root: expected a directory path, got {root!r}")
    names = list(WRITERS) if names is None else list(names)
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise ValueError(f"names: no source to write for {unknown}; choose from {', '.join(WRITERS)}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        WRITERS[name](root)
    planted = {"coco": {"per_split": {"val2017": len(_coco_plan()), "train2017": len(_coco_plan())},
                        "per_concept_alone_man_woman": COCO_PLAN,
                        "attribute_images_per_gender": COCO_ATTRIBUTE_IMAGES}}
    (root / "rehearsal.json").write_text(json.dumps({"written": names, "planted": planted}, indent=1))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.rehearse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, metavar="DIR", help="the mirror directory to write")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"sources to write (default all): {', '.join(WRITERS)}")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        root = write_mirror(args.root, args.names or None)
    except (TypeError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"rehearsal mirror in {root}: {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s; fetch it with\n"
          f"    python -m data_scripts.fetch all --root DATA_DIR --source {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
