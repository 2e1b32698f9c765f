"""The `nettrain` command line: it parses, calls the library, and prints.

Results go to stdout, messages to stderr; exit codes and error lines: base.py. Heavy imports
(numpy, numba, the library) happen inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nettrain import __version__
from nettrain.cli.base import Group, PathArg, failures
from nettrain.cli.search import lr_find, tune
from nettrain.cli.use import evaluate, export, predict
from nettrain.core.errors import UserError
from nettrain.runtime import threads

SET_HELP = "Override a config key, e.g. --set train.epochs=1 (repeatable; value parsed as YAML)."


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nettrain")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
@click.option(
    "--threads",
    type=click.IntRange(1),
    envvar="NETTRAIN_THREADS",
    help="Most threads for BLAS and Numba kernels (default: all cores; fewer while other "
    "processes keep cores busy; env NETTRAIN_THREADS).",
)
def cli(debug, threads):
    """Train neural networks described in YAML files (backprop by hand on numpy and Numba)."""
    from nettrain.runtime.memory import keep_freed_memory
    from nettrain.runtime.threads import configure

    configure(threads)
    keep_freed_memory()


@cli.command()
@click.argument("config", type=PathArg(dir_okay=False), required=False)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", type=PathArg(file_okay=False), help="Run folder (default: runs/NAME-TIME).")
@click.option(
    "--resume",
    type=PathArg(dir_okay=False),
    help="Continue exactly from a checkpoint (CONFIG optional: the checkpoint holds its config).",
)
@click.option(
    "--weights", type=PathArg(dir_okay=False), help="Initialise weights from a checkpoint."
)
@click.option("--overwrite", is_flag=True, help="Allow --out to be a folder that holds a run.")
@click.option("--quiet", is_flag=True, help="Print nothing unless something goes wrong.")
def fit(config, sets, out, resume, weights, overwrite, quiet):
    """Train the net of CONFIG; write config, metrics and checkpoints to a run folder.

    With --resume CKPT, CONFIG may be left out: the run goes on with the config the checkpoint
    holds (--set still applies).
    """
    from nettrain.training.mpi import world

    w = world()  # one process, or a rank of `mpirun -np N nettrain fit`
    with failures(w):
        run_fit(config, sets, out, resume, weights, overwrite, quiet or not w.root, w.root)


def run_fit(config, sets, out, resume, weights, overwrite, quiet, root) -> None:
    """fit's parsing and printing around nettrain.training.fit: only rank 0 (``root``) tells."""
    from nettrain.config import load_config
    from nettrain.training.fit import fit as train
    from nettrain.training.fit import one_start
    from nettrain.training.interrupt import Interrupted
    from nettrain.training.mpi import world
    from nettrain.training.resume import recorded_config
    from nettrain.training.run_folder import default_run_dir

    one_start(resume, weights)
    if config is None and not resume:
        raise UserError(
            "fit",
            "no CONFIG given",
            "give a config file, or --resume CKPT to continue a run with the config it holds",
        )
    cfg, src = load_config(config, sets) if config is not None else recorded_config(resume, sets)
    if out is not None:
        folder = Path(out)
    elif resume:  # a resumed run goes on in its own folder
        folder = Path(resume).resolve().parent
    else:
        folder = world().on_root(lambda: default_run_dir(config))
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    try:
        done = train(
            cfg,
            src,
            weights=weights,
            resume=resume,
            folder=folder,
            overwrite=overwrite,
            progress=not quiet and sys.stderr.isatty(),
            output=None if quiet else sys.stdout,
            messages=None if quiet else sys.stderr,
        )
    except Interrupted as exc:  # not a success: said even with --quiet (by rank 0)
        if not root:
            sys.exit(exc.exit_code)
        click.echo(f"interrupted; checkpoint written to {exc.checkpoint}", err=True)
        again = f"{config} --resume" if config is not None else "--resume"
        click.echo(f"resume with: nettrain fit {again} {exc.checkpoint}", err=True)
        sys.exit(exc.exit_code)
    if threads.changes():
        say(
            "note: other processes took cores during the run, so nettrain changed its thread "
            "count; matrix products round differently on another thread count, so a rerun may "
            "differ in the last bits (--threads N keeps the count fixed)"
        )
    say(f"done: {done.folder}")


