"""Job specs that more than one suite (and the benchmarks) submit."""

# The README's example: LeNet-5 on builtin:digits, ~0.96 val_accuracy in a few seconds.
LENET_JOB = {
    "name": "lenet-digits",
    "model": {"architecture": "lenet5", "params": {"activation": "relu"}},
    "data": {"dataset": "builtin:digits", "validation_fraction": 0.2},
    "training": {"epochs": 10, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001}},
    "seed": 0,
}

# A few seconds of LeNet-5: for tests that need jobs to finish, not to learn much.
SHORT_JOB = {
    "name": "short",
    "model": {"architecture": "lenet5"},
    "data": {"dataset": "builtin:digits"},
    "training": {"epochs": 3, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
}
