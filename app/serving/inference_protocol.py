"""The Open Inference Protocol (KServe v2, as Triton speaks it), without HTTP: a model's metadata
from its card, an infer request (JSON, or JSON followed by binary tensors: the binary tensor data
extension) read into samples, and the answer written as JSON or with binary outputs.

A Kiln classifier takes ``samples`` (FP32, [-1, *sample_shape], in the dataset's raw units, as
/v1 predict) and, sequence networks, ``lengths`` (INT64, [-1]); it answers ``probabilities``
(FP32, [-1, classes]) and ``predictions`` (BYTES, [-1]: the class names).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from app.core.errors import InvalidInput, detail
from app.serving import decode
from app.serving.loading import Servable

# The protocol's tensor types, as numpy reads their little-endian bytes.
DTYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
OUTPUTS = ("probabilities", "predictions")
HEADER_LENGTH = "Inference-Header-Content-Length"


def metadata(name: str, versions: list[str], servable: Servable) -> dict[str, Any]:
    inputs = [{"name": "samples", "datatype": "FP32", "shape": [-1, *servable.pre.sample_shape]}]
    if servable.takes_lengths:
        inputs.append({"name": "lengths", "datatype": "INT64", "shape": [-1]})
    return {
        "name": name, "versions": versions, "platform": "kiln_pytorch", "inputs": inputs,
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, len(servable.card.class_names)]},
                    {"name": "predictions", "datatype": "BYTES", "shape": [-1]}],
    }


@dataclass
class InferRequest:
    id: str | None
    inputs: list[dict[str, Any]]  # as sent: name, datatype, shape, data or parameters.binary_data_size
    binary: bytes  # what follows the JSON header
    outputs: list[tuple[str, bool]] = field(default_factory=list)  # (name, as binary?) in the order asked


def read_request(body: bytes, header_length: str | None) -> InferRequest:
    """The JSON header (all of the body, or its first ``Inference-Header-Content-Length`` bytes)
    and the binary tensors after it; nothing is decoded yet."""
    split = len(body)
    if header_length is not None:
        if not header_length.isascii() or not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidInput(f"{HEADER_LENGTH} is {header_length!r}: it must be the JSON header's length in bytes, at most the "
                               f"body's {len(body)}", [detail(["header", HEADER_LENGTH], "not a length within the body")])
        split = int(header_length)
    try:
        request = orjson.loads(body[:split])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the inference request is not valid JSON: {exc}", [detail(["body"], "invalid JSON")]) from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise InvalidInput('an inference request is a JSON object with a non-empty "inputs" list', [detail(["body", "inputs"], "required")])
    parameters = request.get("parameters") or {}
    everything_binary = bool(isinstance(parameters, dict) and parameters.get("binary_data_output"))
    asked = request.get("outputs")
    if asked is None:
        outputs = [(name, everything_binary) for name in OUTPUTS]
    else:
        if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
            raise InvalidInput('"outputs" is a list of {"name": ...}', [detail(["body", "outputs"], "a list of named outputs")])
        unknown = [o["name"] for o in asked if o["name"] not in OUTPUTS]
        if unknown:
            raise InvalidInput(f"unknown output(s) {', '.join(unknown)}: a Kiln classifier answers {' and '.join(OUTPUTS)}",
                               [detail(["body", "outputs"], f"one of {', '.join(OUTPUTS)}")])
        outputs = [(o["name"], bool((o.get("parameters") or {}).get("binary_data", everything_binary))) for o in asked]
    request_id = request.get("id")
    return InferRequest(request_id if isinstance(request_id, str) else None, request["inputs"], body[split:], outputs)


def samples(request: InferRequest, servable: Servable, limits: decode.Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """The request's ``samples`` (and ``lengths``) as the model takes them, checked as /v1's are."""
    tensors = _tensors(request, limits)
    unknown = sorted(set(tensors) - {"samples", "lengths"})
    if unknown or "samples" not in tensors:
        expected = "samples and lengths" if servable.takes_lengths else "samples"
        raise InvalidInput(f"the inputs are {', '.join(sorted(tensors))}; this model takes {expected}",
                           [detail(["body", "inputs"], f"expected {expected}")])
    x = decode.checked(tensors["samples"], servable, limits, ["body", "inputs", "samples"])
    lengths = None
    if servable.takes_lengths:
        given = tensors.get("lengths")
        lengths = decode.sequence_lengths(None if given is None else given.reshape(-1).tolist(), x)
    return x, lengths


def _tensors(request: InferRequest, limits: decode.Limits) -> dict[str, np.ndarray]:
    tensors, offset = {}, 0
    for i, tensor in enumerate(request.inputs):
        loc = ["body", "inputs", i]
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput(f"input {i} is not a named tensor", [detail(loc, "a tensor with a name")])
        name, datatype, shape = tensor["name"], tensor.get("datatype"), tensor.get("shape")
        if datatype not in DTYPES:
            raise InvalidInput(f"input {name}: datatype {datatype!r} is not a number type ({', '.join(DTYPES)})",
                               [detail([*loc, "datatype"], "a numeric datatype")])
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise InvalidInput(f"input {name}: shape must be a list of non-negative integers", [detail([*loc, "shape"], "a list of sizes")])
        count = math.prod(shape)
        if count > limits.elements:  # before a byte is decoded
            raise InvalidInput(f"input {name} holds {count} values, over the limit of {limits.elements} (KILN_MAX_PREDICT_ELEMENTS)",
                               [detail([*loc, "shape"], f"at most {limits.elements} values")])
        dtype = DTYPES[datatype]
        size = ((tensor.get("parameters") or {}) if isinstance(tensor.get("parameters"), dict) else {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size != count * dtype.itemsize or offset + size > len(request.binary):
                raise InvalidInput(f"input {name}: binary_data_size {size!r} does not hold {count} {datatype} values "
                                   f"({count * dtype.itemsize} bytes) within the {len(request.binary) - offset} bytes left",
                                   [detail([*loc, "parameters", "binary_data_size"], "does not match the shape and datatype")])
            array = np.frombuffer(request.binary, dtype=dtype, count=count, offset=offset)
            offset += size
        else:
            try:
                array = np.asarray(tensor.get("data"), dtype=dtype)
            except (ValueError, TypeError, OverflowError):
                raise InvalidInput(f"input {name}: data is not an array of {datatype} values", [detail([*loc, "data"], "not numbers")]) from None
            if array.size != count:
                raise InvalidInput(f"input {name}: {array.size} values for shape {shape}", [detail([*loc, "data"], f"expected {count} values")])
        tensors[name] = array.reshape(shape)
    if offset != len(request.binary):
        raise InvalidInput(f"{len(request.binary) - offset} bytes after the JSON header belong to no input",
                           [detail(["body"], "binary data that no binary_data_size accounts for")])
    return tensors


def answer(model_name: str, version: str, request: InferRequest, probs: np.ndarray, class_names: list[str]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    names = np.asarray(class_names, dtype=object)[probs.argmax(1)]
    outputs, blobs = [], []
    for name, binary in request.outputs:
        tensor: dict[str, Any] = {"name": name}
        if name == "probabilities":
            tensor |= {"datatype": "FP32", "shape": list(probs.shape)}
            raw = np.ascontiguousarray(probs, dtype="<f4")
            data: Any = raw.tobytes() if binary else raw.reshape(-1)
        else:
            tensor |= {"datatype": "BYTES", "shape": [len(names)]}
            encoded = [n.encode() for n in names]
            data = b"".join(struct.pack("<I", len(e)) + e for e in encoded) if binary else list(names)
        if binary:
            tensor["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            tensor["data"] = data
        outputs.append(tensor)
    body: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request.id is not None:
        body["id"] = request.id
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return (header + b"".join(blobs), len(header)) if blobs else (header, None)
