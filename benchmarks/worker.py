"""One measurement in its own process (so that its peak memory is its own).

    python benchmarks/worker.py nettrain|torch|onnxruntime NET THREADS

NET: mlp, lenet, cifar, cifar-bn or cifar-resnet.

Prints one JSON object: training samples/s over a whole epoch after a warm-up epoch part,
inference samples/s over the 10000 test images (the best of 5 passes), peak resident memory.
`onnxruntime` only infers: the same net built by nettrain (untrained), exported by nettrain's
ONNX export and run by an onnxruntime session with THREADS intra-op threads.
The MNIST nets train on MNIST; `cifar`, `cifar-bn` and `cifar-resnet` (benchmarks/configs/) on
random 3x32x32 inputs with random labels: CIFAR_TRAIN samples, inference over CIFAR_TEST in batches
of 256. PyTorch's `cifar-resnet` is built from the same config (benchmarks/torch_net.py).
"""

from __future__ import annotations

import json
import resource
import sys
import time

FRAMEWORK, NET, THREADS = sys.argv[1], sys.argv[2], int(sys.argv[3])
CIFAR = NET.startswith("cifar")
BATCH = {"mlp": 64, "lenet": 128, "cifar": 64, "cifar-bn": 64, "cifar-resnet": 128}[NET]
CONFIG = {
    "mlp": "configs/mnist-mlp.yaml",
    "lenet": "configs/mnist-lenet.yaml",
    "cifar": "benchmarks/configs/cifar.yaml",
    "cifar-bn": "benchmarks/configs/cifar-bn.yaml",
    "cifar-resnet": "benchmarks/configs/cifar-resnet.yaml",
}[NET]
LR = 0.01 if CIFAR else 0.05
WARMUP_BATCHES = 5 if CIFAR else 50
INFERENCE_PASSES = 3 if CIFAR else 5
CIFAR_TRAIN, CIFAR_TEST = 2560, 1024
CHUNK = 256 if CIFAR else 1000  # samples per inference call


def best_pass(predict, n: int, passes: int = INFERENCE_PASSES) -> float:
    """Seconds of the fastest of ``passes`` passes of predict(start) over n samples, CHUNK at a
    time: one pass takes well under a second, so the best of a few is steadier."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for b in range(0, n, CHUNK):
            predict(b)
        times.append(time.perf_counter() - start)
    return min(times)


def random_images():
    """(x, labels, x_test) for the cifar nets: uniform [0, 1) 3x32x32 float32 images."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((CIFAR_TRAIN + CIFAR_TEST, 3, 32, 32), dtype=np.float32)
    return x[:CIFAR_TRAIN], rng.integers(0, 10, CIFAR_TRAIN), x[CIFAR_TRAIN:]


def nettrain_run():
    from nettrain.runtime.memory import keep_freed_memory
    from nettrain.runtime.threads import configure

    configure(THREADS)
    keep_freed_memory()  # as every nettrain command does (nettrain/cli/commands.py)
    import numpy as np

    from nettrain.config import load_config
    from nettrain.core import streams
    from nettrain.training.prepare import prepare

    if CIFAR:
        return nettrain_random()
    cfg, src = load_config(
        CONFIG,
        [
            f"train.batch_size={BATCH}",
            "train.epochs=1",
            f"train.optimizer.lr={LR}",
            "train.schedule=constant",
        ],
    )
    run = prepare(cfg, src)
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
    infer_seconds = nettrain_inference(net, xs)
    flops = sum(layer.flops() for layer in net.layers)
    return len(data), train_seconds, len(test), infer_seconds, flops


def nettrain_inference(net, xs) -> float:
    """Seconds of the best pass of ``predict`` over xs in chunks (what `nettrain predict` and
    Model.predict run: batchnorm folded into the convs, nettrain.net.fold)."""
    from nettrain.inference.single import predict

    predict(net, xs[:CHUNK], CHUNK)
    return best_pass(lambda b: predict(net, xs[b : b + CHUNK], CHUNK), len(xs))


