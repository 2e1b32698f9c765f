"""Data-parallel training under `mpirun -n 1/2/3 --oversubscribe` (the `mpi` extra).

Every mpirun runs with a timeout, so that a hang fails the test instead of blocking CI. The nets
are small and float64, so that N ranks and one process can be compared to 1e-10.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
pytest.importorskip("mpi4py")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun (pip install 'nettrain[mpi]')")

ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "NETTRAIN_THREADS": "1",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",  # CI containers run as root
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}
TIMEOUT = 300  # seconds: a hang guard only, generous for a slow or busy machine

# A conv net with every layer whose result depends on the whole batch or on random draws:
# batchnorm (synchronised statistics), dropout (masks of the global batch), augmentation.
CONFIG = """
seed: 3
dtype: float64
data:
  train: {path: train.npz}
  validation: 0.25
  augment: {translate: 1, flip: true}
model:
  input: [1, 6, 6]
  layers:
    - {type: conv2d, filters: 3, kernel: 3, padding: same, activation: relu}
    - {type: batchnorm}
    - {type: maxpool2d, size: 2}
    - {type: dense, units: 8, activation: tanh}
    - {type: dropout, drop_prob: 0.3}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 10
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  clip_grad_norm: 0.5  # clips the gradient summed over the ranks: the same on every one
  label_smoothing: 0.1  # each rank smooths its own share of the targets
  ema: 0.9  # every rank averages the same weights: scores and checkpoints hold the average
"""


def mpirun(n: int, *args, timeout=TIMEOUT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MPIRUN, "-n", str(n), "--oversubscribe", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def fit(n: int, folder: Path, *extra) -> subprocess.CompletedProcess:
    """`nettrain fit` on n ranks (n = 0: one process without mpirun)."""
    cmd = [sys.executable, "-m", "nettrain", "fit", str(folder / "net.yaml"), *extra]
    if n == 0:
        return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    return mpirun(n, *cmd)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    # 69 samples: 52 train after the hold-out, so the last batch of 2 leaves a rank of 3 empty
    y = rng.integers(0, 3, 69)
    x = rng.standard_normal((69, 1, 6, 6)) + y[:, None, None, None]
    np.savez(tmp_path / "train.npz", x=x, y=y)
    (tmp_path / "net.yaml").write_text(CONFIG)
    return tmp_path


def weights(path: Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith(("layers.", "optimizer."))}


def assert_close(a: dict, b: dict, rel=1e-10):
    assert a.keys() == b.keys()
    for k in a:
        scale = max(np.abs(a[k]).max(), 1e-300)
        assert np.abs(a[k] - b[k]).max() <= rel * scale, k


def test_one_allreduce_sums_every_rank_gradient_loss_sums_and_stop_flag():
    script = """
import json, numpy as np
from nettrain.training.mpi import world
w = world()
grads = {"a": np.full((2, 3), float(w.rank)), "b": np.full(4, 10.0 * w.rank)}
loss, sums, stop = w.reduce_step(grads, float(w.rank), {"correct": w.rank + 1}, w.rank == 2)
shares = [(s.start, s.stop) for s in [w.block(10), w.block(2)]]
print(json.dumps([w.rank, grads["a"].tolist(), grads["b"].tolist(), loss, sums, stop, shares]))
"""
    result = mpirun(3, sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    rows = sorted(json.loads(line) for line in result.stdout.splitlines())
    assert [r[0] for r in rows] == [0, 1, 2]
    for _, a, b, loss, sums, stop, _ in rows:
        assert a == [[3.0] * 3] * 2 and b == [30.0] * 4
        assert loss == 3.0 and sums == {"correct": 6} and stop is True
    assert [r[6] for r in rows] == [[[0, 3], [0, 0]], [[3, 6], [0, 1]], [[6, 10], [1, 2]]]


def test_an_error_of_one_rank_alone_aborts_the_job_an_error_of_all_is_told_once():
    script = """
import sys
from nettrain.cli.base import failures
from nettrain.training.mpi import world
from nettrain.core.errors import UserError
w = world()
try:  # as the CLI's group does: rank 0's error printed, its exit code
    with failures(w, wait=1.0):
        if w.rank == 1 or sys.argv[1] == "all":
            raise UserError("data.csv", "line 3: not a number")
        w.barrier()  # rank 0 waits for rank 1, which never comes
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""
    alone = mpirun(3, sys.executable, "-c", script, "one")
    assert alone.returncode == 2
    assert "error: rank 1: data.csv: line 3: not a number" in alone.stderr
    every = mpirun(3, sys.executable, "-c", script, "all")
    assert every.returncode == 2
    assert every.stderr.count("not a number") == 1 and "rank" not in every.stderr


