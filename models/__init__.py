"""Neural-network architectures only: plain ``torch.nn.Module`` classes and their registry.

Importing this package registers every family, so ``models.registry.get(name)`` sees them all.
Nothing here knows about HTTP, the database or the training loop.
"""

from models import alexnet, gan, lenet, mlp, rbm, resnet, rnn, sequential, transformer  # noqa: F401  (registration side effect)
from models.registry import Architecture, ArchitectureError, Footprint, InputSpec, get, names

__all__ = ["Architecture", "ArchitectureError", "Footprint", "InputSpec", "get", "names"]
