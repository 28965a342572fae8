"""Dataset uploads through the real app: every format, and every bad input gets a clear 4xx and
leaves no row and no file behind."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.api.main import create_app
from app.core import bootstrap
from app.core.settings import Settings

MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
UPLOAD_LIMIT = 4 * 1024 * 1024
UNCOMPRESSED_LIMIT = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    s = Settings(data_dir=tmp_path_factory.mktemp("kiln-ds"), max_upload_bytes=UPLOAD_LIMIT, max_zip_entries=500,
                 max_uncompressed_bytes=UNCOMPRESSED_LIMIT)
    bootstrap.prepare(s)
    return s


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


# --- building files -------------------------------------------------------------------------------


def npz_bytes(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def idx_bytes(array: np.ndarray, gz: bool = True, code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    return gzip.compress(raw) if gz else raw


def png_bytes(value: int, size=(10, 12), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color=(value, 255 - value, 40) if mode == "RGB" else value).save(out, format="PNG")
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def images(n=40, classes=4, shape=(8, 8), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.arange(n) % classes


def upload(client, auth, fmt, files, name="ds", options=None):
    data = {"name": name, "format": fmt} | ({"options": json.dumps(options)} if options is not None else {})
    return client.post("/v1/datasets", data=data, files=[("file", f) for f in files], headers=auth)


def nothing_left(client, auth, settings):
    assert client.get("/v1/datasets", headers=auth).json()["items"] == []
    folder = settings.artifacts_dir / "datasets"
    assert not folder.exists() or [p.name for p in folder.iterdir()] == []


def bad(r, status=422, *words):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    for word in words:
        assert word in err["message"], err["message"]
    return err


# --- good uploads -------------------------------------------------------------------------------


def test_npz_images_upload_describes_the_dataset_and_round_trips(client, auth, settings):
    x, y = images()
    x_test, y_test = images(12, seed=1)
    r = upload(client, auth, "npz", [("digits.npz", npz_bytes(x=x, y=y, x_test=x_test, y_test=y_test))])
    assert r.status_code == 201, r.text
    ds = r.json()
    assert r.headers["location"] == f"/v1/datasets/{ds['id']}"
    assert ds | {"id": None, "created_at": None, "sha256": None, "size_bytes": None} == {
        "id": None, "name": "ds", "format": "npz", "kind": "image", "task": "classification",
        "num_samples": 40, "num_test_samples": 12, "sample_shape": [8, 8], "dtype": "uint8",
        "num_classes": 4, "class_names": ["0", "1", "2", "3"], "class_counts": [10, 10, 10, 10],
        "stats": {"mean": [round(float(x.mean()), 6)], "std": [round(float(x.std()), 6)]}, "details": {},
        "created_at": None, "sha256": None, "size_bytes": None,
    }
    assert len(ds["sha256"]) == 64 and ds["size_bytes"] > x.nbytes
    assert client.get(f"/v1/datasets/{ds['id']}", headers=auth).json() == ds
    assert [d["id"] for d in client.get("/v1/datasets", headers=auth).json()["items"]] == [ds["id"]]
    stored = np.load(settings.artifacts_dir / "datasets" / ds["id"] / "train_x.npy")
    np.testing.assert_array_equal(stored, x)

    preview = client.get(f"/v1/datasets/{ds['id']}/preview", params={"n": 9}, headers=auth)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(preview.content)).size[0] > 0

    assert client.delete(f"/v1/datasets/{ds['id']}", headers=auth).status_code == 204
    assert client.get(f"/v1/datasets/{ds['id']}", headers=auth).status_code == 404
    nothing_left(client, auth, settings)


def test_string_labels_in_npz_become_sorted_classes(client, auth):
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    y = np.array(["setosa", "virginica", "versicolor"] * 4)
    ds = upload(client, auth, "npz", [("t.npz", npz_bytes(x=x, y=y))]).json()
    assert ds["kind"] == "tabular" and ds["class_names"] == ["setosa", "versicolor", "virginica"]
    assert ds["class_counts"] == [4, 4, 4] and len(ds["stats"]["mean"]) == 3


def test_csv_with_a_named_label_column(client, auth):
    rows = ["f1,f2,species,f3"] + [f"{i},{i * 0.5},{'ab'[i % 2]},{-i}" for i in range(10)]
    r = upload(client, auth, "csv", [("t.csv", "\n".join(rows).encode())], options={"label_column": "species"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["kind"] == "tabular" and ds["sample_shape"] == [3] and ds["dtype"] == "float32"
    assert ds["class_names"] == ["a", "b"] and ds["details"]["feature_names"] == ["f1", "f2", "f3"]
    preview = client.get(f"/v1/datasets/{ds['id']}/preview", params={"n": 2}, headers=auth).json()
    assert preview == {"samples": [[0.0, 0.0, 0.0], [1.0, 0.5, -1.0]], "labels": ["a", "b"], "columns": ["f1", "f2", "f3"]}


def test_idx_pairs_are_told_apart_by_header_and_name(client, auth):
    x, y = images(30, classes=3, shape=(6, 5))
    xt, yt = images(9, classes=3, shape=(6, 5), seed=2)
    files = [("lbl-train.gz", idx_bytes(y)), ("img-train.gz", idx_bytes(x)), ("t10k-lbl", idx_bytes(yt, gz=False)), ("test-img.gz", idx_bytes(xt))]
    ds = upload(client, auth, "idx", files).json()
    assert (ds["num_samples"], ds["num_test_samples"], ds["sample_shape"], ds["class_counts"]) == (30, 9, [6, 5], [10, 10, 10])


@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/datasets/mnist")
def test_real_mnist_test_files_parse_as_published(client, auth):
    # Sent under training names: the test pair alone would be a dataset with no training split.
    files = [("train-images.gz", (MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()),
             ("train-labels.gz", (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())]
    ds = upload(client, auth, "idx", files).json()
    assert ds["num_samples"] == 10_000 and ds["sample_shape"] == [28, 28]
    assert ds["class_counts"] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(ds["stats"]["mean"][0] / 255 - 0.132515) < 1e-5


def test_image_zip_with_class_folders_is_resized_and_converted(client, auth, settings):
    entries = {f"pets/{cls}/{i}.png": png_bytes(10 * i + (100 if cls == "dog" else 0)) for cls in ("cat", "dog") for i in range(3)}
    entries["pets/dog/extra.jpg"] = (lambda b: (Image.new("RGB", (20, 20), (1, 2, 3)).save(b, format="JPEG"), b.getvalue())[1])(io.BytesIO())
    r = upload(client, auth, "image-zip", [("pets.zip", zip_bytes(entries))], options={"size": [16, 16], "channels": 1})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["sample_shape"] == [1, 16, 16] and ds["class_names"] == ["cat", "dog"] and ds["class_counts"] == [3, 4]
    assert ds["details"] == {"resized_to": [16, 16], "channels": 1}


def test_sequences_npz(client, auth):
    x = np.zeros((10, 7), dtype=np.int64)
    x[:, :3] = np.arange(1, 4)
    r = upload(client, auth, "sequences", [("s.npz", npz_bytes(x=x, lengths=np.full(10, 3), y=np.arange(10) % 2))])
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["kind"] == "sequence" and ds["details"] == {"vocab_size": 4, "max_length": 7}


# --- bad input: a clear 4xx naming the file and what is wrong; nothing left behind ---------------


@pytest.fixture
def clean(client, new_key, settings):
    """A fresh tenant with no datasets; checks after the test that nothing was left."""
    auth = new_key()
    before = set((settings.artifacts_dir / "datasets").iterdir()) if (settings.artifacts_dir / "datasets").exists() else set()
    yield auth
    assert client.get("/v1/datasets", headers=auth).json()["items"] == []
    after = set((settings.artifacts_dir / "datasets").iterdir()) if (settings.artifacts_dir / "datasets").exists() else set()
    assert after == before, f"left behind: {after - before}"


def test_over_the_size_limit_is_413(client, clean):
    big = np.zeros(UPLOAD_LIMIT, dtype=np.uint8)
    bad(upload(client, clean, "npz", [("big.npz", big.tobytes())]), 413, "limit")


def test_zip_bomb_is_refused_by_its_compression_ratio(client, clean):
    bomb = zip_bytes({"c/a.png": b"\0" * (10 * 1024 * 1024)})  # ~1000x, under the total size limit
    bad(upload(client, clean, "image-zip", [("bomb.zip", bomb)]), 413, "bomb.zip", "ZIP bomb")


def test_zip_expanding_past_the_total_size_limit_is_413(client, clean):
    # Each entry compresses only ~30x (under the ratio limit); together they pass 16 MiB.
    rng = np.random.default_rng(0)
    block = lambda: b"".join(rng.integers(0, 256, 40, dtype=np.uint8).tobytes() + bytes(984) for _ in range(1024))  # noqa: E731
    archive = zip_bytes({f"c{i % 2}/{i}.png": block() for i in range(18)})
    assert len(archive) < UPLOAD_LIMIT
    bad(upload(client, clean, "image-zip", [("big.zip", archive)]), 413, "big.zip", "uncompressed size over the limit")


def test_zip_with_too_many_entries_is_413(client, clean):
    many = zip_bytes({f"c{i % 2}/{i}.png": b"x" for i in range(501)}, compression=zipfile.ZIP_STORED)
    bad(upload(client, clean, "image-zip", [("many.zip", many)]), 413, "501 entries")


@pytest.mark.parametrize("path", ["../evil/a.png", "/etc/a.png", "a/../../b.png", "c:/x/a.png"])
def test_zip_entries_with_absolute_paths_or_dotdot_are_refused(client, clean, path):
    archive = zip_bytes({"cat/1.png": png_bytes(1), "cat/2.png": png_bytes(2), path: png_bytes(3)})
    bad(upload(client, clean, "image-zip", [("x.zip", archive)]), 422, "x.zip", "absolute path or '..'")


def test_an_image_that_is_not_an_image(client, clean):
    archive = zip_bytes({"cat/1.png": png_bytes(1), "cat/2.png": b"not a png at all", "dog/1.png": png_bytes(5), "dog/2.png": png_bytes(6)})
    bad(upload(client, clean, "image-zip", [("x.zip", archive)]), 422, "cat/2.png", "not a readable image")


def test_corrupt_and_truncated_files(client, clean):
    x, y = images()
    good = npz_bytes(x=x, y=y)
    bad(upload(client, clean, "npz", [("cut.npz", good[: len(good) // 2])]), 422, "cut.npz")
    bad(upload(client, clean, "npz", [("junk.npz", b"PK\x03\x04 garbage")]), 422, "junk.npz")
    images_gz = idx_bytes(x)
    bad(upload(client, clean, "idx", [("train-img.gz", images_gz[:-20]), ("train-lbl.gz", idx_bytes(y))]), 422, "train-img.gz")
    raw = idx_bytes(x, gz=False)
    bad(upload(client, clean, "idx", [("train-img", raw[:-7]), ("train-lbl", idx_bytes(y))]), 422, "train-img", "truncated")


def test_wrong_idx_magic(client, clean):
    x, y = images()
    wrong = b"\x12\x34" + idx_bytes(x, gz=False)[2:]
    err = bad(upload(client, clean, "idx", [("train-img", wrong), ("train-lbl", idx_bytes(y))]), 422, "train-img", "magic")
    # What was found, and what MNIST's two files have, each written whole.
    assert "0x12340803" in err["message"] and "0x00000801 (labels)" in err["message"] and "0x00000803 (images)" in err["message"]


def test_images_and_labels_of_different_lengths(client, clean):
    x, y = images(40)
    bad(upload(client, clean, "idx", [("train-img.gz", idx_bytes(x)), ("train-lbl.gz", idx_bytes(y[:39]))]), 422, "40 images", "39 labels")
    bad(upload(client, clean, "npz", [("a.npz", npz_bytes(x=x, y=y[:30]))]), 422, "a.npz", "40 samples", "30 labels")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_values(client, clean, value):
    x = np.ones((20, 4), dtype=np.float32)
    x[13, 2] = value
    bad(upload(client, clean, "npz", [("f.npz", npz_bytes(x=x, y=np.arange(20) % 2))]), 422, "f.npz", "sample 13", "NaN or infinity")
    rows = ["a,b,label"] + [f"1,{'nan' if i == 3 and value != value else 2},x{i % 2}" for i in range(6)]
    if value != value:
        bad(upload(client, clean, "csv", [("f.csv", "\n".join(rows).encode())]), 422, "f.csv", "row 5", "'b'")


def test_labels_out_of_range_and_classes_too_small(client, clean):
    x, _ = images(20)
    bad(upload(client, clean, "npz", [("neg.npz", npz_bytes(x=x, y=np.r_[np.arange(19) % 2, -1]))]), 422, "neg.npz", "label -1")
    y_test = np.array([0, 1, 5])
    bad(upload(client, clean, "npz", [("t.npz", npz_bytes(x=x, y=np.arange(20) % 2, x_test=x[:3], y_test=y_test))]), 422, "label 5", "test split")
    bad(upload(client, clean, "npz", [("one.npz", npz_bytes(x=x, y=np.r_[np.zeros(19, int), 1]))]), 422, "class '1'", "at least 2")
    bad(upload(client, clean, "npz", [("fl.npz", npz_bytes(x=x, y=np.linspace(0, 1, 20)))]), 422, "integers")


def test_csv_cells_name_row_and_column(client, clean):
    bad(upload(client, clean, "csv", [("c.csv", b"a,b,label\n1,2,x\n3,,y\n")]), 422, "c.csv", "row 3", "'b'", "missing value")
    bad(upload(client, clean, "csv", [("c.csv", b"a,b,label\n1,2,x\n3,seven,y\n")]), 422, "row 3", "'b'", "not a number")
    bad(upload(client, clean, "csv", [("c.csv", b"a,b,class\n1,2,x\n")]), 422, "no label column 'label'")
    bad(upload(client, clean, "csv", [("c.csv", b"a,b,label\n1,2\n")]), 422, "row 2 has 2 cells")
    bad(upload(client, clean, "csv", [("c.csv", b"\xff\xfe\x00bad")]), 422, "UTF-8")


def test_unknown_format_and_bad_options(client, clean):
    x, y = images()
    err = bad(upload(client, clean, "parquet", [("a.parquet", b"PAR1")]), 422, "unknown format 'parquet'")
    assert err["details"][0]["loc"] == ["body", "format"]
    r = client.post("/v1/datasets", data={"name": "x", "format": "npz", "options": "{nope"}, files=[("file", ("a.npz", npz_bytes(x=x, y=y)))], headers=clean)
    bad(r, 422, "options")
    bad(client.post("/v1/datasets", data={"name": "x", "format": "npz"}, headers=clean), 422)


def test_pickled_object_arrays_are_refused(client, clean):
    out = io.BytesIO()
    np.savez(out, x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    bad(upload(client, clean, "npz", [("p.npz", out.getvalue())]), 422, "p.npz", "no pickle")


def test_datasets_are_tenant_scoped(client, new_key):
    alice, bob = new_key(), new_key()
    x, y = images()
    ds = upload(client, alice, "npz", [("a.npz", npz_bytes(x=x, y=y))]).json()
    for call in (client.get, client.delete):
        assert call(f"/v1/datasets/{ds['id']}", headers=bob).status_code == 404
    assert client.get(f"/v1/datasets/{ds['id']}/preview", headers=bob).status_code == 404
    assert client.get("/v1/datasets", headers=bob).json()["items"] == []
    job = {"name": "j", "model": {"architecture": "mlp"}, "data": {"dataset": ds["id"]}}
    err = bad(client.post("/v1/jobs", json=job, headers=bob), 422, "unknown dataset")
    assert err["details"][0]["loc"] == ["body", "data", "dataset"]
    assert client.post("/v1/jobs", json=job, headers=alice).status_code == 201


def test_a_dataset_in_use_cannot_be_deleted(client, auth):
    x, y = images()
    ds = upload(client, auth, "npz", [("a.npz", npz_bytes(x=x, y=y))]).json()
    spec = {"name": "j", "model": {"architecture": "lenet5"}, "data": {"dataset": ds["id"], "validation_fraction": 0.2}}
    job = client.post("/v1/jobs", json=spec, headers=auth).json()
    bad(client.delete(f"/v1/datasets/{ds['id']}", headers=auth), 409, job["id"])
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=auth).status_code == 204


def test_jobs_check_what_they_ask_of_a_dataset(client, auth):
    x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)
    tab = upload(client, auth, "npz", [("t.npz", npz_bytes(x=x, y=np.arange(30) % 3))]).json()
    unlabelled = upload(client, auth, "npz", [("u.npz", npz_bytes(x=x))]).json()
    assert unlabelled["task"] == "unlabelled"
    job = lambda ds, **kw: {"name": "j", "model": {"architecture": kw.pop("arch", "mlp")}, "data": {"dataset": ds}, **kw}  # noqa: E731
    bad(client.post("/v1/jobs", json=job(unlabelled["id"]), headers=auth), 422, "no labels")
    bad(client.post("/v1/jobs", json=job(tab["id"], arch="lenet5"), headers=auth), 422, "images")
    err = bad(client.post("/v1/jobs", json=job(tab["id"], training={"augmentation": {"horizontal_flip": True}}), headers=auth), 422, "augmentation")
    assert err["details"][0]["loc"] == ["body", "training", "augmentation"]
    err = bad(client.post("/v1/jobs", json=job(tab["id"], data={"dataset": tab["id"], "validation_fraction": 0.05}), headers=auth), 422, "validation_fraction")
    assert client.post("/v1/jobs", json=job(tab["id"]), headers=auth).status_code == 201


def test_uploads_that_made_server_errors_are_422s_naming_the_problem(client, clean):
    """Each of these answered 500 once; the fuzzer (and a reader of the code) found them."""
    pngs = {f"{c}/{i}.png": png_bytes(40 * i) for c in "ab" for i in (1, 2)}
    bad(upload(client, clean, "image-zip", [("i.zip", zip_bytes(pngs))], options={"channels": 1.0}), 422, "channels")
    bad(upload(client, clean, "image-zip", [("i.zip", zip_bytes(pngs))], options={"channels": True}), 422, "channels")
    bad(upload(client, clean, "csv", [("d.csv", b"label,a,label\n1,2,3\n0,1,2\n1,3,4\n0,5,6\n")]), 422, "d.csv", "label")
    words = np.array([[["a", "b"]] * 3] * 4)  # 3-D strings
    bad(upload(client, clean, "sequences", [("s.npz", npz_bytes(x=words, y=np.arange(4) % 2, lengths=np.full(4, 3)))]), 422, "s.npz", "x")
    ids = np.ones((4, 3), dtype=np.int64)
    bad(upload(client, clean, "sequences", [("s.npz", npz_bytes(x=ids, y=np.arange(4) % 2, lengths=np.array(["3"] * 4)))]), 422, "lengths")
    bad(upload(client, clean, "sequences", [("s.npz", npz_bytes(x=ids, y=np.arange(4) % 2, lengths=np.full(4, 3.5)))]), 422, "lengths")


# --- bounded work: no upload, however small, holds a thread or memory -------------------------------


def npy_member(header: dict, data: bytes = b"") -> bytes:
    """A .npy file with any header at all (np.save would refuse some of these)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + data


