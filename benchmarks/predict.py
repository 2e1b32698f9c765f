"""`nettrain predict` end to end against the forward pass alone and against PyTorch.

    python benchmarks/predict.py CKPT INPUTS.npz [--threads 2]

CKPT: a checkpoint of the MNIST MLP (`nettrain fit configs/mnist-mlp.yaml`); INPUTS.npz: images
under `x` (e.g. the 60,000 MNIST training images, uint8). Prints, in one process each: the
seconds of every phase of nettrain's predict (imports, checkpoint, reading and converting the
inputs, the first Numba call (loading its cache), predicting, writing the .npy) and samples/s of
the predict step and of the whole run, then the same job in PyTorch (np.load, scale, the same
784-256-128-10 tanh net in batches of 256, np.save; weights left random: only speed counts).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time

NETTRAIN = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np
from nettrain.inference import single
t1 = time.perf_counter()
net, meta = single.load_net(sys.argv[1])
t2 = time.perf_counter()
inputs = single.read_inputs(sys.argv[2], net, meta)
t3 = time.perf_counter()
net.forward(np.zeros((1, *net.input_shape), net.dtype))
t4 = time.perf_counter()
out = single.predict(net, inputs)
t5 = time.perf_counter()
single.write_predictions(out, meta.get("targets") == "classes", "npy", open(sys.argv[3], "wb"))
t6 = time.perf_counter()
n = len(out)
print(f"nettrain: imports {t1 - t0:.2f} s, checkpoint {t2 - t1:.2f} s, read {t3 - t2:.2f} s, "
      f"first Numba call {t4 - t3:.2f} s, predict {t5 - t4:.2f} s ({n / (t5 - t4):,.0f}/s), "
      f"write {t6 - t5:.3f} s; whole {t6 - t0:.2f} s ({n / (t6 - t0):,.0f} samples/s)")
s = time.perf_counter()
single.predict(net, inputs)
print(f"nettrain: predict again {n / (time.perf_counter() - s):,.0f} samples/s")
"""

TORCH = r"""
import sys, time
t0 = time.perf_counter()
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
t1 = time.perf_counter()
x = np.load(sys.argv[1])["x"]
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.Tanh(),
                            torch.nn.Linear(256, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10),
                            torch.nn.Softmax(dim=1)).eval()
t2 = time.perf_counter()
xs = torch.from_numpy(x)
out = torch.empty((len(x), 10))
with torch.no_grad():
    for b in range(0, len(x), 256):
        out[b : b + 256] = model(xs[b : b + 256].float().div_(255.0))
t3 = time.perf_counter()
np.save(sys.argv[2], out.numpy())
t4 = time.perf_counter()
n = len(x)
print(f"torch: imports {t1 - t0:.2f} s, read {t2 - t1:.2f} s, predict {t3 - t2:.2f} s "
      f"({n / (t3 - t2):,.0f}/s), write {t4 - t3:.3f} s; whole {t4 - t0:.2f} s "
      f"({n / (t4 - t0):,.0f} samples/s)")
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("inputs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    t = str(args.threads)
    env = dict(os.environ, NETTRAIN_THREADS=t, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t)
    out = io.StringIO()
    for code, argv in ((NETTRAIN, [args.ckpt, args.inputs, os.devnull]),
                       (TORCH, [args.inputs, os.devnull, t])):  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                              text=True)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        out.write(proc.stdout)
        out.write(f"  (process, interpreter start included: {time.perf_counter() - start:.2f} s)\n")
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