def test_n_ranks_end_with_the_weights_of_one_process_on_every_rank(folder):
    """Library training under mpirun -n 3: every rank's weights, and rank 0's run folder, equal
    the one-process run's to 1e-10 (batchnorm, dropout, augmentation, uneven and empty shares)."""
    one = fit(0, folder, "--out", str(folder / "one"), "--quiet")
    assert one.returncode == 0, one.stderr
    job = f"""
import numpy as np
from pathlib import Path
from nettrain.config import load_config
from nettrain.training.fit import fit
cfg, src = load_config("{folder / "net.yaml"}", ())
run = fit(cfg, src, folder=Path("{folder}") / "three").run
np.savez("{folder}/rank%d.npz" % run.world.rank, **run.net.arrays())
"""
    result = mpirun(3, sys.executable, "-c", job)
    assert result.returncode == 0, result.stderr
    reference = weights(folder / "one" / "last.npz")
    assert_close(weights(folder / "three" / "last.npz"), reference)
    ranks = [dict(np.load(folder / f"rank{r}.npz")) for r in range(3)]
    for r in (1, 2):
        for k, v in ranks[0].items():
            assert np.array_equal(v, ranks[r][k]), (r, k)  # the same bits on every rank
    for k, v in ranks[0].items():
        assert np.abs(v - reference[k]).max() <= 1e-10 * max(np.abs(v).max(), 1e-300), k
    assert not (folder / "three" / "rank1").exists()