@pytest.mark.timeout(30)
def test_an_array_of_zero_bytes_and_two_to_the_62_rows_is_refused_at_once(client, clean):
    """196 bytes that passed every byte limit, then held an API thread for ~2^42 empty reads."""
    member = npy_member({"descr": "<f4", "fortran_order": False, "shape": (2**62, 0)})
    archive = zip_bytes({"x.npy": member, "y.npy": np.lib.format.header_data_from_array_1_0 and npy_member(
        {"descr": "<i8", "fortran_order": False, "shape": (0,)})})
    bad(upload(client, clean, "npz", [("z.npz", archive)]), 422, "z.npz", "dimension")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fmt", ["npz", "idx"])
def test_a_label_of_two_to_the_62_is_refused_before_classes_are_named(client, clean, fmt):
    x = np.zeros((3, 4, 4), dtype=np.uint8)
    if fmt == "npz":
        files = [("big.npz", npz_bytes(x=x, y=np.array([0, 1, 2**62])))]
    else:
        labels = struct.pack(">HBB", 0, 0x0C, 1) + struct.pack(">I", 3) + np.array([0, 1, 2**30], dtype=">i4").tobytes()
        files = [("train-images.idx", idx_bytes(x, gz=False)), ("train-labels.idx", labels)]
    bad(upload(client, clean, fmt, files), 422, "KILN_MAX_CLASSES")


