"""nettrain against PyTorch on the CPU, measured side by side in one run.

    python benchmarks/run.py [--threads 2] [--rounds 3] [--output benchmarks/results/latest.json]
                             [--cpu-name haswell [--cpu-features +avx2,...]]

For the MNIST `mlp` (784-256-128-10 tanh, batch 64), `lenet` (configs/mnist-lenet.yaml,
batch 128), the CIFAR-shaped `cifar` and `cifar-bn` (benchmarks/configs/, batch 64, random
3x32x32 inputs) and `cifar-resnet` (ResNet-20's shape, batch 128; PyTorch's side built from the
same config by benchmarks/torch_net.py), float32, SGD momentum 0.9: training samples/s over one
whole epoch after a warm-up,
inference samples/s, the ratio nettrain/PyTorch, achieved GFLOP/s (3x the forward FLOPs per
trained sample) against the float32 matrix-product peak measured in the same run, and peak
resident memory of each process. Then the peak memory of a real `nettrain fit` of the LeNet
config (one epoch), the time of `nettrain --help`, and the time of a one-batch `nettrain fit`
with a cold and with a warm Numba cache. PyTorch is optional: `pip install torch==2.13.0`.
Each measurement runs in its own process, one after another. On a shared machine a process's
speed drifts by +-25% from one run to the next, so the frameworks take turns for ``--rounds``
rounds and the table shows each one's best round (every round is kept in the JSON).

onnxruntime, when installed, adds an inference-only row per net: nettrain's own ONNX export run
by an onnxruntime session. ``--cpu-name haswell`` compiles nettrain's kernels for another CPU
(benchmarks/targets.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from targets import numba_target, target_text

ROOT = Path(__file__).resolve().parents[1]
NETS = ("mlp", "lenet", "cifar", "cifar-bn", "cifar-resnet")


def child_env(threads: int, **extra) -> dict:
    env = dict(
        os.environ,
        NETTRAIN_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    env.update(extra)
    return env


def run_child(args, env) -> tuple[str, float]:
    """(stdout, wall seconds) of one child process; its failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout, wall


def matmul_peak(threads: int) -> float:
    code = (
        "import numpy as np, time\n"
        "a = np.random.rand(2048, 2048).astype(np.float32); b = a.copy(); a @ b\n"
        "best = min((lambda s: (a @ b, time.perf_counter() - s)[1])(time.perf_counter())"
        " for _ in range(10))\n"
        "print(2 * 2048**3 / best / 1e9)"
    )
    out, _ = run_child([sys.executable, "-c", code], child_env(threads))
    return float(out)


def cpu_model() -> tuple[str, str]:
    """(model name, widest vector instructions: AVX-512, AVX2, AVX or SSE) from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    for flag, width in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return model, width
    return model, "SSE"


def has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def fit_memory_and_time(threads: int, target: dict) -> dict:
    """Peak RSS of `nettrain fit configs/mnist-lenet.yaml` for one epoch (a real run)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            "-m",
            "nettrain",
            "fit",
            "configs/mnist-lenet.yaml",
            "--quiet",
            "--set",
            "train.epochs=1",
            "--out",
            str(Path(tmp) / "run"),
        ]
        start = time.perf_counter()
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=child_env(threads, **target),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        proc.stderr.close()
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": wall}


