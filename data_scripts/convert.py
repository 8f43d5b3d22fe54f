"""Convert downloaded parquet shards into the on-disk layouts ``fairlib.data`` reads.

Hugging Face mirrors store an image column as a struct ``{bytes, path}`` and labels as
integers whose class names live in the parquet schema metadata (key ``huggingface``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from fairlib.data.loaders import FAIRFACE_AGES, FAIRFACE_GENDERS, FAIRFACE_RACES, parse_utkface_name

__all__ = ["CELEBA_ATTRIBUTES", "convert_fairface", "convert_celeba", "convert_utkface",
           "class_names"]

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


_UTK_GENDER = {"male": 0, "female": 1}
_UTK_RACE = {"white": 0, "black": 1, "asian": 2, "indian": 3, "others": 4, "other": 4}


def _utk_code(value, table: dict[str, int], names: list[str] | None) -> int:
    if isinstance(value, str):
        v = value.strip().lower()
        if v.isdigit():
            return int(v)
        return table[v]
    if names is not None:
        return table[names[int(value)].lower()]
    return int(value)


def convert_utkface(shards: list[Path], out: Path, splits: dict[str, str]) -> None:
    """Write ``UTKFace/[age]_[gender]_[race]_[date&time].jpg``: the original file name when
    the shard keeps it, otherwise one built from ``age``/``gender``/``race`` columns (the
    date field then holds a running number). Rows without valid labels are skipped."""
    del splits
    written = 0
    for shard in sorted(shards):
        names = class_names(shard)
        for row in _rows(shard, "utkface"):
            data, path = _image_bytes(row[_image_column(row)])
            fname = Path(path).name if path else ""
            if not (fname and parse_utkface_name(fname)):
                try:
                    age = int(row["age"])
                    g = _utk_code(row["gender"], _UTK_GENDER, names.get("gender"))
                    r = _utk_code(row.get("race", row.get("ethnicity")), _UTK_RACE,
                                  names.get("race") or names.get("ethnicity"))
                except (KeyError, TypeError, ValueError):
                    continue
                fname = f"{age}_{g}_{r}_{written:017d}.jpg"
                if parse_utkface_name(fname) is None:
                    continue
            fname = re.sub(r"\.jpg\.chip\.jpg$", ".jpg", fname)
            _write_jpeg(data, out / "UTKFace" / fname)
            written += 1
    if written == 0:
        raise ValueError("utkface: no row had a valid label")
