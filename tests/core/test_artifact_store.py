"""The artifact store's contract, held by both implementations: the folder, and a real S3 server
(moto's, or KILN_TEST_S3_ENDPOINT's)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from app.core.artifacts import layout
from app.core.artifacts.configured import open_store
from app.core.artifacts.s3 import StoreUnavailable
from app.core.settings import Settings


@pytest.fixture(params=["folder", "s3"])
def settings(request, tmp_path) -> Settings:
    if request.param == "folder":
        return Settings(data_dir=tmp_path)
    server = request.getfixturevalue("s3_server")
    env = server.env(server.new_bucket())
    return Settings(data_dir=tmp_path, **{k.removeprefix("KILN_").lower(): v for k, v in env.items()})


@pytest.fixture
def store(settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.artifacts_url:
        settings.artifacts_dir.mkdir(parents=True)
    return open_store(settings)


def test_files_are_written_read_listed_measured_and_deleted(store):
    store.write_bytes("jobs/j1/checkpoints/step-0000000002.pt", b"two")
    store.write_bytes("jobs/j1/checkpoints/step-0000000010.pt", b"ten!")
    store.write_bytes("jobs/j1/model.json", b"{}")
    store.write_bytes("jobs/j10/model.json", b"{}")
    assert store.read_bytes("jobs/j1/checkpoints/step-0000000010.pt") == b"ten!"
    assert store.list("jobs/j1/checkpoints") == ["jobs/j1/checkpoints/step-0000000002.pt", "jobs/j1/checkpoints/step-0000000010.pt"]
    assert store.list("jobs/j1") == ["jobs/j1/checkpoints", "jobs/j1/model.json"]
    assert store.list("jobs/none") == []
    assert store.size("jobs/j1") == 9 and store.size("jobs/j1/model.json") == 2
    assert store.exists("jobs/j1/model.json") and not store.exists("jobs/j1/other.json")
    with pytest.raises(FileNotFoundError):
        store.read_bytes("jobs/j1/other.json")
    store.delete("jobs/j1")
    assert store.list("jobs/j1") == [] and not store.exists("jobs/j1/model.json")
    assert store.exists("jobs/j10/model.json")  # a prefix of another key's name is not its folder


def test_a_large_file_streams_in_and_out_whole(store, tmp_path):
    data = np.random.default_rng(0).bytes(20 * 1024 * 1024 + 7)  # over the multipart threshold
    (tmp_path / "big.bin").write_bytes(data)
    store.write_file("models/m/weights.safetensors", tmp_path / "big.bin")
    assert b"".join(store.iter_bytes("models/m/weights.safetensors")) == data
    with store.local_copy("models/m/weights.safetensors") as path:
        assert path.read_bytes() == data
    store.write_bytes("models/m/again.bin", data)
    assert store.read_bytes("models/m/again.bin") == data and store.size("models/m") == 2 * len(data)


def test_appended_text_reads_back_in_order(store):
    assert store.read_text(layout.job_log("j")) == ""
    for i in range(5):
        store.append_text(layout.job_log("j"), f"line {i}\n")
    assert store.read_text(layout.job_log("j")) == "".join(f"line {i}\n" for i in range(5))


def test_a_folder_is_published_whole_or_not_at_all(store):
    with store.publish_folder("datasets/ds1") as folder:
        np.save(folder / "train_x.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
        (folder / "meta.json").write_text('{"ok": true}')
    local = store.local_folder("datasets/ds1")
    assert np.load(local / "train_x.npy", mmap_mode="r").tolist()[2] == [8.0, 9.0, 10.0, 11.0]
    assert (local / "meta.json").read_text() == '{"ok": true}'

    with pytest.raises(RuntimeError), store.publish_folder("datasets/ds2") as folder:
        (folder / "meta.json").write_text("{}")
        raise RuntimeError("the conversion failed")
    assert store.list("datasets") == ["datasets/ds1"]
    assert store.size("datasets/ds2") == 0


def test_keys_cannot_leave_the_store(store):
    with pytest.raises(ValueError):
        store.write_bytes("../outside", b"x")


def test_the_object_store_fetches_a_folder_once_per_host_and_checks_it(s3_server, tmp_path):
    env = s3_server.env(s3_server.new_bucket())
    settings = Settings(data_dir=tmp_path, **{k.removeprefix("KILN_").lower(): v for k, v in env.items()})
    store = open_store(settings)
    with store.publish_folder("datasets/ds1") as folder:
        (folder / "train_x.npy").write_bytes(b"x" * 1000)
    first = store.local_folder("datasets/ds1")
    assert first.parent == settings.worker_cache_dir
    stamp = (first / "train_x.npy").stat().st_mtime_ns
    assert store.local_folder("datasets/ds1") == first and (first / "train_x.npy").stat().st_mtime_ns == stamp  # not fetched again

    # A second host's cache, with the object changed behind the manifest's back: refused, not used.
    store.write_bytes("datasets/ds1/train_x.npy", b"y" * 1000)
    other = open_store(Settings(data_dir=tmp_path / "host-b", **{k.removeprefix("KILN_").lower(): v for k, v in env.items()}))
    with pytest.raises(StoreUnavailable, match="does not match its manifest"):
        other.local_folder("datasets/ds1")
    assert not any(p.name[0] != "." for p in (tmp_path / "host-b" / "cache").iterdir())


def test_an_unreachable_store_is_a_clear_error(tmp_path):
    settings = Settings(data_dir=tmp_path, artifacts_url="s3://kiln-nowhere/x", s3_endpoint_url="http://127.0.0.1:9",
                        s3_access_key_id="a", s3_secret_access_key="b", store_retry_seconds=0)
    store = open_store(settings)
    with pytest.raises(StoreUnavailable, match="could not write 'jobs/j/model.json' for 0 s \\(KILN_STORE_RETRY_SECONDS\\)"):
        store.write_bytes("jobs/j/model.json", b"{}")
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") != "b"