def test_two_ranks_repeat_bit_for_bit_print_once_and_match_one_process(folder):
    runs = [fit(2, folder, "--out", str(folder / f"two{i}")) for i in (0, 1)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("epoch 2/2") == 1 and r.stderr.count("done:") == 1
    a, b = (weights(folder / f"two{i}" / "last.npz") for i in (0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    one = fit(1, folder, "--out", str(folder / "one"), "--quiet")  # mpirun -n 1: one process
    assert one.returncode == 0, one.stderr
    assert_close(a, weights(folder / "one" / "last.npz"))
    # the same figures (validation scored in blocks, gathered), so the same best.npz
    two, one = (np.genfromtxt(folder / f / "metrics.csv", delimiter=",", names=True)
                for f in ("two0", "one"))  # fmt: skip
    for name in two.dtype.names:
        if name != "seconds":
            assert np.allclose(two[name], one[name], rtol=1e-9, atol=0), name
    assert_close(weights(folder / "two0" / "best.npz"), weights(folder / "one" / "best.npz"))
    env = (folder / "two0" / "environment.yaml").read_text()
    assert "mpi_ranks: 2" in env


REGRESSION = """
seed: 0
dtype: float64
data: {train: reg.npz}
model:
  input: [3]
  layers:
    - {type: dense, units: 6, activation: tanh}
    - {type: dense, units: 2}
  loss: squared_error
train:
  epochs: 2
  batch_size: 10
  optimizer: {name: sgd, lr: 0.05}
"""


def test_regression_figures_on_two_ranks_are_those_of_one_process(tmp_path):
    """train_rmse, train_mae and train_r2 are sums over every rank's samples: 2 ranks log the
    figures of one process (each rank's own half would give others)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3))
    np.savez(tmp_path / "reg.npz", x=x, y=np.stack([x[:, 0] * 3, x[:, 1] - x[:, 2]], 1))
    (tmp_path / "net.yaml").write_text(REGRESSION)
    for n, out in ((0, "one"), (2, "two")):
        result = fit(n, tmp_path, "--out", str(tmp_path / out), "--quiet")
        assert result.returncode == 0, result.stderr
    two, one = (np.genfromtxt(tmp_path / f / "metrics.csv", delimiter=",", names=True)
                for f in ("two", "one"))  # fmt: skip
    figures = [n for n in one.dtype.names if n.startswith("train_") and n != "train_loss"]
    assert {"train_rmse", "train_mae"} <= set(figures)
    for name in figures:
        assert np.allclose(two[name], one[name], rtol=1e-9, atol=0), name


def test_nan_on_one_rank_stops_every_rank(folder):
    with np.load(folder / "train.npz") as f:
        x, y = f["x"].copy(), f["y"]
    x[5] = 1e200  # the gradient overflows in one rank's share only
    np.savez(folder / "train.npz", x=x, y=y)
    layers = "model.layers=[{type: dense, units: 8, activation: relu}, {type: dense, units: 3}, "
    layers += "softmax]"
    # unclipped: clipping would bound the overflowing rank's huge (finite) gradient
    result = fit(2, folder, "--out", str(folder / "nan"), "--set", "data.validation=null",
                 "--set", "data.augment=null", "--set", layers,
                 "--set", "train.clip_grad_norm=null")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("training diverged") == 1


def start(n: int, folder: Path, out: str, *extra) -> subprocess.Popen:
    cmd = [MPIRUN, "-n", str(n), "--oversubscribe", sys.executable, "-m", "nettrain", "fit"]
    cmd += [str(folder / "net.yaml"), "--out", str(folder / out), "--set", "train.epochs=400"]
    return subprocess.Popen([*cmd, *extra], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def ranks_of(job: subprocess.Popen, n: int, folder: Path, out: str) -> list[int]:
    """The pids of the job's ranks once training has started (rank 0 wrote metrics.csv)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        children = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True)
        pids = [int(p) for p in children.stdout.split()]
        if len(pids) >= n and (folder / out / "metrics.csv").exists():
            return pids
        time.sleep(0.2)
    job.kill()
    raise AssertionError("the job did not start")


def epoch_rows(job: subprocess.Popen, out: Path, n: int) -> None:
    """Wait until rank 0 has logged n epochs in out/metrics.csv (a state, not a time)."""
    deadline = time.monotonic() + TIMEOUT  # a hang guard only
    while len((out / "metrics.csv").read_text().splitlines()) < n + 1:
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline, f"no {n} epochs logged in {TIMEOUT} s"
        time.sleep(0.05)


def test_sigint_to_one_rank_stops_all_at_one_step_and_resumes_on_three(folder):
    job = start(2, folder, "stop")
    try:
        pids = ranks_of(job, 2, folder, "stop")
        epoch_rows(job, folder / "stop", 1)  # mid-training: an epoch is done, 399 are not
        os.kill(pids[-1], signal.SIGINT)
        _, err = job.communicate(timeout=TIMEOUT)
    finally:
        job.kill()
    assert job.returncode == 130, err
    assert err.count("interrupted; checkpoint written") == 1
    # the interrupted run, resumed on 3 ranks for two more epochs, ends where the same run never
    # interrupted ends. How far it got in its second depends on the machine's speed: hundreds of
    # epochs on an idle one, over which this tiny net's training is chaotic enough to grow the
    # rounding differences between 2 ranks and one process to O(1); so the reference is 2 ranks.
    last = folder / "stop" / "last.npz"
    with np.load(last) as f:
        epochs = f"train.epochs={json.loads(str(f['__meta__']))['epoch'] + 2}"
    resumed = fit(3, folder, "--resume", str(last), "--set", epochs, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    whole = fit(2, folder, "--out", str(folder / "whole"), "--set", epochs, "--quiet")
    assert whole.returncode == 0, whole.stderr
    assert_close(weights(last), weights(folder / "whole" / "last.npz"))


def test_sigusr1_to_mpirun_stops_every_rank_cleanly(folder):
    """Open MPI's mpirun kills its ranks 0.2 s after its own SIGINT/SIGTERM, but forwards
    SIGUSR1: the documented way to stop a job from outside."""
    job = start(2, folder, "usr1", "--set", "train.checkpoint.every_steps=0")
    try:
        ranks_of(job, 2, folder, "usr1")
        job.send_signal(signal.SIGUSR1)
        _, err = job.communicate(timeout=TIMEOUT)
    finally:
        job.kill()
    assert job.returncode == 130, err
    with np.load(folder / "usr1" / "last.npz") as f:
        assert "layers.0.weight" in f.files


def test_without_a_launcher_mpi_is_never_imported():
    script = "import sys; from nettrain.training.mpi import world; "
    script += "print(world().size, 'mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True,
                            text=True, timeout=TIMEOUT)  # fmt: skip
    assert result.stdout.split() == ["1", "False"], result.stderr


def test_ranks_share_the_cores_of_their_machine():
    script = "from nettrain.runtime import threads; print(threads.configure(), threads.adaptive())"
    env = {k: v for k, v in ENV.items() if k != "NETTRAIN_THREADS"}
    env.update(OMPI_COMM_WORLD_SIZE="4", OMPI_COMM_WORLD_LOCAL_SIZE="2")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)  # fmt: skip
    count, adaptive = result.stdout.split()
    assert int(count) == max(1, min(len(os.sched_getaffinity(0)), os.cpu_count() // 2))
    assert adaptive == "False"


def test_a_killed_rank_ends_the_job_with_an_error(folder):
    job = start(2, folder, "killed")
    try:
        pids = ranks_of(job, 2, folder, "killed")
        os.kill(pids[-1], signal.SIGKILL)
        # the timeout is a hang guard only: the job must end, on a slow machine in its own time
        _, err = job.communicate(timeout=TIMEOUT)
    finally:
        job.kill()
    assert job.returncode != 0
    assert "signal 9" in err or "Killed" in err
