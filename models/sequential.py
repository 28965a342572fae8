"""A custom network from a JSON list of layers, e.g.
``[{"type": "conv2d", "out_channels": 8, "kernel_size": 3}, {"type": "relu"}, {"type": "flatten"},
{"type": "linear", "out_features": 10}]``.

Each entry names a ``torch.nn`` layer in lower case; its other keys are that constructor's keyword
arguments, taken only from a whitelist with bounds. Input sizes (``in_features``, ``in_channels``,
``num_features``) come from the running shape, which is tracked layer by layer, so a mismatch is
reported at the layer that causes it. Nothing the user writes is evaluated: a type name only
selects an entry of ``LAYER_TYPES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from torch import nn

from models.registry import Architecture, ArchitectureError, InputSpec, register

Shape = tuple[int, ...]

MAX_LAYERS = 64
MAX_WIDTH = 65536  # channels and features
MAX_WINDOW = 64  # kernel, stride, padding, dilation

# Layers that need token or sequence inputs (and a ``(x, lengths)`` forward); this family takes images.
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
    if len(shape) not in (1, 2):
        raise ArchitectureError(f"{where} expects a [features] or [channels, length] input, got {list(shape)}")
    return {"num_features": shape[0]}, shape


def _plan_batchnorm2d(where: str, shape: Shape, kw: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    return {"num_features": _image_input(where, shape)[0]}, shape


@dataclass(frozen=True)
class LayerType:
    module: type[nn.Module]
    plan: Callable[[str, Shape, dict[str, Any]], tuple[dict[str, Any], Shape]]
    args: dict[str, Arg] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    inferred: tuple[str, ...] = ()


POOL_ARGS = {"kernel_size": KERNEL, "stride": STRIDE, "padding": PADDING}

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
    "dropout": LayerType(nn.Dropout, _plan_same_shape, {"p": Arg("float", 0.0, 1.0, high_excluded=True)}),
    "batchnorm1d": LayerType(nn.BatchNorm1d, _plan_batchnorm1d, BATCH_NORM_ARGS, inferred=("num_features",)),
    "batchnorm2d": LayerType(nn.BatchNorm2d, _plan_batchnorm2d, BATCH_NORM_ARGS, inferred=("num_features",)),
}


# -- building ------------------------------------------------------------------------------------


def _layer_type_name(index: int, spec: Any) -> str:
    if not isinstance(spec, dict):
        raise ArchitectureError(f"layer {index} must be an object such as {{\"type\": \"relu\"}}, got {_show(spec)}")
    name = spec.get("type")
    if not isinstance(name, str):
        raise ArchitectureError(f"layer {index} needs a \"type\", one of: {', '.join(LAYER_TYPES)}")
    if name in SEQUENCE_LAYERS:
        raise ArchitectureError(
            f"layer {index} ({name}) is not supported yet: it needs sequence inputs, and this family takes images"
        )
    if name not in LAYER_TYPES:
        raise ArchitectureError(f"layer {index} has unknown type {_show(name)}; supported: {', '.join(LAYER_TYPES)}")
    return name


def _checked_kwargs(where: str, layer_type: LayerType, spec: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type":
            continue
        if key in layer_type.inferred:
            raise ArchitectureError(f"{where}: {key} is inferred from the previous layer's output; leave it out")
        if key not in layer_type.args:
            allowed = ", ".join(layer_type.args) or "none"
            raise ArchitectureError(f"{where}: unknown argument {_show(key)}; allowed: {allowed}")
        kwargs[key] = _checked_value(where, key, value, layer_type.args[key])
    missing = [key for key in layer_type.required if key not in kwargs]
    if missing:
        raise ArchitectureError(f"{where}: {', '.join(missing)} required")
    return kwargs


def _build_layer(index: int, spec: Any, shape: Shape) -> tuple[nn.Module, Shape]:
    name = _layer_type_name(index, spec)
    layer_type = LAYER_TYPES[name]
    where = f"layer {index} ({name})"
    kwargs = _checked_kwargs(where, layer_type, spec)
    inferred, out_shape = layer_type.plan(where, shape, kwargs)
    try:
        module = layer_type.module(**inferred, **kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:  # a safety net: the checks above should catch these
        raise ArchitectureError(f"{where}: {exc}") from exc
    return module, out_shape


def build_layers(specs: Any, input_shape: Shape) -> tuple[list[nn.Module], list[Shape]]:
    """The modules and each one's output shape (without the batch dimension)."""
    if not isinstance(specs, list) or not 1 <= len(specs) <= MAX_LAYERS:
        raise ArchitectureError(f"layers must be a list of 1 to {MAX_LAYERS} layers")
    modules, shapes, shape = [], [], tuple(input_shape)
    for index, spec in enumerate(specs):
        module, shape = _build_layer(index, spec, shape)
        modules.append(module)
        shapes.append(shape)
    return modules, shapes


class SequentialNet(nn.Module):
    """The user's layers in order; the last one is ``classifier`` so transfer learning can reset it."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.features = nn.Sequential(*layers[:-1])
        self.classifier = nn.Sequential(layers[-1])

    def forward(self, x):
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


def _build(params: SequentialParams, input_shape: Shape, num_classes: int) -> nn.Module:
    layers, shapes = build_layers(params.layers, input_shape)
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
        "tanh, sigmoid, leakyrelu, dropout, batchnorm1d, batchnorm2d) with their keyword arguments; input sizes "
        "are inferred and shapes checked layer by layer. Takes images as [channels, height, width].",
        task="classify",
        params_type=SequentialParams,
        input=InputSpec(kind="image"),
        example_input_shape=(1, 8, 8),
        build_fn=_build,
    )
)
