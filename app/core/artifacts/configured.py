"""The artifact store the settings name."""

from __future__ import annotations

from app.core.artifacts.store import ArtifactStore
from app.core.settings import Settings


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings name: the S3 bucket of ``KILN_ARTIFACTS_URL``, else the folder."""
    if settings.artifacts_url:
        from app.core.artifacts.s3 import S3Store

        return S3Store.from_settings(settings)
    from app.core.artifacts.local import LocalStore

    return LocalStore(settings.artifacts_dir)