@pytest.mark.timeout(30)
def test_an_idx_header_promising_gigabytes_is_refused_before_reading(client, clean):
    """A few bytes declaring one 46340x46340 image: the read it asks for is refused up front."""
    header = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 1, 46340, 46340)
    labels = struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 1) + b"\0"
    err = bad(upload(client, clean, "idx", [("train-images.gz", gzip.compress(header + bytes(1024))), ("train-labels", labels)]), 413,
              "KILN_MAX_SAMPLE_ELEMENTS")
    assert "46340" in err["message"]


@pytest.mark.timeout(60)
def test_a_gzip_bomb_in_idx_is_refused_by_its_compression_ratio(client, clean):
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb") as gz:
        gz.write(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 15_000, 28, 28))
        for _ in range(11):
            gz.write(bytes(1024 * 1024))  # zeros: ~1000x smaller compressed
    labels = struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 15_000) + bytes(15_000)
    bad(upload(client, clean, "idx", [("train-images.gz", compressed.getvalue()), ("train-labels", labels)]), 413,
        "KILN_MAX_COMPRESSION_RATIO")


def test_a_csv_with_more_columns_than_allowed_is_refused_from_its_header(client, clean):
    header = ",".join(["label"] + [f"f{i}" for i in range(20_000)]) + "\n"
    bad(upload(client, clean, "csv", [("wide.csv", (header + "0," + ",".join(["1"] * 20_000) + "\n").encode())]), 413,
        "wide.csv", "KILN_MAX_CSV_COLUMNS")


