"""The registry: every trainable architecture by name, with its parameters and the input it takes.

Parameters are stdlib dataclasses whose field metadata carries the bounds (``ge``, ``le``,
``choices``, ``item_ge``...). The API turns them into its validation schema; this package stays
free of anything but torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import nn


class ArchitectureError(ValueError):
    """A network cannot be built for the requested parameters or input shape."""


@dataclass(frozen=True)
class InputSpec:
    """What a network consumes.

    ``image``: (channels, height, width); ``size`` fixes height and width when the network needs
    one (LeNet-5 takes 32x32), ``channels`` None means any. ``vector``: a flat feature vector of
    any length. ``sequence``: token ids (T,) with a vocabulary size, or values (T, F); the
    network's forward takes ``(x, lengths)``.
    """

    kind: Literal["image", "vector", "sequence"]
    channels: int | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Footprint:
    parameters: int
    activations_per_sample: int  # values one forward pass keeps per sample


def _tensors(output: Any):
    """The tensors of a module's output: a tensor, or tuples of them (an LSTM's)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from _tensors(item)


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    task: Literal["classify", "generate", "reconstruct"]
    params_type: type
    input: InputSpec
    example_input_shape: tuple[int, ...]
    build_fn: Callable[..., nn.Module]
    # For a family whose input depends on its params (``sequential``: images, or sequences when
    # its stack starts with an embedding or holds recurrent/attention layers).
    input_for: Callable[[Any], InputSpec] | None = None

    def input_spec(self, params: Any) -> InputSpec:
        return self.input_for(params) if self.input_for is not None else self.input

    def build(self, params: Any, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> nn.Module:
        if self.input_spec(params).kind == "sequence":
            return self.build_fn(params, tuple(input_shape), num_classes, vocab_size=vocab_size)
        return self.build_fn(params, tuple(input_shape), num_classes)

    def make_params(self, values: dict[str, Any] | None = None) -> Any:
        return self.params_type(**(values or {}))

    def check(self, params: Any, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> int:
        """Build on the meta device and run one forward pass; returns the parameter count.

        Costs no memory and no arithmetic, so the API can afford it on every submit.
        """
        return self.measure(params, input_shape, num_classes, vocab_size=vocab_size).parameters

    def measure(self, params: Any, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> "Footprint":
        """``check``, and what the pass kept: the values every innermost module put out, per sample
        (what autograd saves for the backward pass, near enough)."""
        outputs = [0]

        def count(_module, _inputs, output) -> None:
            outputs[0] += sum(t.numel() for t in _tensors(output))

        try:
            with torch.device("meta"):
                net = self.build(params, input_shape, num_classes, vocab_size=vocab_size)
                hooks = [m.register_forward_hook(count) for m in net.modules() if not any(True for _ in m.children())]
                sample = torch.empty((2, *input_shape), dtype=torch.long if vocab_size else torch.float32)
                sequence = self.input_spec(params).kind == "sequence"
                out = net(sample, torch.full((2,), input_shape[0], dtype=torch.long)) if sequence else net(sample)
                for hook in hooks:
                    hook.remove()
        except ArchitectureError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise ArchitectureError(f"{self.name} cannot take input of shape {list(input_shape)}: {exc}") from exc
        if self.task == "classify" and tuple(out.shape) != (2, num_classes):
            raise ArchitectureError(f"{self.name} produced shape {list(out.shape[1:])}, expected [{num_classes}]")
        return Footprint(parameters=sum(p.numel() for p in net.parameters()), activations_per_sample=outputs[0] // 2)

    def top_level_modules(self, params: Any, input_shape: tuple[int, ...], num_classes: int, vocab_size: int | None = None) -> list[str]:
        """The names ``freeze`` can take (``features``, ``classifier`` for the classifiers)."""
        with torch.device("meta"):
            return [name for name, _ in self.build(params, input_shape, num_classes, vocab_size=vocab_size).named_children()]


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    if arch.name in _REGISTRY:
        raise ValueError(f"architecture {arch.name!r} registered twice")
    _REGISTRY[arch.name] = arch
    return arch


def get(name: str) -> Architecture:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ArchitectureError(f"unknown architecture {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)
