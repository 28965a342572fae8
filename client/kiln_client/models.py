"""Trained models: read them, ask them for predictions, download them as a file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln_client.errors import check_stream
from kiln_client.paging import pages
from kiln_client.transport import Transport

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class Predictions:
    predictions: list[str]  # the likeliest class of each sample
    probabilities: list[list[float]]  # each sample's probability of every class, in class_names order
    top_k: list[list[dict[str, Any]]] | None = None  # with top_k: each sample's k likeliest {class, probability}


class Model:
    def __init__(self, transport: Transport, data: dict[str, Any]):
        self._t, self.data = transport, data

    def __repr__(self) -> str:
        return f"<Model {self.id} {self.data.get('architecture')}>"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def class_names(self) -> list[str]:
        return self.data["class_names"]

    def predict(self, inputs: Any, top_k: int | None = None) -> Predictions:
        """Samples exactly as in the dataset: a numpy array (first axis: samples) or nested lists."""
        samples = inputs.tolist() if hasattr(inputs, "tolist") else list(inputs)
        return _predictions(self._t.json("POST", f"/v1/models/{self.id}/predict", json={"inputs": samples}, params=_top(top_k)))

    def predict_images(self, paths: Sequence[str | Path], top_k: int | None = None) -> Predictions:
        """PNG or JPEG files, one sample each, converted to the model's channels and size by the server."""
        def files() -> dict[str, Any]:
            return {"files": [("file", (Path(p).name, open(p, "rb"), IMAGE_TYPES.get(Path(p).suffix.lower(), "application/octet-stream")))
                              for p in paths]}
        return _predictions(self._t.json("POST", f"/v1/models/{self.id}/predict", body_factory=files, params=_top(top_k)))

    def export(self, path: str | Path, format: str = "onnx") -> Path:
        """The model as one file (onnx, torchscript or safetensors), streamed to ``path``."""
        path = Path(path)
        partial = path.with_name(path.name + ".part")
        with self._t.http.stream("GET", f"/v1/models/{self.id}/export", params={"format": format}) as response:
            check_stream(response)
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        partial.replace(path)  # never a half-written file under the asked name
        return path


class Models:
    def __init__(self, transport: Transport):
        self._t = transport

    def get(self, model_id: str) -> Model:
        return Model(self._t, self._t.json("GET", f"/v1/models/{model_id}"))

    def list(self, limit: int | None = None) -> Iterator[Model]:
        yield from (Model(self._t, item) for item in pages(self._t, "/v1/models", {}, limit))

    def delete(self, model_id: str) -> None:
        self._t.request("DELETE", f"/v1/models/{model_id}")


def _top(k: int | None) -> dict[str, int]:
    return {"top_k": k} if k else {}


def _predictions(body: dict[str, Any]) -> Predictions:
    return Predictions(body["predictions"], body["probabilities"], body.get("top_k"))