def nettrain_random():
    """The cifar nets: built from their config, trained on random images as fit would."""
    import numpy as np

    from nettrain.assemble import net_for_config
    from nettrain.core import streams
    from nettrain.optim import make_optimizer

    net, cfg = net_for_config(CONFIG, [f"train.optimizer.lr={LR}"])
    net.init_params(streams.bench_rng(0))
    x, labels, xs = random_images()
    targets = np.eye(10, dtype=np.float32)[labels]
    params, grads = net.params(), net.grads()
    opt = make_optimizer(cfg["train"]["optimizer"], params)
    order = np.random.default_rng(1).permutation(len(x))

    def step(idx):
        net.loss_and_backward(x[idx], targets[idx], input_grad=False)
        opt.step(params, grads)

    for b in range(WARMUP_BATCHES):
        step(order[b * BATCH : (b + 1) * BATCH])
    start = time.perf_counter()
    for b in range(0, len(x), BATCH):
        step(order[b : b + BATCH])
    train_seconds = time.perf_counter() - start
    infer_seconds = nettrain_inference(net, xs)
    flops = sum(layer.flops() for layer in net.layers)
    return len(x), train_seconds, len(xs), infer_seconds, flops


def onnxruntime_run():
    """Inference only, on nettrain's own ONNX export of the net (train_samples_per_s: null)."""
    import numpy as np
    import onnxruntime as ort

    from nettrain.export.onnx import to_onnx

    if CIFAR:
        from nettrain.assemble import net_for_config
        from nettrain.core import streams

        net, _ = net_for_config(CONFIG)
        net.init_params(streams.bench_rng(0))
        xs = random_images()[2]
    else:
        from nettrain.config import load_config
        from nettrain.training.prepare import prepare

        run = prepare(*load_config(CONFIG, ["train.epochs=1"]))
        net, test = run.net, run.test
        xs = test.inputs(np.arange(len(test)), net.dtype)
    meta = {"data": {"preprocess": None}, "config": {}}  # xs are already preprocessed
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(
        to_onnx([(net, meta, "benchmark")]), options, providers=["CPUExecutionProvider"]
    )
    xs = np.ascontiguousarray(xs, dtype=np.float32)
    session.run(None, {"input": xs[:CHUNK]})
    infer_seconds = best_pass(lambda b: session.run(None, {"input": xs[b : b + CHUNK]}), len(xs))
    return None, None, len(xs), infer_seconds, None


def torch_cifar(nn, bn: bool):
    """The cifar net in PyTorch; with ``bn`` a BatchNorm2d after every conv (conv bias off)."""
    layers, channels = [], 3
    for filters, pool in ((32, False), (32, True), (64, False), (64, True)):
        layers.append(nn.Conv2d(channels, filters, 3, padding=1, bias=not bn))
        layers += [nn.BatchNorm2d(filters)] if bn else []
        layers.append(nn.ReLU())
        layers += [nn.MaxPool2d(2)] if pool else []
        channels = filters
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def torch_run():
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    nn = torch.nn
    if NET == "cifar-resnet":  # from its config, graph and all
        from torch_net import TorchNet

        from nettrain.config import load_config

        model = TorchNet(load_config(CONFIG, ())[0])
    if CIFAR:
        model = model if NET == "cifar-resnet" else torch_cifar(nn, NET == "cifar-bn")
        x, labels, x_test = random_images()
        x_all, y_all, xs = torch.from_numpy(x), torch.from_numpy(labels), torch.from_numpy(x_test)
        scale = 1.0
    else:
        from nettrain.data import mnist

        data, test = mnist("train"), mnist("test")
        x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y)
        xs = torch.from_numpy(test.x).float().div_(255.0)
        scale = 255.0
    if NET == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.Tanh(),
            nn.Linear(256, 128),
            nn.Tanh(),
            nn.Linear(128, 10),
        )
    elif NET == "lenet":
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
    order = torch.from_numpy(np.random.default_rng([0, 1, 0]).permutation(len(x_all)))

    def step(idx):
        x = x_all[idx].float().div_(scale)
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
    model.eval()
    with torch.no_grad():
        model(xs[:CHUNK])
        infer_seconds = best_pass(lambda b: model(xs[b : b + CHUNK]), len(xs))
    return len(x_all), train_seconds, len(xs), infer_seconds, None


if __name__ == "__main__":
    runner = {"nettrain": nettrain_run, "torch": torch_run, "onnxruntime": onnxruntime_run}
    n, train_s, n_test, infer_s, flops = runner[FRAMEWORK]()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "framework": FRAMEWORK,
                "net": NET,
                "threads": THREADS,
                "batch": BATCH,
                "train_samples_per_s": n / train_s if n else None,
                "train_epoch_s": train_s,
                "inference_samples_per_s": n_test / infer_s,
                "peak_rss_mb": peak_kb / 1024,
                "forward_flops_per_sample": flops,
            }
        )
    )
