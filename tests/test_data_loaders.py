"""Each real loader on small files written in that dataset's real on-disk format."""

import gzip
import pickle
import struct

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fairlib.data import DatasetNotFoundError, load_dataset


def _solid_jpg(path, rgb, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, quality=95)


def test_cifar10_pickled_batches(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"class{k}" for k in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    for k, fname in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = np.zeros((2, 3072), np.uint8)
        data[0, 0] = 10 + k          # R plane, pixel (0, 0)
        data[0, 1024 + 33] = 200     # G plane, pixel (1, 1)
        with open(folder / fname, "wb") as f:
            pickle.dump({"data": data, "labels": [k % 10, 9]}, f)
    tr = load_dataset("cifar10", root=tmp_path, transform=lambda x: x)
    te = load_dataset("cifar10", "test", root=tmp_path, transform=lambda x: x)
    assert len(tr) == 10 and len(te) == 2
    assert tr.schema == {"label": names}
    assert list(tr.attributes["label"]) == ["class0", "class9", "class1", "class9", "class2",
                                            "class9", "class3", "class9", "class4", "class9"]
    img, row = te[0]
    assert img.shape == (3, 32, 32) and img[0, 0, 0] == 15 and img[1, 1, 1] == 200
    assert row == {"label": 5}


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"f{k}" for k in range(100)],
                     "coarse_label_names": [f"c{k}" for k in range(20)]}, f)
    for split, n in (("train", 3), ("test", 2)):
        with open(folder / split, "wb") as f:
            pickle.dump({"data": np.full((n, 3072), 7, np.uint8),
                         "fine_labels": list(range(n)), "coarse_labels": [19] * n}, f)
    ds = load_dataset("cifar100", "train", root=tmp_path)
    assert len(ds) == 3
    assert list(ds.attributes["label"]) == ["f0", "f1", "f2"]
    assert set(ds.attributes["coarse_label"]) == {"c19"}
    assert len(ds.schema["label"]) == 100 and len(ds.schema["coarse_label"]) == 20
    img, _ = ds[1]
    assert img.shape == (3, 32, 32) and torch.allclose(img, torch.full_like(img, 7 / 255))
    with pytest.raises(ValueError, match="^split:"):
        load_dataset("cifar100", "val", root=tmp_path)


def _idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashionmnist_idx_files(tmp_path):
    raw = tmp_path / "fashionmnist" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.zeros((3, 28, 28), np.uint8)
    imgs[2, 5, 7] = 255
    _idx(raw / "train-images-idx3-ubyte.gz", imgs, gz=True)
    _idx(raw / "train-labels-idx1-ubyte.gz", np.array([0, 9, 4]), gz=True)
    _idx(raw / "t10k-images-idx3-ubyte", imgs[:1], gz=False)
    _idx(raw / "t10k-labels-idx1-ubyte", np.array([8]), gz=False)
    ds = load_dataset("fashionmnist", root=tmp_path)
    assert list(ds.attributes["label"]) == ["T-shirt/top", "Ankle boot", "Coat"]
    img, row = ds[2]
    assert img.shape == (1, 28, 28) and img[0, 5, 7] == 1.0 and img.sum() == 1.0
    assert row == {"label": 4}
    te = load_dataset("fashionmnist", "test", root=tmp_path)
    assert list(te.attributes["label"]) == ["Bag"]


def test_fairface_csv_and_images(tmp_path):
    d = tmp_path / "fairface"
    rows = [("train/1.jpg", "20-29", "Male", "East Asian", (250, 0, 0)),
            ("train/2.jpg", "more than 70", "Female", "Middle Eastern", (0, 0, 250))]
    for f, *_, rgb in rows:
        _solid_jpg(d / f, rgb)
    pd.DataFrame([r[:4] + (True,) for r in rows],
                 columns=["file", "age", "gender", "race", "service_test"]).to_csv(
        d / "fairface_label_train.csv", index=False)
    pd.DataFrame([rows[0][:4] + (False,)],
                 columns=["file", "age", "gender", "race", "service_test"]).to_csv(
        d / "fairface_label_val.csv", index=False)
    ds = load_dataset("fairface", root=tmp_path, transform=lambda x: x)
    assert list(ds.attributes["age"]) == ["20-29", "more than 70"]
    assert ds.schema["race"] == ["White", "Black", "Latino_Hispanic", "East Asian",
                                 "Southeast Asian", "Indian", "Middle Eastern"]
    assert len(ds.schema["age"]) == 9 and ds.schema["gender"] == ["Male", "Female"]
    img, row = ds[1]
    assert img.shape == (3, 24, 20) and img.dtype == torch.uint8
    assert img[2].float().mean() > 240 and img[0].float().mean() < 10
    assert row == {"age": 8, "gender": 1, "race": 6}
    small = load_dataset("fairface", "validation", root=tmp_path, size=8)
    assert len(small) == 1 and small[0][0].shape == (3, 8, 8)
    pd.DataFrame([("train/1.jpg", "20-29", "Robot", "White")],
                 columns=["file", "age", "gender", "race"]).to_csv(
        d / "fairface_label_val.csv", index=False)
    with pytest.raises(ValueError, match="Robot"):
        load_dataset("fairface", "val", root=tmp_path)


