"""A custom network from a JSON list of layers, e.g.
``[{"type": "conv2d", "out_channels": 8, "kernel_size": 3}, {"type": "relu"}, {"type": "flatten"},
{"type": "linear", "out_features": 10}]``.

Each entry names a ``torch.nn`` layer in lower case; its other keys are that constructor's keyword
arguments, taken only from a whitelist with bounds. Input sizes (``in_features``, ``in_channels``,
``num_features``, ``input_size``, ``embed_dim``, and ``num_embeddings`` from the dataset's
vocabulary) come from the running shape, which is tracked layer by layer, so a mismatch is reported
at the layer that causes it. Nothing the user writes is evaluated: a type name only selects an entry
of ``LAYER_TYPES``.

What the network takes follows from its layers (``_input_for``): an ``embedding`` first takes token
ids (T,); ``lstm``, ``gru`` or ``multiheadattention`` anywhere take float sequences (T, F); anything
else takes images (C, H, W). On sequences:

- ``embedding`` maps (T,) to (T, embedding_dim); token id 0 pads and embeds to zeros (``padding_idx``
  is fixed to 0).
- ``lstm`` / ``gru`` map (T, F) to (T, hidden_size x directions) and return only the output
  sequence; ``multiheadattention`` is self-attention (query = key = value), (T, E) to (T, E), and
  returns only the attention output. All are batch first.
- ``linear`` (and ``batchnorm1d``) still need a flat input: ``flatten`` turns (T, H) into (T*H),
  which fixes the sequence length the network takes. Activations and ``dropout`` take any shape;
  conv, pool and ``batchnorm2d`` take images only.
- The forward is ``forward(x, lengths=None)`` and ignores ``lengths``: unlike the ``rnn`` family,
  these layers read the padded positions too (padding embeds to zeros, and the network can learn
  to discount it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import nn

from models.registry import Architecture, ArchitectureError, InputSpec, register

Shape = tuple[int, ...]

MAX_LAYERS = 64
MAX_WIDTH = 65536  # channels and features
MAX_WINDOW = 64  # kernel, stride, padding, dilation

MAX_RECURRENT_LAYERS = 8  # num_layers of one lstm or gru

# Layers that make the network take sequences; ``embedding`` (first) makes it take token ids.
SEQUENCE_LAYERS = ("embedding", "lstm", "gru", "multiheadattention")


# -- keyword arguments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One constructor keyword a user may set, with its inclusive bounds."""

    kind: Literal["int", "pair", "float", "bool"]  # "pair": an int or a list of two ints
    low: float = 0
    high: float = 0
    high_excluded: bool = False  # e.g. dropout p < 1: p = 1 would zero every activation


WIDTH = Arg("int", 1, MAX_WIDTH)
KERNEL = Arg("pair", 1, MAX_WINDOW)
STRIDE = Arg("pair", 1, MAX_WINDOW)
PADDING = Arg("pair", 0, MAX_WINDOW)
FLAG = Arg("bool")
BATCH_NORM_ARGS = {"eps": Arg("float", 1e-12, 1.0), "momentum": Arg("float", 0.0, 1.0), "affine": FLAG}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not 1 here


def _in_bounds(value: float, arg: Arg) -> bool:
    # Written so that NaN fails every comparison and is refused.
    return arg.low <= value and (value < arg.high if arg.high_excluded else value <= arg.high)


def _range_text(arg: Arg) -> str:
    return f"{arg.low:g}..{arg.high:g}" + (" (excluded)" if arg.high_excluded else "")


def _checked_value(where: str, key: str, value: Any, arg: Arg) -> Any:
    """The value as the constructor takes it, or an ArchitectureError naming layer and key."""
    if arg.kind == "bool":
        if isinstance(value, bool):
            return value
        raise ArchitectureError(f"{where}: {key} must be true or false, got {_show(value)}")
    if arg.kind == "float":
        if (_is_int(value) or isinstance(value, float)) and _in_bounds(float(value), arg):
            return float(value)
        raise ArchitectureError(f"{where}: {key} must be a number in {_range_text(arg)}, got {_show(value)}")
    if arg.kind == "int":
        if _is_int(value) and _in_bounds(value, arg):
            return value
        raise ArchitectureError(f"{where}: {key} must be an integer in {_range_text(arg)}, got {_show(value)}")
    items = value if isinstance(value, (list, tuple)) and len(value) == 2 else [value]
    if all(_is_int(v) and _in_bounds(v, arg) for v in items):
        return tuple(items) if len(items) == 2 else items[0]
    raise ArchitectureError(
        f"{where}: {key} must be an integer in {_range_text(arg)} or a list of two, got {_show(value)}"
    )


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


# -- shapes --------------------------------------------------------------------------------------