def startup(threads: int, target: dict) -> dict:
    """Seconds of `nettrain --help`; and of a one-batch fit with a cold / warm Numba cache:
    from command start to its first trained batch, and to the end of the run (checkpoint
    written)."""
    import numpy as np

    help_times = []
    for _ in range(5):
        _, wall = run_child([sys.executable, "-m", "nettrain", "--help"], child_env(threads))
        help_times.append(wall)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        np.savez(
            tmp / "one-batch.npz",
            x=rng.random((128, 1, 28, 28), dtype=np.float32),
            y=rng.integers(0, 10, 128),
        )
        config = (ROOT / "configs/mnist-lenet.yaml").read_text()
        config = config.replace("dataset: mnist", f"train: {tmp / 'one-batch.npz'}")
        (tmp / "one-batch.yaml").write_text(config)
        env = child_env(threads, **{**target, "NUMBA_CACHE_DIR": str(tmp / "numba-cache")})
        first, whole = [], []
        for n in range(3):  # cold, then warm twice (the better warm figure is kept)
            args = [
                sys.executable, "benchmarks/first_batch.py", "fit", str(tmp / "one-batch.yaml"),
                "--quiet", "--set", "train.epochs=1", "--out", str(tmp / f"run{n}"),
            ]  # fmt: skip
            launched = time.time()
            out, wall = run_child(args, env)
            first.append(float(out.split()[-1]) - launched)
            whole.append(wall)
    return {
        "help_s": min(help_times),
        "first_batch_cold_s": first[0],
        "first_batch_warm_s": min(first[1:]),
        "one_batch_fit_cold_s": whole[0],
        "one_batch_fit_warm_s": min(whole[1:]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/latest.json"))
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument("--no-startup", action="store_true", help="skip the fit and start-up runs")
    parser.add_argument("--cpu-name", help="compile nettrain's kernels for this LLVM CPU name")
    parser.add_argument("--cpu-features", help="NUMBA_CPU_FEATURES for nettrain's processes")
    args = parser.parse_args()
    t = args.threads
    frameworks = ["nettrain"] + (["torch"] if has_torch() else [])
    frameworks += ["onnxruntime"] if has_onnxruntime() else []
    target = numba_target(args.cpu_name, args.cpu_features)
    model, width = cpu_model()
    result = {
        "threads": t,
        "cpu": model,
        "vector_width": width,
        "matmul_peak_gflops": matmul_peak(t),
        "nettrain_target": {k: v for k, v in target.items() if k != "NUMBA_CACHE_DIR"},
        "rounds": [],
        "nets": {},
    }
    for _ in range(args.rounds):
        runs = {}
        for net in args.nets:
            for fw in frameworks:
                env = child_env(t, **(target if fw == "nettrain" else {}))
                out, _ = run_child([sys.executable, "benchmarks/worker.py", fw, net, str(t)], env)
                runs.setdefault(net, {})[fw] = json.loads(out)
                print(f"{net:6s} {fw:9s} {out.strip()}", file=sys.stderr)
        result["rounds"].append(runs)
    result["nets"] = best_rounds(result["rounds"])
    if not args.no_startup:
        result["fit_lenet"] = fit_memory_and_time(t, target)
        result["startup"] = startup(t, target)
    if has_torch():
        import torch

        result["torch_version"] = torch.__version__
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(table(result))


def best_rounds(rounds: list) -> dict:
    """Per net and framework: the highest training and inference samples/s over the rounds
    (each may come from a different round) and the highest peak memory."""
    best = {}
    for runs in rounds:
        for net, by_fw in runs.items():
            for fw, m in by_fw.items():
                b = best.setdefault(net, {}).setdefault(fw, dict(m))
                for key in ("train_samples_per_s", "inference_samples_per_s", "peak_rss_mb"):
                    if m[key] is not None:  # onnxruntime does not train
                        b[key] = max(b[key], m[key])
    return best


def table(r: dict) -> str:
    peak = r["matmul_peak_gflops"]
    lines = [
        f"CPU: {r['cpu']} ({r['vector_width']}); threads: {r['threads']}; float32 "
        f"matrix-product peak: {peak:.1f} GFLOP/s; best of {len(r['rounds'])} rounds",
        *(
            [f"nettrain compiled for: {target_text(r['nettrain_target'])}"]
            * bool(r.get("nettrain_target"))
        ),
        "",
        "| net | framework | train samples/s | ratio | GFLOP/s (% peak) | inference samples/s "
        "| ratio | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for net, by_fw in r["nets"].items():
        ref = by_fw.get("torch")
        flops = by_fw["nettrain"]["forward_flops_per_sample"]
        for fw, m in by_fw.items():
            tr, inf = m["train_samples_per_s"], m["inference_samples_per_s"]
            ratio_i = f"{inf / ref['inference_samples_per_s']:.2f}" if ref else "-"
            if tr is None:  # onnxruntime: inference only
                train = "- | - | -"
            else:
                gflops = 3 * flops * tr / 1e9
                ratio_t = f"{tr / ref['train_samples_per_s']:.2f}" if ref else "-"
                train = f"{tr:,.0f} | {ratio_t} | {gflops:.1f} ({100 * gflops / peak:.0f}%)"
            lines.append(
                f"| {net} | {fw} | {train} | {inf:,.0f} | {ratio_i} | {m['peak_rss_mb']:.0f} |"
            )
    if all("torch" in by_fw for runs in r["rounds"] for by_fw in runs.values()):
        lines.append("")
        for net in r["nets"]:
            for key, what in (
                ("train_samples_per_s", "train"),
                ("inference_samples_per_s", "inference"),
            ):
                ratios = [
                    runs[net]["nettrain"][key] / runs[net]["torch"][key] for runs in r["rounds"]
                ]
                lines.append(
                    f"{net} {what} ratio, round by round: " + ", ".join(f"{x:.2f}" for x in ratios)
                )
    if "startup" not in r:
        return "\n".join(lines)
    f, s = r["fit_lenet"], r["startup"]
    lines += [
        "",
        f"`nettrain fit configs/mnist-lenet.yaml` (1 epoch): peak RSS "
        f"{f['peak_rss_mb']:.0f} MB, {f['wall_s']:.1f} s",
        f"`nettrain --help`: {s['help_s']:.2f} s; `nettrain fit` from command start to its "
        f"first trained batch: {s['first_batch_cold_s']:.1f} s with a cold Numba cache, "
        f"{s['first_batch_warm_s']:.1f} s warm (the whole one-batch run: "
        f"{s['one_batch_fit_cold_s']:.1f} s and {s['one_batch_fit_warm_s']:.1f} s)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
