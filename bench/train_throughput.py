"""Training throughput: the Kiln trainer against two loops on the same model, data and threads.

    python bench/train_throughput.py [--threads 2] [--samples 60000] [--rounds 2] [--segment 10000]

1. kiln      - worker.training's classifier in the one epoch loop, through a real JobContext: metric points upserted by the
               heartbeat thread into a real SQLite job store, the lease renewed, the cancel flag
               read, and a checkpoint written atomically at the end of every epoch.
2. textbook  - the survey's LeNet-5 listing: a DataLoader over a per-sample Dataset, loss.item()
               every step.
3. bare      - the limit: shuffled index batches sliced from tensors, forward/backward/step, nothing else.

The machine's speed drifts by tens of percent over a minute, so the loops are interleaved finely:
the data are cut into segments of --segment samples, and for each segment the three loops run
one after another (in rotating order), each over that segment as one epoch (Kiln writes its
epoch-end checkpoint every segment: more often than a real run, so its bookkeeping is, if anything,
over-counted). Each loop's rate is its total samples over its total time across --rounds passes.
Data: MNIST's 60,000 training images resized to 1x32x32 by Kiln's preprocessing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DEFAULT_MNIST_DIR, PerSampleDataset, mnist_train  # bench/ is the script directory
from torch.utils.data import DataLoader

import models
from app.core import bootstrap, preprocessing, tenants
from app.core.artifacts import layout
from app.core.artifacts.configured import open_store
from app.core.db.engine import session_factory
from app.core.jobs import lease
from app.core.jobs import service as job_service
from app.core.jobs.spec import JobSpec
from app.core.settings import Settings
from worker.job_context import JobContext
from worker.training.classifier import ClassifierTrainer
from worker.training.config import TrainConfig
from worker.training.data import TensorData

BATCH = 64
LR = 0.01


def lenet() -> torch.nn.Module:
    arch = models.get("lenet5")
    return arch.build(arch.make_params(), (1, 32, 32), 10)


def sgd(net: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)


def textbook_epoch(x, y) -> float:
    net, loader = lenet(), DataLoader(PerSampleDataset(x, y), batch_size=BATCH, shuffle=True)
    optimizer, criterion = sgd(net), torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    running_loss = 0.0
    for inputs, labels in loader:
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    return time.perf_counter() - start


def bare_epoch(x, y) -> float:
    net = lenet()
    optimizer = sgd(net)
    start = time.perf_counter()
    order = torch.randperm(len(x))
    for i in range(0, len(x), BATCH):
        idx = order[i : i + BATCH]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x[idx]), y[idx]).backward()
        optimizer.step()
    return time.perf_counter() - start


class KilnJob:
    """A real job row in a real (temporary) SQLite job store, claimed as a worker would."""

    def __init__(self, root: Path):
        self.settings = Settings(data_dir=root)
        bootstrap.prepare(self.settings)
        self.sessions = session_factory(self.settings.database_url)
        self.store = open_store(self.settings)

    def context(self) -> JobContext:
        spec = JobSpec.model_validate({"name": "bench", "model": {"architecture": "lenet5"}, "data": {"dataset": "builtin:digits"}})
        with self.sessions() as s:
            tenant = tenants.get_or_create_tenant(session=s, name="bench")
            job = job_service.create(session=s, tenant_id=tenant.id, spec=spec, max_attempts=1)
            s.commit()
            job = lease.claim(session=s, job_id=job.id, worker_id="bench", lease_seconds=60)
            s.commit()
        return JobContext(settings=self.settings, sessions=self.sessions, store=self.store, job_id=job.id, tenant_id=job.tenant_id,
                          worker_id="bench", attempt=job.attempt)


def kiln_epoch(x, y, job: KilnJob) -> float:
    net = lenet()
    ctx = job.context()
    ctx.start()
    trainer = ClassifierTrainer(net, sgd(net), TensorData(x, y), TrainConfig(epochs=1, batch_size=BATCH, train_loss_every_steps=10), ctx)
    start = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - start
    ctx.close()
    assert ctx.store.list(layout.checkpoints_prefix(ctx.job_id)), "the epoch's checkpoint was written"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the data per loop")
    parser.add_argument("--segment", type=int, default=10_000, help="samples per interleaved segment")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    images, labels = mnist_train(args.mnist_dir)
    images, labels = images[: args.samples], labels[: args.samples]
    plan = preprocessing.plan(sample_shape=(28, 28), value_max=255, input_kind="image", input_size=(32, 32))
    pre = preprocessing.fit(plan, images)
    x, y = torch.from_numpy(preprocessing.apply(pre, images)), torch.from_numpy(labels)
    print(f"data: {tuple(x.shape)} float32, batch {BATCH}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")

    with tempfile.TemporaryDirectory() as tmp:
        job = KilnJob(Path(tmp))
        loops = {"kiln": lambda a, b: kiln_epoch(a, b, job), "textbook": textbook_epoch, "bare": bare_epoch}
        names = list(loops)
        seconds = dict.fromkeys(names, 0.0)
        samples = dict.fromkeys(names, 0)
        turn = 0
        for r in range(args.rounds):
            for start in range(0, len(x), args.segment):
                xs, ys = x[start : start + args.segment], y[start : start + args.segment]
                order = names[turn % 3 :] + names[: turn % 3]
                turn += 1
                for name in order:
                    seconds[name] += loops[name](xs, ys)
                    samples[name] += len(xs)
            print(f"  round {r + 1}: " + ", ".join(f"{n} {samples[n] / seconds[n]:.0f}" for n in names) + " samples/s so far")

    rate = {name: samples[name] / seconds[name] for name in names}
    print(f"\n{samples['kiln']} samples through each loop:")
    for name in names:
        print(f"  {name:9s} {rate[name]:8.0f} samples/s")
    print(f"\nkiln / textbook = {rate['kiln'] / rate['textbook']:.3f}   (target >= 1.00)")
    print(f"kiln / bare     = {rate['kiln'] / rate['bare']:.3f}   (target >= 0.95)")


if __name__ == "__main__":
    main()
