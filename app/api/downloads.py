"""A stored artifact as an HTTP download: the file itself where the store is a local folder
(sendfile), else streamed from the object store; never read whole into memory."""

from __future__ import annotations

from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from app.core.artifacts.store import ArtifactStore
from app.core.errors import NotFound


def artifact_response(store: ArtifactStore, key: str, media_type: str, filename: str) -> Response:
    path = store.local_file(key)
    if path is not None:
        if not path.is_file():
            raise NotFound(f"{filename} is not in the artifact store")
        return FileResponse(path, media_type=media_type, filename=filename)
    if not store.exists(key):
        raise NotFound(f"{filename} is not in the artifact store")
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Content-Length": str(store.size(key))}
    return StreamingResponse(store.iter_bytes(key), media_type=media_type, headers=headers)