def test_utkface_labels_from_file_names(tmp_path):
    d = tmp_path / "utkface" / "UTKFace"
    good = ["25_0_2_20170116174525125.jpg.chip.jpg", "1_1_4_20161221193016140.jpg",
            "75_1_0_20170110122645498.jpg"]
    bad = ["39_1_20170116174525125.jpg.chip.jpg", "61_3_1_20170109150557335.jpg", "x.jpg"]
    for f in good + bad:
        _solid_jpg(d / f, (0, 128, 0))
    ds = load_dataset("utkface", "all", root=tmp_path)
    assert len(ds) == 3  # malformed names skipped
    by_file = dict(zip(ds.metadata["file"], ds.attributes.itertuples(index=False)))
    r = by_file["UTKFace/" + good[0]]
    assert (r.age, r.gender, r.race) == ("20-29", "Male", "Asian")
    r = by_file["UTKFace/" + good[1]]
    assert (r.age, r.gender, r.race) == ("0-2", "Female", "Others")
    r = by_file["UTKFace/" + good[2]]
    assert (r.age, r.gender, r.race) == ("more than 70", "Female", "White")
    assert sorted(ds.metadata["age_years"]) == [1, 25, 75]
    tr = load_dataset("utkface", "train", root=tmp_path)
    te = load_dataset("utkface", "test", root=tmp_path)
    assert len(tr) + len(te) == 3 and len(te) == 1
    assert not set(tr.metadata["file"]) & set(te.metadata["file"])


def test_celeba_text_files(tmp_path):
    from data_scripts.convert import CELEBA_ATTRIBUTES

    d = tmp_path / "celeba"
    files = ["000001.jpg", "000002.jpg", "000003.jpg"]
    vals = -np.ones((3, 40), int)
    vals[0, CELEBA_ATTRIBUTES.index("Male")] = 1
    vals[2, CELEBA_ATTRIBUTES.index("Young")] = 1
    lines = ["3", " ".join(CELEBA_ATTRIBUTES)]
    lines += [f + "  " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, vals)]
    d.mkdir()
    (d / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (d / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 0\n")
    for f in files:
        _solid_jpg(d / "img_align_celeba" / f, (90, 90, 90), size=(178, 218))
    tr = load_dataset("celeba", root=tmp_path)
    va = load_dataset("celeba", "valid", root=tmp_path)
    assert len(tr) == 2 and len(va) == 1 and list(tr.metadata["file"]) == [files[0], files[2]]
    assert list(tr.attributes.columns) == list(CELEBA_ATTRIBUTES)
    assert tr.schema["Male"] == [0, 1]
    assert list(tr.attributes["Male"]) == [1, 0] and list(tr.attributes["Young"]) == [0, 1]
    assert int(tr.attributes.to_numpy().astype(int).sum()) == 2
    img, row = tr[0]
    assert img.shape == (3, 218, 178) and row["Male"] == 1 and row["Young"] == 0
    with pytest.raises(DatasetNotFoundError):
        load_dataset("celeba", root=tmp_path / "elsewhere")


def test_celeba_fit_crop_keeps_the_aspect_and_the_centre(tmp_path):
    from PIL import Image

    from data_scripts.convert import CELEBA_ATTRIBUTES

    d = tmp_path / "celeba"
    (d / "img_align_celeba").mkdir(parents=True)
    (d / "list_attr_celeba.txt").write_text("1\n" + " ".join(CELEBA_ATTRIBUTES) + "\n000001.jpg "
                                            + " ".join(["-1"] * 40) + "\n")
    (d / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    # 178 x 218 (CelebA's aligned crops): 20 red rows at the top and bottom, a white centre column
    arr = np.zeros((218, 178, 3), np.uint8)
    arr[:20, :, 0] = arr[-20:, :, 0] = 255
    arr[:, 84:94] = 255
    Image.fromarray(arr).save(d / "img_align_celeba" / "000001.jpg", quality=100)
    raw = {"transform": lambda x: x}  # uint8, as the cache stores it
    crop = load_dataset("celeba", root=tmp_path, size=89, fit="crop", **raw)[0][0].float()
    stretch = load_dataset("celeba", root=tmp_path, size=89, **raw)[0][0].float()
    assert crop.shape == stretch.shape == (3, 89, 89)
    # the centre 178 x 178 square at half scale: the red bands (rows 0-19 and 198-217) are cut away
    assert crop[0, :3].mean() < 40 and crop[0, -3:].mean() < 40
    assert stretch[0, :3].mean() > 200, "stretching keeps the bands, squeezed"
    # the white column stays 5 px wide at the centre (42-46 of 89): the width scales by exactly 1/2
    assert crop[1, 44, 43:46].min() > 200 and crop[1, 44, 36:39].max() < 40
    with pytest.raises(ValueError, match="fit: expected one of"):
        load_dataset("celeba", root=tmp_path, size=89, fit="squash")
