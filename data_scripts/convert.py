"""Turn downloaded source files into the on-disk layouts ``fairlib.data`` reads.

The same functions run on the bytes of the real sources and on the miniature copies that
``python -m data_scripts.rehearse`` writes; see ``data_scripts.sources`` for the files.

* Parquet shards (FairFace, CelebA): Hugging Face mirrors store an image column as a struct
  ``{bytes, path}`` and labels as integers whose class names live in the parquet schema metadata
  (key ``huggingface``) -- :func:`convert_fairface`, :func:`convert_celeba`.
* Archives (UTKFace's ``UTKFace.tar.gz``, torchvision's CIFAR tarballs and Fashion-MNIST's ``.gz``
  idx files, COCO's zips) -- :func:`convert_utkface`, :func:`extract_torchvision`,
  :func:`extract_coco`. Every member name is checked first (:func:`member_path`): an absolute path,
  a ``..`` component or a link refuses the whole archive, so nothing is written outside the
  dataset's folder.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm.auto import tqdm

from fairlib.data.loaders import FAIRFACE_AGES, FAIRFACE_GENDERS, FAIRFACE_RACES, parse_utkface_name

__all__ = ["CELEBA_ATTRIBUTES", "COCO_MEMBER", "UTKFACE_NAME", "class_names", "convert_celeba",
           "convert_fairface", "convert_utkface", "extract_coco", "extract_torchvision", "member_path"]

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

#: The class order of the FairFace mirror's ClassLabel columns, used when a shard lacks the
#: schema metadata.
HF_FAIRFACE_NAMES = {
    "age": list(FAIRFACE_AGES),
    "gender": ["Male", "Female"],
    "race": ["East Asian", "Indian", "Black", "White", "Middle Eastern", "Latino_Hispanic",
             "Southeast Asian"],
}


def class_names(parquet_path: Path) -> dict[str, list[str]]:
    """ClassLabel names per column from a shard's ``huggingface`` schema metadata."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(parquet_path).metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return {}
    info = json.loads(raw)
    feats = info.get("info", {}).get("features", {})
    out = {}
    for name, spec in feats.items():
        if isinstance(spec, dict) and "names" in spec:
            out[name] = list(spec["names"])
    return out


def _rows(parquet_path: Path, desc: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet_path)
    with tqdm(total=pf.metadata.num_rows, desc=desc, unit="img") as bar:
        for batch in pf.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                yield row
                bar.update(1)


def _image_bytes(value) -> tuple[bytes, str | None]:
    if isinstance(value, dict):
        return value.get("bytes"), value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value), None
    raise ValueError(f"unexpected image value of type {type(value).__name__}")


def _write_jpeg(data: bytes, dest: Path) -> None:
    """Write JPEG bytes as they are; re-encode anything else (PNG shards) to JPEG."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if data[:3] == b"\xff\xd8\xff":
        dest.write_bytes(data)
        return
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").save(dest, quality=95)


def _label(value, names: list[str] | None, column: str):
    if isinstance(value, str):
        return value
    if names is None:
        raise ValueError(f"column {column!r}: integer labels but no class names")
    return names[int(value)]


def _split_of(shard: Path, splits: dict[str, str]) -> str:
    for key, split in splits.items():
        if key in shard.name:
            return split
    raise ValueError(f"{shard.name}: cannot tell its split (expected one of {list(splits)})")


def _image_column(row: dict) -> str:
    for key in ("image", "img", "jpg"):
        if key in row:
            return key
    raise ValueError(f"no image column among {sorted(row)}")


def convert_fairface(shards: list[Path], out: Path, splits: dict[str, str]) -> None:
    """Write ``fairface_label_{train,val}.csv`` (file, age, gender, race, service_test) and
    ``{train,val}/<n>.jpg`` as in FairFace's own release."""
    tables: dict[str, list[dict]] = {}
    for shard in sorted(shards):
        split = _split_of(shard, splits)
        names = {**HF_FAIRFACE_NAMES, **class_names(shard)}
        rows = tables.setdefault(split, [])
        for row in _rows(shard, f"fairface {split}"):
            data, _ = _image_bytes(row[_image_column(row)])
            rel = f"{split}/{len(rows) + 1}.jpg"
            _write_jpeg(data, out / rel)
            labels = {c: _label(row[c], names.get(c), c) for c in ("age", "gender", "race")}
            for c, allowed in (("age", FAIRFACE_AGES), ("gender", FAIRFACE_GENDERS),
                               ("race", FAIRFACE_RACES)):
                if labels[c] not in allowed:
                    raise ValueError(f"{shard.name}: unexpected {c} {labels[c]!r}")
            rows.append({"file": rel, **labels,
                         "service_test": bool(row.get("service_test", False))})
    if not tables:
        raise ValueError("fairface: no shards to convert")
    for split, rows in tables.items():
        pd.DataFrame(rows).to_csv(out / f"fairface_label_{split}.csv", index=False)