def test_a_zip_whose_directory_claims_more_entries_than_allowed_is_refused_before_parsing_it(client, clean):
    archive = bytearray(zip_bytes({"c/1.png": png_bytes(1), "c/2.png": png_bytes(2)}))
    end = archive.rfind(b"PK\x05\x06")
    archive[end + 8:end + 12] = struct.pack("<HH", 60_000, 60_000)  # entries on this disk, entries in all
    bad(upload(client, clean, "image-zip", [("claims.zip", bytes(archive))]), 413, "claims.zip", "60000 entries", "KILN_MAX_ZIP_ENTRIES")


def test_an_image_zip_takes_png_and_jpeg_by_content_only(client, clean):
    gif = io.BytesIO()
    Image.new("L", (8, 8)).save(gif, format="GIF")
    archive = zip_bytes({"a/1.png": png_bytes(1), "a/2.png": gif.getvalue(), "b/1.png": png_bytes(3), "b/2.png": png_bytes(4)})
    bad(upload(client, clean, "image-zip", [("g.zip", archive)]), 422, "a/2.png", "GIF")


def test_conversions_stream_and_their_result_is_bounded_too(client, clean, settings):
    """int8 images become float32, four times their size: the converted size is checked, and the
    cast is done in chunks (never the whole array at once)."""
    rows = settings.max_uncompressed_bytes // (3 * 64 * 64) + 8  # under the limit as int8, over it as float32
    x = np.zeros((rows, 3, 64, 64), dtype=np.int8)
    x[::7] = 1
    archive = zip_bytes({"x.npy": npy_member({"descr": "|i1", "fortran_order": False, "shape": x.shape}, x.tobytes())},
                        compression=zipfile.ZIP_DEFLATED)
    bad(upload(client, clean, "npz", [("i8.npz", archive)]), 413, "i8.npz", "KILN_MAX_UNCOMPRESSED_BYTES")