def _flat_input(where: str, shape: Shape) -> int:
    if len(shape) != 1:
        raise ArchitectureError(f"{where} expects a flat [features] input, got {list(shape)}; add a flatten layer before it")
    return shape[0]


def _image_input(where: str, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise ArchitectureError(f"{where} expects a [channels, height, width] input, got {list(shape)}")
    return shape


def _window_output(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a sliding window (the formula in the Conv2d and MaxPool2d docs)."""
    return max(0, (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1)


def _spatial_output(where: str, shape: Shape, channels: int, kw: dict[str, Any]) -> Shape:
    """[channels, height', width'] after a conv or pool window; refuses a size that reaches 0."""
    kernel = _pair(kw["kernel_size"])  # required for conv and pool
    stride = _pair(kw.get("stride", kernel))  # pools default their stride to the kernel; conv sets 1
    padding = _pair(kw.get("padding", 0))
    dilation = _pair(kw.get("dilation", 1))
    out = (channels, *(_window_output(*dims) for dims in zip(shape[1:], kernel, stride, padding, dilation)))
    if 0 in out:
        raise ArchitectureError(
            f"{where} shrinks its input {list(shape)} to {list(out)}: the kernel does not fit; "
            "use a smaller kernel or stride, or padding"
        )
    return out


# -- layer types: (where, input shape, checked kwargs) -> (inferred kwargs, output shape) --------


def _plan_linear(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    return {"in_features": _flat_input(where, shape)}, (kw["out_features"],)


def _plan_conv2d(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    channels = _image_input(where, shape)[0]
    groups, out_channels = kw.get("groups", 1), kw["out_channels"]
    if channels % groups or out_channels % groups:
        raise ArchitectureError(
            f"{where}: groups={groups} must divide both its {channels} input channels and out_channels={out_channels}"
        )
    out = _spatial_output(where, shape, out_channels, {"stride": 1, **kw})
    return {"in_channels": channels}, out


def _plan_pool2d(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    _image_input(where, shape)
    kernel, padding = _pair(kw["kernel_size"]), _pair(kw.get("padding", 0))
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ArchitectureError(f"{where}: padding {list(padding)} must be at most half of kernel_size {list(kernel)}")
    return {}, _spatial_output(where, shape, shape[0], kw)


def _plan_flatten(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    return {}, (math.prod(shape),)


def _plan_same_shape(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    return {}, shape


def _plan_batchnorm1d(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    # A 2-D shape here is a [length, features] sequence, which BatchNorm1d would read as [channels, length].
    return {"num_features": _flat_input(where, shape)}, shape


def _plan_batchnorm2d(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    return {"num_features": _image_input(where, shape)[0]}, shape


def _sequence_input(where: str, shape: Shape) -> Shape:
    if len(shape) != 2:
        raise ArchitectureError(f"{where} expects a [length, features] sequence input, got {list(shape)}")
    return shape


def _plan_embedding(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    # num_embeddings comes from the vocabulary, added by _build_layer; the input was checked to be token ids.
    return {}, (shape[0], kw["embedding_dim"])


def _plan_recurrent(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    length, features = _sequence_input(where, shape)
    if kw.get("dropout", 0.0) > 0 and kw.get("num_layers", 1) == 1:
        raise ArchitectureError(f"{where}: dropout acts between stacked layers; it needs num_layers > 1")
    return {"input_size": features}, (length, kw["hidden_size"] * (2 if kw.get("bidirectional", False) else 1))


def _plan_attention(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    features = _sequence_input(where, shape)[1]
    if features % kw["num_heads"]:
        raise ArchitectureError(
            f"{where}: num_heads={kw['num_heads']} must divide its {features} input features (embed_dim)"
        )
    return {"embed_dim": features}, shape


# -- sequence modules: torch's layers, returning only the output sequence -------------------------


class LSTM(nn.LSTM):
    """``nn.LSTM`` whose forward returns the output sequence only, not ``(h, c)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


class GRU(nn.GRU):
    """``nn.GRU`` whose forward returns the output sequence only, not ``h``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` over one sequence (query = key = value), returning the output only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, x, x, need_weights=False)[0]


@dataclass(frozen=True)
class LayerType:
    module: type[nn.Module]
    plan: Callable[[str, Shape, dict[str, Any]], tuple[dict[str, Any], Shape]]
    args: dict[str, Arg] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    inferred: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # constructor keywords set here, never by the user


POOL_ARGS = {"kernel_size": KERNEL, "stride": STRIDE, "padding": PADDING}
DROPOUT = Arg("float", 0.0, 1.0, high_excluded=True)
RECURRENT_ARGS = {"hidden_size": WIDTH, "num_layers": Arg("int", 1, MAX_RECURRENT_LAYERS), "bidirectional": FLAG,
                  "dropout": DROPOUT, "bias": FLAG}
BATCH_FIRST = {"batch_first": True}

LAYER_TYPES: dict[str, LayerType] = {
    "linear": LayerType(
        nn.Linear, _plan_linear, {"out_features": WIDTH, "bias": FLAG}, ("out_features",), ("in_features",)
    ),
    "conv2d": LayerType(
        nn.Conv2d,
        _plan_conv2d,
        {"out_channels": WIDTH, "kernel_size": KERNEL, "stride": STRIDE, "padding": PADDING,
         "dilation": Arg("pair", 1, MAX_WINDOW), "groups": WIDTH, "bias": FLAG},
        ("out_channels", "kernel_size"),
        ("in_channels",),
    ),
    "maxpool2d": LayerType(nn.MaxPool2d, _plan_pool2d, POOL_ARGS, ("kernel_size",)),
    "avgpool2d": LayerType(nn.AvgPool2d, _plan_pool2d, POOL_ARGS, ("kernel_size",)),
    "flatten": LayerType(nn.Flatten, _plan_flatten),  # always flattens everything but the batch
    "relu": LayerType(nn.ReLU, _plan_same_shape),
    "tanh": LayerType(nn.Tanh, _plan_same_shape),
    "sigmoid": LayerType(nn.Sigmoid, _plan_same_shape),
    "leakyrelu": LayerType(nn.LeakyReLU, _plan_same_shape, {"negative_slope": Arg("float", 0.0, 1.0)}),
    "dropout": LayerType(nn.Dropout, _plan_same_shape, {"p": DROPOUT}),
    "batchnorm1d": LayerType(nn.BatchNorm1d, _plan_batchnorm1d, BATCH_NORM_ARGS, inferred=("num_features",)),
    "batchnorm2d": LayerType(nn.BatchNorm2d, _plan_batchnorm2d, BATCH_NORM_ARGS, inferred=("num_features",)),
    "embedding": LayerType(
        nn.Embedding, _plan_embedding, {"embedding_dim": WIDTH}, ("embedding_dim",), ("num_embeddings",),
        {"padding_idx": 0},
    ),
    "lstm": LayerType(LSTM, _plan_recurrent, RECURRENT_ARGS, ("hidden_size",), ("input_size",), BATCH_FIRST),
    "gru": LayerType(GRU, _plan_recurrent, RECURRENT_ARGS, ("hidden_size",), ("input_size",), BATCH_FIRST),
    "multiheadattention": LayerType(
        SelfAttention, _plan_attention, {"num_heads": WIDTH, "dropout": DROPOUT, "bias": FLAG}, ("num_heads",),
        ("embed_dim",), BATCH_FIRST,
    ),
}


# -- building ------------------------------------------------------------------------------------


def _layer_type_name(index: int, spec: Any) -> str:
    if not isinstance(spec, dict):
        raise ArchitectureError(f"layer {index} must be an object such as {{\"type\": \"relu\"}}, got {_show(spec)}")
    name = spec.get("type")
    if not isinstance(name, str):
        raise ArchitectureError(f"layer {index} needs a \"type\", one of: {', '.join(LAYER_TYPES)}")
    if name not in LAYER_TYPES:
        raise ArchitectureError(f"layer {index} has unknown type {_show(name)}; supported: {', '.join(LAYER_TYPES)}")
    return name


def _checked_kwargs(where: str, layer_type: LayerType, spec: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key in layer_type.inferred:
            source = "the dataset's vocabulary" if key == "num_embeddings" else "the previous layer's output"
            raise ArchitectureError(f"{where}: {key} is inferred from {source}; leave it out")
        if key in layer_type.fixed:
            raise ArchitectureError(f"{where}: {key} is fixed to {_show(layer_type.fixed[key])} here; leave it out")
        if key not in layer_type.args:
            allowed = ", ".join(layer_type.args) or "none"
            raise ArchitectureError(f"{where}: unknown argument {_show(key)}; allowed: {allowed}")
        kwargs[key] = _checked_value(where, key, value, layer_type.args[key])
    missing = [key for key in layer_type.required if key not in kwargs]
    if missing:
        raise ArchitectureError(f"{where}: {', '.join(missing)} required")
    return kwargs


def _build_layer(index: int, spec: Any, shape: Shape, vocab_size: int | None) -> tuple[nn.Module, Shape]:
    """``vocab_size`` is set when this layer's input is token ids (only the first layer's can be)."""
    name = _layer_type_name(index, spec)
    layer_type = LAYER_TYPES[name]
    where = f"layer {index} ({name})"
    kwargs = _checked_kwargs(where, layer_type, spec)
    if name == "embedding" and index > 0:
        raise ArchitectureError(f"{where} takes token ids, so it can only be the first layer")
    if name == "embedding" and (vocab_size is None or len(shape) != 1):
        raise ArchitectureError(
            f"{where} takes token ids [length] from a dataset with a vocabulary, got {list(shape)}"
            + ("" if vocab_size else " without a vocabulary size")
        )
    if name != "embedding" and vocab_size is not None:
        raise ArchitectureError(f"{where} cannot take token ids; start with an embedding layer")
    inferred, out_shape = layer_type.plan(where, shape, kwargs)
    if name == "embedding":
        inferred["num_embeddings"] = vocab_size
    try:
        module = layer_type.module(**inferred, **layer_type.fixed, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:  # a safety net: the checks above should catch these
        raise ArchitectureError(f"{where}: {exc}") from exc
    return module, out_shape


def build_layers(specs: Any, input_shape: Shape, vocab_size: int | None = None) -> tuple[list[nn.Module], list[Shape]]:
    """The modules and each one's output shape (without the batch dimension). ``vocab_size``: the
    input is token ids below it, which only a first ``embedding`` layer takes."""
    if not isinstance(specs, list) or not 1 <= len(specs) <= MAX_LAYERS:
        raise ArchitectureError(f"layers must be a list of 1 to {MAX_LAYERS} layers")
    if vocab_size is not None and (not _is_int(vocab_size) or vocab_size < 1):
        raise ArchitectureError(f"the vocabulary size must be a positive integer, got {_show(vocab_size)}")
    modules, shapes, shape = [], [], tuple(input_shape)
    for index, spec in enumerate(specs):
        module, shape = _build_layer(index, spec, shape, vocab_size if index == 0 else None)
        modules.append(module)
        shapes.append(shape)
    return modules, shapes


class SequentialNet(nn.Module):
    """The user's layers in order; the last one is ``classifier`` so transfer learning can reset it.

    ``lengths`` (sequence inputs) is accepted and ignored: every position is read, padding included;
    token id 0 embeds to zeros.
    """

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.features = nn.Sequential(*layers[:-1])
        self.classifier = nn.Sequential(layers[-1])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.features(x))


def _default_layers() -> list[dict[str, Any]]:
    return [{"type": "flatten"}, {"type": "linear", "out_features": 64}, {"type": "relu"},
            {"type": "linear", "out_features": 10}]


@dataclass
class SequentialParams:
    layers: list[dict] = field(
        default_factory=_default_layers,
        metadata={
            "min_length": 1,
            "max_length": MAX_LAYERS,
            "description": "layers in order, each {\"type\": <torch.nn name in lower case>, <its keyword arguments>}; "
            "input sizes are inferred; the last layer must output one value per class",
        },
    )


IMAGE_INPUT = InputSpec(kind="image")
SEQUENCE_INPUT = InputSpec(kind="sequence")  # token ids (T,) after an embedding, else values (T, F)


def _layer_types(layers: Any) -> list[Any]:
    """The "type" of each entry, or None for malformed ones: build_layers reports those."""
    return [spec.get("type") if isinstance(spec, dict) else None for spec in layers] if isinstance(layers, list) else []


def _input_for(params: SequentialParams) -> InputSpec:
    """Sequences when the stack has an embedding (token ids, which must come first), an lstm, a gru or a
    multiheadattention layer; images otherwise."""
    return SEQUENCE_INPUT if any(t in SEQUENCE_LAYERS for t in _layer_types(params.layers)) else IMAGE_INPUT


def _build(params: SequentialParams, input_shape: Shape, num_classes: int, vocab_size: int | None = None) -> nn.Module:
    layers, shapes = build_layers(params.layers, input_shape, vocab_size)
    if shapes[-1] != (num_classes,):
        index = len(layers) - 1
        raise ArchitectureError(
            f"layer {index} ({params.layers[index]['type']}), the last, outputs {list(shapes[-1])}; "
            f"the network must output [{num_classes}], one value per class"
        )
    return SequentialNet(layers)


register(
    Architecture(
        name="sequential",
        description="A custom network from a list of layers (linear, conv2d, maxpool2d, avgpool2d, flatten, relu, "
        "tanh, sigmoid, leakyrelu, dropout, batchnorm1d, batchnorm2d, embedding, lstm, gru, multiheadattention) "
        "with their keyword arguments; input sizes are inferred and shapes checked layer by layer. Takes images "
        "as [channels, height, width]; with an embedding first, token ids [length]; with lstm, gru or "
        "multiheadattention, sequences [length, features] (padding is read too; linear needs a flatten first).",
        task="classify",
        params_type=SequentialParams,
        input=IMAGE_INPUT,
        example_input_shape=(1, 8, 8),
        build_fn=_build,
        input_for=_input_for,
    )
)