@cli.command()
@click.argument("config", type=PathArg(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--weights", type=PathArg(dir_okay=False), help="Check at a checkpoint's weights.")
@click.option(
    "--samples",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="Samples in the checked batch.",
)
@click.option(
    "--entries",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Entries checked per tensor (a seeded subset of larger tensors).",
)
@click.option("--all", "check_all", is_flag=True, help="Check every entry of every tensor.")
def gradcheck(config, sets, weights, samples, entries, check_all):
    """Compare every backpropagated gradient with finite differences (exit 1 on a mismatch)."""
    from nettrain.tools.gradcheck import gradcheck_config

    report, ok = gradcheck_config(config, sets, weights, samples, entries, check_all)
    click.echo(report)
    if not ok:
        click.echo("gradcheck FAILED", err=True)
        sys.exit(1)
    click.echo("gradcheck passed", err=True)


@cli.command()
@click.argument("run", type=PathArg(file_okay=False))
@click.option("--output", type=PathArg(dir_okay=False), help="PNG path (default RUN/curves.png).")
def plot(run, output):
    """Plot the learning curves of run folder RUN (loss and accuracy per epoch) to a PNG."""
    from nettrain.tools.plot import plot_run

    path = plot_run(run, output)
    click.echo(f"learning curves written to {path}", err=True)


@cli.command()
@click.argument("config", type=PathArg(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def summary(config, sets):
    """Print the layer table of CONFIG: output shapes, parameters, FLOPs per sample; for a
    table's data (CSV, .parquet), first its feature columns."""
    from nettrain.assemble import net_for_config
    from nettrain.tools.summary import feature_table, format_summary

    net, cfg = net_for_config(config, sets)
    table = feature_table(cfg)
    if table:
        click.echo(table + "\n")
    click.echo(format_summary(net))


@cli.command()
@click.argument("config", type=PathArg(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--repeats",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="Timed batches, after two warm-up batches.",
)
def bench(config, sets, repeats):
    """Time forward and backward of every layer of CONFIG per batch, and samples/s."""
    from nettrain.assemble import net_for_config
    from nettrain.tools.bench import format_timing, time_layers

    net, cfg = net_for_config(config, sets)
    batch = cfg["train"]["batch_size"]
    result = time_layers(net, batch, cfg["train"]["optimizer"], repeats)
    click.echo(format_timing(result, batch, threads.active_threads()))


@cli.command()
def datasets():
    """List the built-in data sets (data.dataset) with their shapes at the default options."""
    from nettrain.data import describe_builtin

    rows = describe_builtin()

    def shape(s):
        return f"{s[0]} x {'x'.join(str(d) for d in s[1:])}"

    click.echo(f"{'name':<9}{'train':<18}{'test':<18}{'classes':<9}options")
    for r in rows:
        line = f"{r['name']:<9}{shape(r['train']):<18}{shape(r['test']):<18}{r['classes']:<9}"
        click.echo(line + r["options"])


for command in (predict, evaluate, export, lr_find, tune):  # use.py: trained nets; search.py
    cli.add_command(command)


@cli.command()
@click.argument("data", type=PathArg(exists=False))
@click.argument("out", type=PathArg())
def convert(data, out):
    """Write a labelled data file (CSV, IDX, image folder, .npz) as arrays that training
    memory-maps: OUT.npz (uncompressed, arrays x and y) or a folder OUT with x.npy and y.npy."""
    # np.savez stores its arrays uncompressed, so that training can map them
    import numpy as np

    from nettrain.core.files import atomic_write
    from nettrain.data.sources import read, resolve

    ds = read(resolve(str(data)))
    x, y, target = ds.raw(slice(None)), ds.y, Path(out)
    if target.suffix == ".npz":
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda f: np.savez(f, x=x, y=y))
    else:
        target.mkdir(parents=True, exist_ok=True)
        for name, a in (("x.npy", x), ("y.npy", y)):
            atomic_write(target / name, lambda f, a=a: np.save(f, a))
    click.echo(f"{target}: x {x.dtype} {tuple(x.shape)}, y {y.dtype} {tuple(y.shape)}")
    if ds.classes:
        click.echo(f"labels 0..{len(ds.classes) - 1} stand for: {', '.join(ds.classes)}", err=True)


def main():
    cli(prog_name="nettrain")
