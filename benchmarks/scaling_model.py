"""The paper projection of docs/scaling.md: data-parallel throughput over N machines.

    python benchmarks/scaling_model.py [--lenet-rate 15300] [--cifar-rate 710] [--latency 25e-6]

Per step of a global batch B on N machines: compute B/N * c (c: seconds per sample on one
machine), then a ring allreduce of the S-byte gradient, 2 (N-1)/N * S / bandwidth + 2 (N-1) *
latency, not overlapped with compute (nettrain reduces once the backward is done). Efficiency is
the compute share of the step; the batch for 90% efficiency solves B/N * c = 9 * allreduce.
Prints the markdown tables of docs/scaling.md.
"""

from __future__ import annotations

import argparse

NETS = {  # name: (parameters, default batch)
    "LeNet (configs/mnist-lenet.yaml)": (43_484, 128),
    "CIFAR-shaped net": (1_116_970, 64),
}
MACHINES = (2, 4, 8, 16, 32, 64)
LINKS = (10, 25, 100)  # Gbit/s


def allreduce(n: int, size: float, gbit: float, latency: float) -> float:
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * size / (gbit * 1e9 / 8) + 2 * (n - 1) * latency


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lenet-rate", type=float, default=15_300, help="samples/s, 1 machine")
    parser.add_argument("--cifar-rate", type=float, default=710, help="samples/s, 1 machine")
    parser.add_argument("--latency", type=float, default=25e-6, help="seconds per message")
    args = parser.parse_args()
    rates = dict(zip(NETS, (args.lenet_rate, args.cifar_rate), strict=True))
    for name, (params, batch) in NETS.items():
        c, size = 1 / rates[name], 4 * params
        print(f"\n### {name}: {params:,} float32 parameters ({size / 1e6:.2f} MB), "
              f"{rates[name]:,.0f} samples/s on one machine, batch {batch}\n")  # fmt: skip
        head = " | ".join(f"{g} Gbit/s" for g in LINKS)
        print(f"| machines | {head} | batch for 90% at {' / '.join(map(str, LINKS))} Gbit/s |")
        print("|---:|" + "---:|" * (len(LINKS) + 1))
        for n in MACHINES:
            cells = []
            for g in LINKS:
                t_ar = allreduce(n, size, g, args.latency)
                step = batch / n * c + t_ar
                cells.append(f"{batch / step:,.0f}/s ({batch / n * c / step:.0%})")
            need = [9 * n * allreduce(n, size, g, args.latency) / c for g in LINKS]
            print(f"| {n} | " + " | ".join(cells) + " | "
                  + " / ".join(f"{b:,.0f}" for b in need) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
