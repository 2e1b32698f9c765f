"""`nettrain tune`: the space file, the seeded sampler, one trial's process, and whole searches on
a tiny generated set (in memory; two processes on one SQLite study; interrupted and resumed).

Trials are `nettrain fit` child processes: they import this checkout (PYTHONPATH) and run on one
thread each. Every child process carries a timeout, so that a hang fails instead of blocking."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import invoke

optuna = pytest.importorskip("optuna")

from nettrain.config import load_config  # noqa: E402
from nettrain.tuning import study as studies  # noqa: E402
from nettrain.tuning.space import read_space, set_items, set_text  # noqa: E402
from nettrain.tuning.trial import fit_command, run_trial  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180
CONFIG = """\
seed: 0
data:
  dataset: {name: blobs, n: 200, classes: 3, features: 4, noise: 1.0}
  preprocess: standardize
model:
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3}
    - softmax
  loss: multinomial_cross_entropy
train:
  epochs: 2
  batch_size: 16
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
"""
SPACE = """\
train.optimizer.lr: {log_uniform: [1e-3, 1.0]}
train.batch_size: {choice: [8, 16, 32]}
model.layers.0.units: {int: [2, 16]}
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A folder with cfg.yaml and space.yaml, the working directory; trials import this checkout
    and use one thread."""
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    (tmp_path / "space.yaml").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("NETTRAIN_THREADS", "1")
    return tmp_path


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- the space file --------------------------------------------------------------------------


def test_space_values_become_set_items_yaml_reads_back():
    assert set_text(1e-5) == "1.0e-05" and yaml.safe_load(set_text(1e-5)) == 1e-5
    assert set_items({"a.b": [1, 2], "c": "adam"}) == ["a.b=[1, 2]", "c=adam"]


def test_space_is_read_with_its_kinds(folder):
    dims = read_space("space.yaml", "cfg.yaml")
    assert [(d.key, d.kind, d.values) for d in dims] == [
        ("train.optimizer.lr", "log_uniform", [1e-3, 1.0]),
        ("train.batch_size", "choice", [8, 16, 32]),
        ("model.layers.0.units", "int", [2, 16]),
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("train.optimizer.lr: {normal: [0, 1]}", "expected a mapping with one of the kinds"),
        ("train.optimizer.lr: {log_uniform: [0, 1]}", "0 < lo < hi"),
        ("train.optimizer.lr: {uniform: [1, 0.5]}", "lo < hi"),
        ("train.epochs: {int: [1, 2.5]}", "integers"),
        ("train.batch_size: {choice: []}", "one or more values"),
        ("train.optimizer.rate: {uniform: [0.1, 0.2]}", "unknown key 'rate'"),
        ("train.batch_size: {int: [0, 8]}", "does not fit the config"),
    ],
)
def test_a_bad_space_names_its_file_and_line(folder, line, message):
    (folder / "bad.yaml").write_text("model.layers.0.units: {int: [2, 4]}\n" + line + "\n")
    result = invoke("tune", "cfg.yaml", "--space", "bad.yaml", code=2)
    assert "error: bad.yaml:2" in result.stderr and message in result.stderr
    assert not Path("runs").exists()


def test_a_test_set_monitor_is_refused(folder):
    result = invoke(
        "tune", "cfg.yaml", "--space", "space.yaml", "--set", "train.checkpoint.monitor=test_loss",
        code=2,
    )  # fmt: skip
    assert "scored on the validation set" in result.stderr


# -- sampling --------------------------------------------------------------------------------


def sampled(seed, n, numbers=None):
    """The values of n trials asked from a fresh in-memory study (told a made-up score)."""
    study = optuna.create_study(sampler=studies.seeded_sampler(seed, n), direction="maximize")
    values = []
    for _ in range(n):
        trial = study.ask()
        v = (trial.suggest_float("lr", 1e-3, 1.0, log=True), trial.suggest_int("units", 2, 16))
        study.tell(trial, -abs(v[0] - 0.1))
        values.append(v)
    return values


def test_the_same_seed_and_count_give_the_same_trials():
    assert sampled(3, 8) == sampled(3, 8)
    assert sampled(3, 8) != sampled(4, 8)
    assert len(set(sampled(3, 8))) == 8


# -- one trial -------------------------------------------------------------------------------


def test_a_pruned_trial_is_stopped_after_the_row_that_pruned_it(folder):
    command = fit_command("cfg.yaml", ["train.epochs=500"], folder / "t", None)
    seen = []

    def prune_at_first(row):
        seen.append(row["epoch"])
        return False

    result = run_trial(command, folder / "t", prune_at_first, lambda: False)
    assert result.state == "pruned"
    assert seen[0] == 1.0 and 1 <= len(result.rows) < 500
    assert (folder / "t" / "last.npz").is_file()  # stopped as Ctrl-C stops fit: checkpoint kept


def test_a_trial_with_bad_input_is_an_error(folder):
    command = fit_command("cfg.yaml", ["train.batch_size=0"], folder / "t", None)
    result = run_trial(command, folder / "t", lambda row: True, lambda: False)
    assert result.state == "error" and "batch_size" in result.message


# -- whole searches --------------------------------------------------------------------------


def test_a_search_writes_its_table_best_yaml_and_trial_folders(folder):
    result = invoke(
        "tune", "cfg.yaml", "--space", "space.yaml", "--trials", "3", "--jobs", "2",
        "--out", "search",
    )  # fmt: skip
    assert "holds out data.validation=0.1" in result.stderr
    rows = read_csv("search/trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == [
        "trial", "train.optimizer.lr", "train.batch_size", "model.layers.0.units", "score",
        "state", "epochs", "seconds",
    ]  # fmt: skip
    assert all(r["state"] == "complete" for r in rows)
    best = max(rows, key=lambda r: float(r["score"]))
    assert f"best: trial {best['trial']}, validation_accuracy" in result.stdout
    # best.yaml is the best trial's resolved config, which fit takes as it is
    cfg, _ = load_config("search/best.yaml")
    trial_dir = Path("search") / f"trial-{best['trial']}"
    assert cfg == yaml.safe_load((trial_dir / "config.yaml").read_text())
    assert cfg["data"]["validation"] == 0.1
    assert str(cfg["train"]["batch_size"]) == best["train.batch_size"]
    assert (trial_dir / "best.npz").is_file()
    # scored on the validation set (the test set is only reported), at its best epoch
    epochs = read_csv(trial_dir / "metrics.csv")
    assert float(best["score"]) == max(float(r["validation_accuracy"]) for r in epochs)
    invoke("fit", "search/best.yaml", "--out", "refit", "--set", "train.epochs=1")


def test_no_keep_runs_keeps_only_the_best_trial(folder):
    invoke(
        "tune", "cfg.yaml", "--space", "space.yaml", "--trials", "2", "--out", "s",
        "--no-keep-runs",
    )  # fmt: skip
    best = max(read_csv("s/trials.csv"), key=lambda r: float(r["score"]))["trial"]
    assert sorted(p.name for p in Path("s").glob("trial-*")) == [f"trial-{best}"]


def tune_process(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "nettrain", "tune", "cfg.yaml", "--space", "space.yaml", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )


def stored_trials(db):
    study = optuna.load_study(study_name="cfg", storage=f"sqlite:///{db}")
    return [t for t in study.get_trials() if studies.outcome_of(t) != "surplus"]


def test_two_processes_share_one_sqlite_study_without_duplicates(folder):
    storage = "sqlite:///study.db"
    procs = [tune_process("--storage", storage, "--trials", "4", "--out", f"p{i}") for i in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, err
    trials = stored_trials("study.db")
    assert sorted(t.number for t in trials) == [t.number for t in trials]
    assert [studies.outcome_of(t) for t in trials] == ["complete"] * 4
    assert len({tuple(t.params.items()) for t in trials}) == 4
    ran = sorted(p.name for i in (0, 1) for p in Path(f"p{i}").glob("trial-*"))
    assert ran == sorted(f"trial-{t.number}" for t in trials)  # each trial run once
    # a later process only adds what is missing
    p = tune_process("--storage", storage, "--trials", "5", "--out", "p2")
    p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0 and len(stored_trials("study.db")) == 5
    assert [p.name for p in Path("p2").glob("trial-*")] == [f"trial-{trials[-1].number + 1}"]


def test_an_interrupted_search_goes_on_where_it_stopped(folder):
    args = ("--storage", "sqlite:///study.db", "--trials", "2", "--out", "s",
            "--set", "train.epochs=100")  # fmt: skip
    p = tune_process(*args)
    metrics = Path("s/trial-0/metrics.csv")
    deadline = time.monotonic() + TIMEOUT
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) > 2):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole job
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 130, err
    assert "run the same command again to go on" in err
    first = stored_trials("study.db")
    assert [studies.outcome_of(t) for t in first] == ["interrupted", "waiting"], err
    p = tune_process(*args)
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    trials = stored_trials("study.db")
    assert [studies.outcome_of(t) for t in trials] == ["interrupted", "complete", "complete"]
    assert trials[1].params == first[0].params  # the interrupted values ran again,
    assert trials[1].user_attrs["retry_of"] == 0
    rows = read_csv("s/trial-1/metrics.csv")  # from the interrupted trial's checkpoint
    assert len(rows) == 100
    assert [r["state"] for r in read_csv("s/trials.csv")] == ["interrupted", "complete", "complete"]


def test_a_trial_is_no_rank_of_the_job_that_started_the_search(monkeypatch):
    """`mpirun -np N nettrain tune`: each search process is a rank; its trials are not."""
    from nettrain.tuning.trial import trial_environment

    for key, value in {"OMPI_COMM_WORLD_SIZE": "2", "PMIX_RANK": "1", "PMI_SIZE": "2",
                       "OMPI_MCA_btl": "self", "OMPI_ALLOW_RUN_AS_ROOT": "1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    env = trial_environment()
    assert not {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"} & set(env)
    assert env["OMPI_MCA_btl"] == "self" and env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"


def test_a_trial_whose_process_vanished_runs_again(folder):
    """A search killed outright (SIGKILL: no checkpoint, no goodbye) leaves its trial running;
    once its heartbeat is older than the grace period, the next search marks it lost and runs
    its values again."""
    args = ("--storage", "sqlite:///study.db", "--trials", "2", "--out", "s",
            "--set", "train.epochs=100")  # fmt: skip
    p = tune_process(*args)
    metrics = Path("s/trial-0/metrics.csv")
    deadline = time.monotonic() + TIMEOUT
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) > 2):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate(timeout=TIMEOUT)
    assert [studies.outcome_of(t) for t in stored_trials("study.db")] == ["running"]
    again = (
        "import sys, time; import nettrain.tuning.study as s; s.GRACE, s.HEARTBEAT = 2, 1; "
        "time.sleep(3); from nettrain.cli.commands import main; "
        f"sys.argv = ['nettrain', 'tune', 'cfg.yaml', '--space', 'space.yaml', *{args!r}]; main()"
    )
    done = subprocess.run([sys.executable, "-c", again], capture_output=True, text=True,
                          timeout=TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    trials = stored_trials("study.db")
    assert [studies.outcome_of(t) for t in trials] == ["lost", "complete", "complete"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["retry_of"] == 0