def test_a_preview_answer_is_bounded_before_it_is_computed(settings, auth):
    from fastapi.testclient import TestClient

    x, y = np.random.default_rng(0).random((40, 3)).astype(np.float32), np.arange(40) % 2
    with TestClient(create_app(settings.model_copy(update={"max_response_elements": 3 * 10}))) as c:
        ds = upload(c, auth, "npz", [("t.npz", npz_bytes(x=x, y=y))]).json()
        r = c.get(f"/v1/datasets/{ds['id']}/preview", params={"n": 11}, headers=auth)
        assert r.status_code == 413 and "KILN_MAX_RESPONSE_ELEMENTS" in r.json()["error"]["message"]
        assert len(c.get(f"/v1/datasets/{ds['id']}/preview", params={"n": 10}, headers=auth).json()["samples"]) == 10
        c.delete(f"/v1/datasets/{ds['id']}", headers=auth)


def test_an_unknown_form_field_is_named_and_the_right_place_suggested(client, clean):
    rows = ["a,b,species", "1,2,x", "3,4,y"]
    r = client.post("/v1/datasets", data={"name": "x", "format": "csv", "label_column": "species"},
                    files=[("file", ("t.csv", "\n".join(rows).encode()))], headers=clean)
    err = bad(r, 422, "label_column", "options")
    assert [d["loc"] for d in err["details"]] == [["body", "label_column"]]
    assert client.get("/v1/datasets", headers=clean).json()["items"] == []


