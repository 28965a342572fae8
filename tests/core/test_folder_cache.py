"""The host's cache of fetched folders: filled once, bounded in bytes, least recently used evicted."""

from __future__ import annotations

import os
import time

import pytest

from app.core.artifacts.cache import FolderCache


def filler(size: int, calls: list[str]):
    def fill(folder):
        calls.append(folder.name)
        (folder / "data.bin").write_bytes(b"x" * size)
    return fill


def test_a_folder_is_filled_once_and_then_served_from_the_cache(tmp_path):
    cache, calls = FolderCache(tmp_path, max_bytes=10_000), []
    first = cache.get("aaa", filler(100, calls))
    assert cache.get("aaa", filler(100, calls)) == first and len(calls) == 1
    assert (first / "data.bin").stat().st_size == 100


def test_the_least_recently_used_go_first_and_never_the_one_just_filled(tmp_path):
    cache, calls = FolderCache(tmp_path, max_bytes=250), []
    for digest in ("a1", "b2"):
        cache.get(digest, filler(100, calls))
    os.utime(tmp_path / "a1", (time.time() - 60, time.time() - 60))
    os.utime(tmp_path / "b2", (time.time() - 120, time.time() - 120))
    cache.get("a1", filler(100, calls))  # a use: a1 is now the most recent
    cache.get("c3", filler(100, calls))  # 300 > 250: the least recently used (b2) goes
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["a1", "c3"]
    cache.get("d4", filler(1000, calls))  # over the bound alone: kept, the others go
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["d4"]


def test_a_failed_fill_leaves_nothing(tmp_path):
    cache = FolderCache(tmp_path, max_bytes=1000)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise OSError("the store went away")

    with pytest.raises(OSError):
        cache.get("abc", broken)
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".lock")] == []
    assert cache.get("abc", filler(10, [])).name == "abc"


def test_only_a_content_hash_names_an_entry(tmp_path):
    with pytest.raises(ValueError):
        FolderCache(tmp_path, 100).get("../etc", filler(1, []))
