"""data_scripts.fetch with the network replaced by a local file source."""

import io
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import data_scripts.fetch as fetch_mod
from data_scripts.convert import CELEBA_ATTRIBUTES, HF_FAIRFACE_NAMES
from data_scripts.fetch import fetch, main
from data_scripts.sources import HF_MIRRORS, FetchError, LocalSource, RemoteFile
from fairlib.data import COMPLETE_MARKER, DatasetNotFoundError, load_dataset


def _jpeg(rgb):
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), rgb).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _png(rgb):
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), rgb).save(buf, format="PNG")
    return buf.getvalue()


def _shard(path, columns, features):
    """A parquet shard as the Hub's mirrors serve it: image struct + ClassLabel metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def _images(datas, paths=None):
    paths = paths or [None] * len(datas)
    return pa.array([{"bytes": d, "path": p} for d, p in zip(datas, paths)],
                    type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _fairface_mirror(base):
    repo = base / HF_MIRRORS["fairface"].repo_id
    feats = {"image": {"_type": "Image"},
             **{k: {"names": v, "_type": "ClassLabel"} for k, v in HF_FAIRFACE_NAMES.items()}}
    # HF race order: 0 East Asian, 1 Indian, 2 Black, 3 White, ...
    _shard(repo / "0.25" / "train-00000-of-00002.parquet",
           {"image": _images([_jpeg((255, 0, 0)), _png((0, 0, 255))]),
            "age": [3, 8], "gender": [0, 1], "race": [3, 0],
            "service_test": [True, False]}, feats)
    _shard(repo / "0.25" / "train-00001-of-00002.parquet",
           {"image": _images([_jpeg((0, 255, 0))]), "age": [0], "gender": [1], "race": [2],
            "service_test": [False]}, feats)
    _shard(repo / "0.25" / "validation-00000-of-00001.parquet",
           {"image": _images([_jpeg((9, 9, 9))]), "age": [5], "gender": [0], "race": [6],
            "service_test": [False]}, feats)
    _shard(repo / "1.25" / "train-00000-of-00001.parquet",  # other padding: must be ignored
           {"image": _images([_jpeg((1, 1, 1))]), "age": [0], "gender": [0], "race": [0],
            "service_test": [False]}, feats)
    return LocalSource(base)


def test_fairface_from_parquet_shards(tmp_path):
    source = _fairface_mirror(tmp_path / "mirror")
    root = tmp_path / "data"
    out = fetch("fairface", root, source=source)
    assert out == root / "fairface"
    manifest = json.loads((out / COMPLETE_MARKER).read_text())
    assert set(manifest["downloads"]) == {
        "0.25/train-00000-of-00002.parquet", "0.25/train-00001-of-00002.parquet",
        "0.25/validation-00000-of-00001.parquet"}
    assert all(len(v["sha256"]) == 64 for v in manifest["downloads"].values())
    tr = load_dataset("fairface", root=root, transform=lambda x: x)
    assert list(tr.attributes["age"]) == ["20-29", "more than 70", "0-2"]
    assert list(tr.attributes["race"]) == ["White", "East Asian", "Black"]
    assert list(tr.attributes["gender"]) == ["Male", "Female", "Female"]
    img, _ = tr[1]  # the PNG was re-encoded as JPEG, still blue
    assert img.shape == (3, 12, 12) and img[2].float().mean() > 240
    va = load_dataset("fairface", "val", root=root)
    assert list(va.attributes["race"]) == ["Southeast Asian"] and len(va) == 1
    assert [p.name for p in root.iterdir()] == ["fairface"]  # no partial directory left
    # a second run sees the marker and does not download again
    calls = len(source.calls)
    fetch("fairface", root, source=source)
    assert len(source.calls) == calls


def test_interrupted_download_leaves_nothing_that_loads_and_restarts(tmp_path):
    root = tmp_path / "data"
    source = _fairface_mirror(tmp_path / "mirror")
    source.fail_after = 2
    with pytest.raises(FetchError, match="download of .* failed"):
        fetch("fairface", root, source=source)
    assert not root.exists(), "a failed first fetch leaves nothing, not even the root"
    with pytest.raises(DatasetNotFoundError):
        load_dataset("fairface", root=root)
    # a run killed outright leaves its partial directory; the next run removes it
    (root / ".partial-fairface-deadbeef" / "dataset").mkdir(parents=True)
    source.fail_after = None
    fetch("fairface", root, source=source)
    assert sorted(p.name for p in root.iterdir()) == ["fairface"]
    assert len(load_dataset("fairface", root=root)) == 3


def test_offline_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    with pytest.raises(FetchError, match="cannot reach the mirror HuggingFaceM4/FairFace"):
        fetch("fairface", root, source=LocalSource(tmp_path, offline=True))
    assert not root.exists()
    root.mkdir()  # an existing root is kept, and stays empty
    monkeypatch.setattr(fetch_mod, "HFSource", lambda: LocalSource(tmp_path, offline=True))
    assert main(["utkface", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the mirror" in err and "run the same command again" in err
    assert list(root.iterdir()) == []


def test_checksum_mismatch_is_rejected(tmp_path):
    class Lying(LocalSource):
        def list_files(self, repo_id, revision):
            return [RemoteFile(f.path, f.size, "0" * 64) for f in super().list_files(repo_id, revision)]

    root = tmp_path / "data"
    _fairface_mirror(tmp_path / "mirror")
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch("fairface", root, source=Lying(tmp_path / "mirror"))
    assert not root.exists()


def test_celeba_from_parquet(tmp_path):
    repo = tmp_path / "mirror" / HF_MIRRORS["celeba"].repo_id
    feats = {"image": {"_type": "Image"}}
    def cols(n, male, rgb):
        c = {"image": _images([_jpeg(rgb)] * n), "celeb_id": list(range(n))}
        for a in CELEBA_ATTRIBUTES:
            c[a] = [a == "Male" and male] * n
        return c
    # the mirror's layout: shards under img_align+identity+attr/, named train-/valid-/test-NNNNN-of-NNNNN
    shards = repo / "img_align+identity+attr"
    _shard(shards / "train-00000-of-00019.parquet", cols(2, True, (200, 0, 0)), feats)
    _shard(shards / "valid-00000-of-00003.parquet", cols(1, False, (0, 200, 0)), feats)
    _shard(shards / "test-00000-of-00003.parquet", cols(1, True, (0, 0, 200)), feats)
    root = tmp_path / "data"
    fetch("celeba", root, source=LocalSource(tmp_path / "mirror"))
    tr, va, te = (load_dataset("celeba", s, root=root) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (2, 1, 1)
    assert list(tr.attributes["Male"]) == [1, 1] and list(va.attributes["Male"]) == [0]
    assert list(te.metadata["file"]) == ["000004.jpg"]
    assert int(tr.attributes["Young"].astype(int).sum()) == 0
    assert te[0][0][2].mean() > 0.7


def test_utkface_from_parquet_names_and_columns(tmp_path):
    repo = tmp_path / "mirror" / HF_MIRRORS["utkface"].repo_id
    _shard(repo / "data" / "train-00000-of-00001.parquet",
           {"image": _images([_jpeg((5, 5, 5))] * 3,
                             ["30_1_3_20170109142408075.jpg.chip.jpg", None, None]),
            "age": [30, 8, 50], "gender": ["female", "male", "female"],
            "race": ["indian", "black", "martian"]},
           {"image": {"_type": "Image"}})
    root = tmp_path / "data"
    fetch("utkface", root, source=LocalSource(tmp_path / "mirror"))
    ds = load_dataset("utkface", "all", root=root)
    assert len(ds) == 2  # the row with an unknown race is skipped
    got = sorted(zip(ds.metadata["age_years"], ds.attributes["gender"], ds.attributes["race"]))
    assert got == [(8, "Male", "Black"), (30, "Female", "Indian")]


def _write_cifar10(name, dest):
    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{k}" for k in range(10)]}, f)
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / fname, "wb") as f:
            pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [3]}, f)


def test_torchvision_datasets_through_injected_download(tmp_path):
    root = tmp_path / "data"
    fetch("cifar10", root, tv_download=_write_cifar10)
    assert list(load_dataset("cifar10", "test", root=root).attributes["label"]) == ["c3"]
    assert "test_batch" in " ".join(json.loads((root / "cifar10" / COMPLETE_MARKER).read_text())["files"])

    def broken(name, dest):
        (dest / "half-written").write_bytes(b"x")
        raise ConnectionError("simulated")

    with pytest.raises(FetchError, match="torchvision download failed"):
        fetch("cifar100", root, tv_download=broken)
    assert sorted(p.name for p in root.iterdir()) == ["cifar10"]


def test_existing_foreign_directory_needs_force(tmp_path):
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    with pytest.raises(FetchError, match="--force"):
        fetch("cifar10", root, tv_download=_write_cifar10)
    fetch("cifar10", root, tv_download=_write_cifar10, force=True)
    assert (root / "cifar10" / COMPLETE_MARKER).exists()
    assert sorted(p.name for p in root.iterdir()) == ["cifar10"]


def test_root_that_is_a_file_is_one_clear_line(tmp_path, capsys):
    root = tmp_path / "data.txt"
    root.write_text("not a folder")
    assert main(["cifar10", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "--root:" in err and "is a file" in err and "Traceback" not in err


def test_failed_first_fetch_leaves_no_empty_root(tmp_path):
    root = tmp_path / "new-root"

    def broken(name, dest):
        raise ConnectionError("offline (simulated)")

    with pytest.raises(FetchError):
        fetch("cifar10", root, tv_download=broken)
    assert not root.exists()
