"""The activation choices every family shares."""

from torch import nn

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")


def make_activation(name: str, negative_slope: float = 0.01) -> nn.Module:
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
