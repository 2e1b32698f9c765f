"""One measurement in its own process (so that its peak memory is its own).

    python benchmarks/worker.py nettrain|torch mlp|lenet THREADS

Prints one JSON object: training samples/s over a whole epoch after a warm-up epoch part,
inference samples/s over the 10000 test images (the best of 5 passes), peak resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time

FRAMEWORK, NET, THREADS = sys.argv[1], sys.argv[2], int(sys.argv[3])
BATCH = {"mlp": 64, "lenet": 128}[NET]
CONFIG = {"mlp": "configs/mnist-mlp.yaml", "lenet": "configs/mnist-lenet.yaml"}[NET]
LR = {"mlp": 0.05, "lenet": 0.05}[NET]
WARMUP_BATCHES = 50
INFERENCE_PASSES = 5


def best_pass(predict, n: int, passes: int = INFERENCE_PASSES) -> float:
    """Seconds of the fastest of ``passes`` passes of predict(start) over n samples, 1000 at a
    time: one pass takes well under a second, so the best of a few is steadier."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for b in range(0, n, 1000):
            predict(b)
        times.append(time.perf_counter() - start)
    return min(times)


def nettrain_run():
    from nettrain.threads import configure

    configure(THREADS)
    import numpy as np

    from nettrain import streams, train
    from nettrain.config import load_config

    cfg, src = load_config(
        CONFIG,
        [
            f"train.batch_size={BATCH}",
            "train.epochs=1",
            f"train.optimizer.lr={LR}",
            "train.schedule=constant",
        ],
    )
    run = train.prepare(cfg, src)
    net, data, test = run.net, run.train, run.test
    params, grads, opt = net.params(), net.grads(), run.optimizer
    order = streams.epoch_order(0, 0, len(data), True)

    def step(idx):
        x = data.inputs(idx, net.dtype)
        t = data.targets(idx, net.n_outputs, net.dtype)
        net.loss_and_backward(x, t, input_grad=False)  # as fit trains: no gradient for the data
        opt.step(params, grads)

    for b in range(WARMUP_BATCHES):  # compile kernels, warm caches
        step(order[b * BATCH : (b + 1) * BATCH])
    start = time.perf_counter()
    for b in range(0, len(data), BATCH):
        step(order[b : b + BATCH])
    train_seconds = time.perf_counter() - start
    xs = test.inputs(np.arange(len(test)), net.dtype)
    net.forward(xs[:1000], train=False)
    infer_seconds = best_pass(lambda b: net.forward(xs[b : b + 1000], train=False), len(xs))
    flops = sum(layer.flops() for layer in net.layers)
    return len(data), train_seconds, len(test), infer_seconds, flops


def torch_run():
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    from nettrain.data import mnist

    data, test = mnist("train"), mnist("test")
    torch.manual_seed(0)
    nn = torch.nn
    if NET == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.Tanh(),
            nn.Linear(256, 128),
            nn.Tanh(),
            nn.Linear(128, 10),
        )
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3),
            nn.Flatten(),
            nn.Linear(256, 150),
            nn.Tanh(),
            nn.Linear(150, 10),
        )
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()  # softmax + multinomial cross-entropy, mean over the batch
    x_all = torch.from_numpy(data.x)
    y_all = torch.from_numpy(data.y)
    order = torch.from_numpy(np.random.default_rng([0, 1, 0]).permutation(len(data.x)))

    def step(idx):
        x = x_all[idx].float().div_(255.0)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y_all[idx])
        loss.backward()
        opt.step()

    for b in range(WARMUP_BATCHES):
        step(order[b * BATCH : (b + 1) * BATCH])
    start = time.perf_counter()
    for b in range(0, len(order), BATCH):
        step(order[b : b + BATCH])
    train_seconds = time.perf_counter() - start
    xs = torch.from_numpy(test.x).float().div_(255.0)
    with torch.no_grad():
        model(xs[:1000])
        infer_seconds = best_pass(lambda b: model(xs[b : b + 1000]), len(xs))
    return len(data.x), train_seconds, len(test.x), infer_seconds, None


if __name__ == "__main__":
    n, train_s, n_test, infer_s, flops = (nettrain_run if FRAMEWORK == "nettrain" else torch_run)()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "framework": FRAMEWORK,
                "net": NET,
                "threads": THREADS,
                "batch": BATCH,
                "train_samples_per_s": n / train_s,
                "train_epoch_s": train_s,
                "inference_samples_per_s": n_test / infer_s,
                "peak_rss_mb": peak_kb / 1024,
                "forward_flops_per_sample": flops,
            }
        )
    )