def convert_celeba(shards: list[Path], out: Path, splits: dict[str, str]) -> None:
    """Write ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and
    ``img_align_celeba/NNNNNN.jpg`` (numbered train, then val, then test, as the original)."""
    part_code = {"train": 0, "val": 1, "test": 2}
    by_split: dict[str, list[Path]] = {}
    for shard in sorted(shards):
        by_split.setdefault(_split_of(shard, splits), []).append(shard)
    attr_lines, part_lines = [], []
    index = 0
    for split in ("train", "val", "test"):
        for shard in by_split.get(split, []):
            for row in _rows(shard, f"celeba {split}"):
                missing = [a for a in CELEBA_ATTRIBUTES if a not in row]
                if missing:
                    raise ValueError(f"{shard.name}: missing attribute columns {missing[:3]}...")
                index += 1
                name = f"{index:06d}.jpg"
                data, _ = _image_bytes(row[_image_column(row)])
                _write_jpeg(data, out / "img_align_celeba" / name)
                vals = [1 if _truthy(row[a]) else -1 for a in CELEBA_ATTRIBUTES]
                attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in vals))
                part_lines.append(f"{name} {part_code[split]}")
    if index == 0:
        raise ValueError("celeba: no rows in the shards")
    (out / "list_attr_celeba.txt").write_text(
        f"{index}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(attr_lines) + "\n")
    (out / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")


def _truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip() in ("1", "True", "true")
    return bool(v) and v != -1




# --------------------------------------------------------------------------------------------
# archives


def member_path(name: str) -> PurePosixPath:
    """The relative path of an archive member, refusing names that would escape the target folder.

    Raises
    ------
    ValueError
        ``name`` is absolute (``/x``, ``C:/x``) or has a ``..`` component.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"unsafe member {name!r} (an absolute path or '..'): refusing to extract the archive")
    return path


def _tar_members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Regular-file members with their checked paths; refuses links and unsafe names."""
    for member in tar:
        path = member_path(member.name)
        if member.issym() or member.islnk() or member.isdev():
            raise ValueError(f"member {member.name!r} is a link or device: refusing to extract the archive")
        if member.isfile():
            yield member, path


#: A UTKFace file name: ``[age]_[gender]_[race]_[date&time].jpg``, in the cropped release with
#: ``.jpg.chip.jpg`` (the member names of ``UTKFace.tar.gz`` are ``UTKFace/<name>``).
UTKFACE_NAME = re.compile(r"^\d{1,3}_[01]_[0-4]_\d+\.jpg(\.chip\.jpg)?$", re.IGNORECASE)


def convert_utkface(archives: list[Path], out: Path, splits: dict[str, str]) -> None:
    """Extract ``UTKFace/<name>`` from ``UTKFace.tar.gz`` archives.

    Only regular files whose name matches :data:`UTKFACE_NAME` (labels parse, age at most 116) are
    written, flat under ``out/UTKFace/`` with their original name (``.jpg.chip.jpg`` kept); the
    folder inside the archive (``UTKFace/`` or none) does not matter. The few malformed names of the
    real archive (e.g. a missing race field) are skipped, as the loader would skip them.

    Raises
    ------
    ValueError
        An unsafe member (see :func:`member_path`), or no UTKFace image at all.
    """
    del splits
    written = skipped = 0
    target = out / "UTKFace"
    target.mkdir(parents=True, exist_ok=True)
    for archive in sorted(archives):
        with tarfile.open(archive, "r:*") as tar, tqdm(desc=f"utkface {archive.name}", unit="img") as bar:
            for member, path in _tar_members(tar):
                name = path.name
                if not UTKFACE_NAME.match(name) or parse_utkface_name(name) is None or (target / name).exists():
                    skipped += 1
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(target / name, "wb") as f:
                    shutil.copyfileobj(src, f)
                written += 1
                bar.update(1)
    if written == 0:
        raise ValueError("utkface: no [age]_[gender]_[race]_[date&time].jpg(.chip.jpg) file in the archive "
                         f"({skipped} other members)")


_TORCHVISION_LAYOUT = {
    "cifar10": ["cifar-10-batches-py/" + f for f in
                [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch", "batches.meta"]],
    "cifar100": ["cifar-100-python/" + f for f in ("train", "test", "meta")],
    "fashionmnist": ["FashionMNIST/raw/" + f for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")],
}


def extract_torchvision(name: str, archives: list[Path], out: Path) -> None:
    """Extract torchvision's downloads into the layout torchvision itself leaves.

    The archives are unpacked with torchvision's own ``torchvision.datasets.utils.extract_archive``
    (a tarball into ``out/``, a ``.gz`` idx file into ``out/FashionMNIST/raw/``), after every tar
    member name has been checked (:func:`member_path`; torchvision does not check them).

    Raises
    ------
    ValueError
        An unsafe member, or a file of the expected layout missing afterwards.
    """
    from torchvision.datasets.utils import extract_archive

    for archive in archives:
        if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive, "r:*") as tar:
                for _ in _tar_members(tar):
                    pass
            extract_archive(str(archive), str(out))
        elif archive.name.endswith(".gz"):
            raw = out / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            extract_archive(str(archive), str(raw))
        else:
            raise ValueError(f"{archive.name}: not a torchvision archive (.tar.gz or .gz)")
    missing = [f for f in _TORCHVISION_LAYOUT[name] if not (out / f).is_file()]
    if missing:
        raise ValueError(f"{name}: the archives hold no {', '.join(missing[:3])}")


#: The members of COCO's zips that ``fairlib.data.coco`` reads; the rest (keypoints) are skipped.
COCO_MEMBER = re.compile(r"^(annotations/(captions|instances)_(train|val)2017\.json"
                         r"|(train|val)2017/\d{12}\.jpg)$")


def extract_coco(archive: Path, out: Path) -> int:
    """Extract the members of a COCO 2017 zip that :data:`COCO_MEMBER` names into ``out``.

    ``annotations_trainval2017.zip`` gives ``annotations/{captions,instances}_{train,val}2017.json``
    (the keypoint files are skipped); ``val2017.zip`` and ``train2017.zip`` give
    ``<split>/<12-digit id>.jpg``: COCO's own layout, as ``fairlib.data.coco`` reads it.

    Returns
    -------
    int
        The number of files written.

    Raises
    ------
    ValueError
        An unsafe member name (see :func:`member_path`).
    """
    written = 0
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            member_path(info.filename)  # refuse the whole archive before writing anything
        for info in tqdm(infos, desc=f"coco {archive.name}", unit="file"):
            path = member_path(info.filename)
            if info.is_dir() or not COCO_MEMBER.match(path.as_posix()):
                continue
            dest = out.joinpath(*path.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f)
            written += 1
    return written
