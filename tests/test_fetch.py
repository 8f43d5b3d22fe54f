"""data_scripts.fetch on the rehearsal mirror: every source in its verified format, fetched through the
real fetch code (the local-source path) and then loaded with load_dataset; and the failure paths."""

import http.server
import io
import json
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from formats import N_PER_FILE, fetched

import data_scripts.fetch as fetch_mod
import data_scripts.sources as sources_mod
from data_scripts import rehearse
from data_scripts.convert import class_names
from data_scripts.fetch import FETCHERS, fetch, main
from data_scripts.sources import (
    COCO_FILES,
    HF_MIRRORS,
    TORCHVISION_FILES,
    FetchError,
    LocalSource,
    NetworkSource,
    RemoteFile,
    URLFile,
    http_download,
    md5_file,
)
from fairlib.data import COMPLETE_MARKER, FETCHABLE, DatasetNotFoundError, fetch_command, load_dataset
from fairlib.data.coco import gender_of_captions
from fairlib.data.loaders import UTKFACE_AGE_EDGES


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The rehearsal mirror, written once for this module."""
    return rehearse.write_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture(scope="module")
def data(mirror, tmp_path_factory):
    """Every dataset fetched from the mirror through the command line, once."""
    root = tmp_path_factory.mktemp("data")
    assert main(["all", "--root", str(root), "--source", str(mirror)]) == 0
    return root


def _manifest(root, name):
    return json.loads((root / name / COMPLETE_MARKER).read_text())


# --------------------------------------------------------------------------------------------- one list


def test_fetchers_are_fairlibs_one_list_and_coco_has_one():
    assert FETCHERS is FETCHABLE and "coco" in FETCHABLE
    assert fetch_command("coco", "/d") == "python -m data_scripts.fetch coco --root /d"
    with pytest.raises(DatasetNotFoundError, match="python -m data_scripts.fetch coco --root"):
        load_dataset("coco", root="/nonexistent-root")


def test_torchvision_files_are_torchvisions_own():
    import torchvision.datasets as tvd

    for name, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        (f,) = TORCHVISION_FILES[name]
        assert (f.url, f.name, f.md5) == (cls.url, cls.filename, cls.tgz_md5)
    fm = tvd.FashionMNIST
    assert [(f.url, f.md5) for f in TORCHVISION_FILES["fashionmnist"]] == [
        (fm.mirrors[0] + fname, md5) for fname, md5 in fm.resources]


def test_coco_files_and_categories():
    assert [f.name for f in COCO_FILES] == ["annotations_trainval2017.zip", "val2017.zip", "train2017.zip"]
    assert all(len(f.sha256) == 64 and f.size for f in COCO_FILES)
    cats = rehearse.COCO_CATEGORIES
    assert len(cats) == 80 and len({c["id"] for c in cats}) == 80 and cats[0]["name"] == "person"
    assert [c["id"] for c in cats] == sorted(c["id"] for c in cats) and cats[-1] == {
        "supercategory": "indoor", "id": 90, "name": "toothbrush"}
    by_name = {c["name"]: c["id"] for c in cats}
    assert (by_name["umbrella"], by_name["dining table"], by_name["tv"], by_name["book"]) == (28, 67, 72, 84)


# --------------------------------------------------------------------------------------------- every source


def test_mirror_is_in_the_published_formats(mirror):
    ff = mirror / "huggingface" / HF_MIRRORS["fairface"].repo_id / "0.25"
    shard = ff / "train-00000-of-00002-d405faba4f4b9b85.parquet"
    schema = pq.read_schema(shard)
    assert schema.names == ["image", "age", "gender", "race", "service_test"]
    assert str(schema.field("image").type) == "struct<bytes: binary, path: string>"
    assert str(schema.field("age").type) == "int64" and str(schema.field("service_test").type) == "bool"
    assert class_names(shard)["race"][:4] == ["East Asian", "Indian", "Black", "White"]
    ce = pq.read_schema(mirror / "huggingface/flwrlabs/celeba/img_align+identity+attr/valid-00002-of-00003.parquet")
    assert ce.names[:3] == ["image", "celeb_id", "5_o_Clock_Shadow"] and len(ce.names) == 42
    assert str(ce.field("Male").type) == "bool" and str(ce.field("celeb_id").type) == "int64"
    assert rehearse.write_mirror(mirror.parent / "again", ["utkface"]) and (
        (mirror.parent / "again/huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz").read_bytes()
        == (mirror / "huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz").read_bytes()), "seeded: the same bytes"


def test_fairface(mirror, data):
    man = _manifest(data, "fairface")
    assert sorted(man["downloads"]) == [f"0.25/{n}" for n in rehearse.FAIRFACE_SHARDS["0.25"]["train"]] + [
        f"0.25/{rehearse.FAIRFACE_SHARDS['0.25']['validation'][0]}"]
    assert not any(v["verified"] for v in man["downloads"].values()) and "local copy" in man["source"]
    tr, va = load_dataset("fairface", root=data), load_dataset("fairface", "val", root=data, size=32)
    assert (len(tr), len(va)) == (378, 126) and tr.raw_image(0).shape == (3, 224, 224)
    assert va.raw_image(0).shape == (3, 32, 32)
    assert tr.attributes.groupby(["race", "age", "gender"], observed=False).size().min() == 3
    assert va.attributes.groupby(["race", "age", "gender"], observed=False).size().min() == 1
    # the class-label integers map to the names in the shard's metadata: the first rows of the first shard
    shard = mirror / "huggingface/HuggingFaceM4/FairFace/0.25/train-00000-of-00002-d405faba4f4b9b85.parquet"
    rows = pq.read_table(shard, columns=["age", "gender", "race"]).to_pylist()[:5]
    names = class_names(shard)
    want = [(names["age"][r["age"]], names["gender"][r["gender"]], names["race"][r["race"]]) for r in rows]
    got = list(zip(*(tr.attributes[c].astype(str)[:5] for c in ("age", "gender", "race"))))
    assert got == want


def test_utkface(data):
    files = sorted(p.name for p in (data / "utkface" / "UTKFace").iterdir())
    assert len(files) == 360 and all(f.endswith(".jpg.chip.jpg") for f in files)
    assert not set(rehearse.UTKFACE_MALFORMED) & set(files), "malformed names are not extracted"
    ds = load_dataset("utkface", "all", root=data)
    assert len(ds) == 360 and ds.raw_image(0).shape == (3, 200, 200)
    assert ds.attributes.groupby(["race", "gender", "age"], observed=False).size().min() == 4
    assert ds.metadata["age_years"].max() <= 116 and len(ds.schema["age"]) == len(UTKFACE_AGE_EDGES) - 1
    man = _manifest(data, "utkface")
    assert list(man["downloads"]) == ["UTKFace.tar.gz"]


def test_celeba(mirror, data):
    tr, va, te = (load_dataset("celeba", s, root=data) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (200, 50, 50) and tr.raw_image(0).shape == (3, 218, 178)
    for ds in (tr, va, te):
        assert (ds.attributes.astype(int).nunique() == 2).all(), "every attribute takes both values"
    assert list(te.metadata["file"])[:1] == ["000251.jpg"]  # numbered train, then valid, then test
    assert len(_manifest(data, "celeba")["downloads"]) == 25
    first = pq.read_table(mirror / "huggingface/flwrlabs/celeba/img_align+identity+attr/train-00000-of-00019.parquet"
                          ).slice(0, 1).to_pylist()[0]
    assert {a: int(first[a]) for a in ("Male", "Young", "Smiling")} == {
        a: int(tr.attributes[a].iloc[0]) for a in ("Male", "Young", "Smiling")}


def test_torchvision_datasets(data):
    c10 = load_dataset("cifar10", "train", root=data)
    assert len(c10) == 100 and c10.schema["label"] == list(rehearse.CIFAR10_CLASSES)
    assert np.bincount(c10.attributes["label"].cat.codes).tolist() == [10] * 10
    c100 = load_dataset("cifar100", "test", root=data)
    assert len(c100) == 400 and np.bincount(c100.attributes["label"].cat.codes).min() == 4
    pairs = set(zip(c100.attributes["label"].astype(str), c100.attributes["coarse_label"].astype(str)))
    assert ("woman", "people") in pairs and ("maple_tree", "trees") in pairs and len(pairs) == 100
    fm = load_dataset("fashionmnist", "test", root=data)
    assert len(fm) == 100 and fm.raw_image(0).shape == (1, 28, 28)
    for name in ("cifar10", "cifar100", "fashionmnist"):
        man = _manifest(data, name)
        assert list(man["downloads"]) == [f.url for f in TORCHVISION_FILES[name]]
        assert all(not v["verified"] and len(v["md5"]) == 32 for v in man["downloads"].values())
    assert "FashionMNIST/raw/t10k-labels-idx1-ubyte" in _manifest(data, "fashionmnist")["files"]


def test_coco(data):
    files = sorted(p.name for p in (data / "coco" / "annotations").iterdir())
    assert files == ["captions_train2017.json", "captions_val2017.json", "instances_train2017.json",
                     "instances_val2017.json"], "keypoint files are skipped"
    va = load_dataset("coco", "val2017", root=data, size=None)
    tr = load_dataset("coco", "train2017", root=data, size=64)
    assert (len(va), len(tr)) == (150, 150) and len(va.attributes.columns) == 80
    assert max(va.raw_image(i).shape[2] for i in range(5)) == 640
    assert not set(va.metadata["image_id"]) & set(tr.metadata["image_id"])
    caps = json.loads((data / "coco/annotations/captions_val2017.json").read_text())
    assert len(caps["annotations"]) == 5 * 150 and {"info", "licenses", "images"} <= set(caps)
    assert gender_of_captions(["A man with a dog."]) == "man"
    has = va.attributes.astype(int)
    for concept, n in rehearse.COCO_PLAN.items():
        for g in ("man", "woman"):
            assert int(((has[concept] == 1) & (va.metadata["gender"] == g)).sum()) == n
        assert int(((has[concept] == 1) & (has["person"] == 0)).sum()) == n
    assert list(_manifest(data, "coco")["downloads"]) == [f.url for f in COCO_FILES]


def test_cli_fetches_names_and_all(mirror, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    assert main(["cifar10", "fashionmnist", "--root", str(root), "--source", str(mirror)]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["cifar10", "fashionmnist"]
    assert main(["cifar10", "--root", str(root), "--source", str(mirror)]) == 0  # already complete
    assert "already complete" in capsys.readouterr().out
    seen = []
    monkeypatch.setattr(fetch_mod, "fetch", lambda name, *a, **k: seen.append(name))
    assert main(["cifar10", "all", "--root", str(root)]) == 0
    assert seen == ["cifar10"] + [n for n in FETCHERS if n != "cifar10"]  # each once, in the order asked
    assert main(["coco", "--root", str(root), "--source", str(tmp_path / "missing")]) == 0  # fetch is replaced
    monkeypatch.undo()
    assert main(["coco", "--root", str(root), "--source", str(tmp_path / "missing")]) == 1
    assert "--source:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- failures


def test_interrupted_download_leaves_nothing_that_loads_and_restarts(mirror, tmp_path):
    root = tmp_path / "data"
    with pytest.raises(FetchError, match="download of .* failed"):
        fetch("fairface", root, source=LocalSource(mirror, fail_after=2))
    assert not root.exists(), "a failed first fetch leaves nothing, not even the root"
    with pytest.raises(DatasetNotFoundError):
        load_dataset("fairface", root=root)
    with pytest.raises(FetchError, match="download of .*val2017.zip failed"):
        fetch("coco", root, source=LocalSource(mirror, fail_after=2))
    assert not root.exists()
    # a run killed outright leaves its partial directory; the next run removes it
    (root / ".partial-fairface-deadbeef" / "dataset").mkdir(parents=True)
    source = LocalSource(mirror)
    fetch("fairface", root, source=source)
    assert sorted(p.name for p in root.iterdir()) == ["fairface"]
    assert len(load_dataset("fairface", "val", root=root)) == 126
    calls = len(source.calls)
    fetch("fairface", root, source=source)  # complete: nothing is downloaded again
    assert len(source.calls) == calls


def test_offline_is_a_clear_error_and_leaves_nothing(mirror, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    with pytest.raises(FetchError, match="cannot reach the mirror HuggingFaceM4/FairFace"):
        fetch("fairface", root, source=LocalSource(mirror, offline=True))
    with pytest.raises(FetchError, match="cannot reach https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"):
        fetch("cifar10", root, source=LocalSource(mirror, offline=True))
    assert not root.exists()
    root.mkdir()  # an existing root is kept, and stays empty
    monkeypatch.setattr(fetch_mod, "HFSource", lambda: LocalSource(mirror, offline=True))
    for name in ("utkface", "coco"):
        assert main([name, "--root", str(root)]) == 1
        err = capsys.readouterr().err
        assert "cannot reach" in err and "run the same command again" in err and "Traceback" not in err
    assert list(root.iterdir()) == []


def test_checksum_mismatch_is_rejected(mirror, tmp_path):
    class Lying(LocalSource):
        def list_files(self, repo_id, revision):
            return [RemoteFile(f.path, f.size, "0" * 64) for f in super().list_files(repo_id, revision)]

    root = tmp_path / "data"
    with pytest.raises(FetchError, match="checksum mismatch for 0.25/train-00000"):
        fetch("fairface", root, source=Lying(mirror, verify=True))
    # the miniature copies cannot match the published MD5 / sha256: a source that verifies rejects them
    with pytest.raises(FetchError, match="checksum mismatch for .*cifar-100-python.tar.gz: expected MD5 eb9058"):
        fetch("cifar100", root, source=LocalSource(mirror, verify=True))
    with pytest.raises(FetchError, match="annotations_trainval2017.zip: expected sha256 113a836d"):
        fetch("coco", root, source=LocalSource(mirror, verify=True))
    assert not root.exists()


def _evil_mirror(base: Path, kind: str, member: str) -> Path:
    jpeg = b"\xff\xd8\xff" + b"0" * 20
    if kind == "utkface":
        rehearse._write_targz(base / "huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz",
                              [("UTKFace/20_0_0_20170101000000001.jpg.chip.jpg", jpeg), (member, jpeg)])
    elif kind == "cifar10":
        rehearse._write_targz(base / TORCHVISION_FILES["cifar10"][0].mirror_path,
                              [("cifar-10-batches-py/test_batch", b"x"), (member, b"x")])
    else:
        rehearse._write_zip(base / COCO_FILES[0].mirror_path, [("annotations/captions_val2017.json", b"{}"),
                                                                (member, b"{}")], deflate=True)
    return base


@pytest.mark.parametrize("kind,member", [
    ("utkface", "../../evil_20_0_0_20170101000000002.jpg"),
    ("utkface", "/tmp/20_0_0_20170101000000003.jpg.chip.jpg"),
    ("cifar10", "cifar-10-batches-py/../../evil"),
    ("coco", "../annotations/instances_val2017.json"),
])
def test_path_traversal_in_an_archive_is_refused(tmp_path, kind, member):
    source = _evil_mirror(tmp_path / "src", kind, member)
    root = tmp_path / "deep" / "data"
    with pytest.raises(FetchError, match="unsafe member"):
        fetch(kind, root, source=source)
    assert not root.exists() and not list(tmp_path.rglob("evil*"))
    assert not (Path("/tmp") / "20_0_0_20170101000000003.jpg.chip.jpg").exists()


def test_links_in_a_tar_are_refused(tmp_path):
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("UTKFace/20_0_0_20170101000000001.jpg.chip.jpg")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    path = tmp_path / "m/huggingface/py97/UTKFace-Cropped/UTKFace.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(rehearse._gzip_bytes(buf.getvalue()))
    with pytest.raises(FetchError, match="is a link"):
        fetch("utkface", tmp_path / "data", source=tmp_path / "m")


def test_existing_foreign_directory_needs_force(mirror, tmp_path):
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    with pytest.raises(FetchError, match="--force"):
        fetch("cifar10", root, source=mirror)
    fetch("cifar10", root, source=mirror, force=True)
    assert (root / "cifar10" / COMPLETE_MARKER).exists()
    assert sorted(p.name for p in root.iterdir()) == ["cifar10"]


def test_root_that_is_a_file_is_one_clear_line(tmp_path, capsys):
    root = tmp_path / "data.txt"
    root.write_text("not a folder")
    assert main(["cifar10", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "--root:" in err and "is a file" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------- HTTP


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` with Range support; the first answer of a path in ``drop`` stops half-way."""

    files: dict = {}
    drop: set = set()

    def do_GET(self):  # noqa: N802 (http.server's name)
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.path in self.drop:
            self.drop.discard(self.path)
            self.wfile.write(data[start:len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_network_source_downloads_resumes_and_verifies(mirror, server, tmp_path, monkeypatch):
    """The real download code against a server on this machine: cifar10 through NetworkSource, with a
    dropped connection resumed and the MD5 checked (the published one replaced by the copy's)."""
    monkeypatch.setattr(sources_mod, "RETRY_BACKOFF_S", 0.0)
    archive = mirror / TORCHVISION_FILES["cifar10"][0].mirror_path
    _Files.files = {"/cifar-10-python.tar.gz": archive.read_bytes()}
    _Files.drop = {"/cifar-10-python.tar.gz"}
    local = URLFile(f"{server}/cifar-10-python.tar.gz", "torchvision/cifar-10-python.tar.gz", None,
                    md5=md5_file(archive))
    monkeypatch.setitem(fetch_mod.TORCHVISION_FILES, "cifar10", (local,))
    fetch("cifar10", tmp_path / "data", source=NetworkSource(timeout=5))
    entry = _manifest(tmp_path / "data", "cifar10")["downloads"][local.url]
    assert entry["verified"] and entry["size"] == archive.stat().st_size and not _Files.drop
    assert len(load_dataset("cifar10", "test", root=tmp_path / "data")) == 100
    with pytest.raises(Exception, match="404"):
        http_download(f"{server}/missing", tmp_path / "x")


def test_formats_fetched_is_the_fetch_path(tmp_path):
    """tests/formats.fetched (used by other test modules): small torchvision sources, fetched from a mirror."""
    fetched(tmp_path, "cifar100")
    ds = load_dataset("cifar100", "train", root=tmp_path)
    assert ds.attributes["label"].cat.codes.tolist() == list(range(N_PER_FILE))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar100"]


def test_ensure_fetches_only_what_is_missing_and_says_the_size(mirror, tmp_path, monkeypatch, capsys):
    from data_scripts.fetch import DOWNLOAD_GB, FETCHERS, ensure

    assert set(DOWNLOAD_GB) == set(FETCHERS), "every fetchable dataset has its download size"
    monkeypatch.setenv("FAIRLIB_FETCH_SOURCE", str(mirror))
    (first,) = ensure(["utkface"], tmp_path)
    out = capsys.readouterr().out
    assert "utkface: not in" in out and f"downloading about {DOWNLOAD_GB['utkface']:g} GB" in out
    assert (first / ".complete").exists()
    stamp = (first / ".complete").stat().st_mtime_ns
    ensure(["utkface"], tmp_path)
    assert "utkface: complete in" in capsys.readouterr().out
    assert (first / ".complete").stat().st_mtime_ns == stamp, "a complete copy is not fetched again"
    assert len(load_dataset("utkface", "all", root=tmp_path)) > 0
    with pytest.raises(ValueError, match="names: expected a list of dataset names, got one string"):
        ensure("utkface", tmp_path)
    with pytest.raises(ValueError, match="cannot fetch \\['imagenet'\\]; choose from fairface"):
        ensure(["imagenet"], tmp_path)
