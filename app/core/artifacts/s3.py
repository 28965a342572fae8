"""The artifact store in an S3-compatible object store (AWS S3, MinIO, Ceph, R2), through boto3.

An object appears whole or not at all, large files go up in multipart uploads streamed from disk,
and a folder is published file by file with its manifest last: a reader that finds the manifest
finds every file it lists. A job's log is one small object per append (S3 has no append).
Folders are read through a host's ``FolderCache``, keyed by the manifest's hash.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

import boto3
import orjson
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.core.artifacts import layout
from app.core.artifacts.cache import FolderCache
from app.core.errors import Unavailable

if TYPE_CHECKING:
    from app.core.settings import Settings

log = logging.getLogger("kiln.store")

CHUNK = 8 * 1024 * 1024
TRANSFER = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=4)
MISSING = {"404", "NoSuchKey", "NotFound"}
T = TypeVar("T")


class StoreUnavailable(Unavailable):
    """The object store did not answer within KILN_STORE_RETRY_SECONDS, or refused for good."""


# Answers worth another try: the server is there but busy or failing for now.
TRANSIENT = {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling", "RequestTimeTooSkewed"}


class S3Store:
    def __init__(self, url: str, client_options: dict[str, Any], cache: FolderCache, tmp_dir: Path, retry_seconds: float = 60.0):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        self.url, self.bucket, self.prefix = url, bucket, prefix.strip("/")
        self.cache, self.tmp_dir, self.retry_seconds = cache, Path(tmp_dir), retry_seconds
        self._client_options = client_options
        self._client: Any = None
        self._pid = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        env = os.environ.get
        endpoint = settings.s3_endpoint_url or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL") or None
        options: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": settings.s3_region or env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
            "config": Config(
                # boto3's own quick retries; ``_call`` rides out longer outages, up to KILN_STORE_RETRY_SECONDS.
                retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60,
                # Path-style addressing, which every S3-compatible server answers; AWS's own virtual hosts otherwise.
                s3={"addressing_style": "path" if endpoint else "auto"},
            ),
        }
        if settings.s3_access_key_id:  # else boto3's own chain: AWS_ACCESS_KEY_ID, ~/.aws, an instance role
            options |= {"aws_access_key_id": settings.s3_access_key_id, "aws_secret_access_key": settings.s3_secret_access_key}
        cache = FolderCache(settings.worker_cache_dir, settings.worker_cache_bytes)
        return cls(settings.artifacts_url, options, cache, settings.data_dir / "tmp", settings.store_retry_seconds)

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def client(self):
        # One client per process: a client made before a fork (Celery's prefork pool) is not reused after it.
        if self._client is None or self._pid != os.getpid():
            self._client = boto3.session.Session().client("s3", **self._client_options)
            self._pid = os.getpid()
        return self._client

    def _key(self, key: str) -> str:
        parts = key.strip("/").split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not an artifact key: {key!r}")
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _call(self, what: str, key: str, action: Callable[[], T]) -> T:
        """``action()``, tried again while the store is unreachable or failing, for up to
        KILN_STORE_RETRY_SECONDS; a missing object is FileNotFoundError, a refusal fails at once."""
        deadline, delay = time.monotonic() + self.retry_seconds, 0.5
        while True:
            try:
                return action()
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if error.get("Code") in MISSING:
                    raise FileNotFoundError(key) from None
                reason, transient = f"{error.get('Code')} {error.get('Message', '')}".strip(), status >= 500 or error.get("Code") in TRANSIENT
            except BotoCoreError as exc:
                reason, transient = type(exc).__name__, True
            if not transient:
                raise StoreUnavailable(f"the artifact store refused to {what} {key!r}: {reason}") from None
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"the artifact store could not {what} {key!r} for {self.retry_seconds:g} s "
                                       f"(KILN_STORE_RETRY_SECONDS): {reason}") from None
            log.warning("artifact store: could not %s %s (%s); trying again in %.1f s", what, key, reason, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under the folder ``prefix`` (full key), at any depth."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/")
        return [o for page in pages for o in page.get("Contents", ())]

    def _tmp(self) -> Path:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.tmp_dir))

    def reachable(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except (ClientError, BotoCoreError):
            return False

    # -- files -----------------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        if len(data) < CHUNK:
            self._call("write", key, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=data))
        else:
            self._call("write", key, lambda: self.client.upload_fileobj(io.BytesIO(data), self.bucket, full, Config=TRANSFER))

    def write_file(self, key: str, source: Path) -> None:
        full = self._key(key)
        self._call("write", key, lambda: self.client.upload_file(str(source), self.bucket, full, Config=TRANSFER))

    def read_bytes(self, key: str) -> bytes:
        full = self._key(key)
        return self._call("read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read())

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        full = self._key(key)
        body = self._call("read", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full)["Body"])
        try:
            yield from body.iter_chunks(1024 * 1024)
        except BotoCoreError as exc:  # mid-answer: the client sees a cut-off download, the log says why
            raise StoreUnavailable(f"the artifact store stopped sending {key!r}: {type(exc).__name__}") from None

    def local_file(self, key: str) -> Path | None:
        return None

    def _download(self, key: str, target: Path) -> str:
        """Streams the object into ``target``; its sha256."""
        full = self._key(key)

        def fetch() -> str:
            digest = hashlib.sha256()
            with open(target, "wb") as out:
                for chunk in self.client.get_object(Bucket=self.bucket, Key=full)["Body"].iter_chunks(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()

        return self._call("read", key, fetch)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        folder = self._tmp()
        try:
            target = folder / key.rsplit("/", 1)[-1]
            self._download(key, target)
            yield target
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._call("look up", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
            return True
        except FileNotFoundError:
            return False

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/"

        def names() -> list[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full, Delimiter="/")
            found: list[str] = []
            for page in pages:
                found += [o["Key"] for o in page.get("Contents", ())]
                found += [p["Prefix"].rstrip("/") for p in page.get("CommonPrefixes", ())]
            return found

        return sorted(self._relative(n) for n in self._call("list", prefix, names) if not n.rsplit("/", 1)[-1].startswith("."))

    def delete(self, key: str) -> None:
        full = self._key(key)

        def remove() -> None:
            doomed = [full] + [o["Key"] for o in self._objects(full)]
            for start in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1,000 keys
                batch = [{"Key": k} for k in doomed[start:start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

        self._call("delete", key, remove)

    def last_modified(self, key: str) -> float | None:
        full = self._key(key)
        found = self._call("look up", key, lambda: [o["LastModified"].timestamp() for o in self._objects(full)])
        if not found:
            try:
                found = [self._call("look up", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full)["LastModified"].timestamp())]
            except FileNotFoundError:
                return None
        return max(found)

    def size(self, key: str) -> int:
        full = self._key(key)
        total = self._call("measure", key, lambda: sum(o["Size"] for o in self._objects(full)))
        if total:
            return total
        try:
            return self._call("measure", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])
        except FileNotFoundError:
            return 0

    # -- logs --------------------------------------------------------------------------------------

    def append_text(self, key: str, text: str) -> None:
        part = f"{layout.appended_parts(key)}/{time.time_ns():020d}-{secrets.token_hex(4)}"
        self.write_bytes(part, text.encode("utf-8"))

    def read_text(self, key: str) -> str:
        full = self._key(layout.appended_parts(key))

        def read() -> str:
            parts = sorted(o["Key"] for o in self._objects(full))
            return "".join(self.client.get_object(Bucket=self.bucket, Key=p)["Body"].read().decode("utf-8") for p in parts)

        return self._call("read", key, read)

    # -- folders -----------------------------------------------------------------------------------

    @contextmanager
    def publish_folder(self, prefix: str) -> Iterator[Path]:
        folder = self._tmp()
        try:
            yield folder
            files = {}
            for path in sorted(folder.iterdir()):
                self.write_file(f"{prefix}/{path.name}", path)
                files[path.name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
            # Last: a folder whose manifest exists is complete.
            self.write_bytes(f"{prefix}/{layout.FOLDER_MANIFEST}", orjson.dumps({"files": files}, option=orjson.OPT_SORT_KEYS))
        except BaseException:
            try:
                self.delete(prefix)
            except StoreUnavailable:
                log.warning("could not remove the partly published %s", prefix)
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def local_folder(self, prefix: str) -> Path:
        manifest = self.read_bytes(f"{prefix}/{layout.FOLDER_MANIFEST}")
        files = orjson.loads(manifest)["files"]

        def fetch(into: Path) -> None:
            for name, expected in files.items():
                if self._download(f"{prefix}/{name}", into / name) != expected["sha256"]:
                    raise StoreUnavailable(f"{prefix}/{name} in the artifact store does not match its manifest")
            log.info("fetched %s (%d files) into the cache", prefix, len(files))

        return self.cache.get(hashlib.sha256(manifest).hexdigest(), fetch)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