def test_a_retried_upload_with_the_same_idempotency_key_answers_again_and_keeps_one_copy(client, clean, settings):
    x, y = images()
    key = {**clean, "Idempotency-Key": "upload-1"}
    files = [("file", ("a.npz", npz_bytes(x=x, y=y)))]
    first = client.post("/v1/datasets", data={"name": "d", "format": "npz"}, files=files, headers=key)
    again = client.post("/v1/datasets", data={"name": "d", "format": "npz"}, files=files, headers=key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert [d["id"] for d in client.get("/v1/datasets", headers=clean).json()["items"]] == [first.json()["id"]]
    stored = {p.name for p in (settings.artifacts_dir / "datasets").iterdir()}
    assert first.json()["id"] in stored and not any(name.startswith("tmp") for name in stored)
    x[0, 0, 0] ^= 1  # another file under the same key
    other = client.post("/v1/datasets", data={"name": "d", "format": "npz"}, files=[("file", ("a.npz", npz_bytes(x=x, y=y)))], headers=key)
    bad(other, 422, "Idempotency-Key")
    assert {p.name for p in (settings.artifacts_dir / "datasets").iterdir()} == stored  # its copy dropped
    assert client.delete(f"/v1/datasets/{first.json()['id']}", headers=clean).status_code == 204


def test_the_builtins_are_listed_and_each_example_is_a_dataset_a_job_takes(client, auth):
    builtins = client.get("/v1/builtin-datasets", headers=auth).json()
    assert [(b["name"], b["kind"]) for b in builtins] == [("builtin:digits", "image"), ("builtin:parity?length=N", "sequence")]
    for builtin, architecture in zip(builtins, ("mlp", "rnn"), strict=True):
        job = client.post("/v1/jobs", json={"model": {"architecture": architecture}, "data": {"dataset": builtin["example"]}}, headers=auth)
        assert job.status_code == 201, job.text
        client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=auth)
    assert client.get("/v1/builtin-datasets").status_code == 401
