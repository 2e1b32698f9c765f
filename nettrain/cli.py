"""The `nettrain` command line: it parses, calls the library, and prints.

Results go to stdout, messages to stderr; exit codes and error lines: cli_base.py. Heavy imports
(numpy, numba, the library) happen inside the commands so that `--help` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nettrain import __version__, compiling, threads
from nettrain.cli_base import Group, PathArg, default_run_dir, open_null
from nettrain.cli_use import evaluate, export, predict
from nettrain.errors import UserError

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
    from nettrain.memory import keep_freed_memory
    from nettrain.threads import configure

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
    from nettrain import checkpoint, train
    from nettrain.config import config_from_dict, load_config
    from nettrain.resume import check_resume
    from nettrain.runfolder import check_run_dir

    if resume and weights:
        raise UserError(
            "fit",
            "--resume and --weights exclude each other",
            "--resume continues a run; --weights starts a new one from its weights",
        )
    if config is None and not resume:
        raise UserError(
            "fit",
            "no CONFIG given",
            "give a config file, or --resume CKPT to continue a run with the config it holds",
        )
    if config is not None:
        cfg, src = load_config(config, sets)
    if resume:
        arrays, meta = checkpoint.load(resume)
        if config is None:
            cfg, src = config_from_dict(meta["config"], sets, f"{resume} (config)", True)
        check_resume(cfg, meta, resume, report=not quiet)
        run = train.prepare(cfg, src, resume=(arrays, meta, resume))
        run_dir = Path(out) if out else Path(resume).resolve().parent
        check_run_dir(run_dir, overwrite=True)  # continuing a run writes into it
    else:
        weights_state = (checkpoint.load_weights(weights), weights) if weights else None
        run = train.prepare(cfg, src, weights=weights_state)
        run_dir = Path(out) if out else default_run_dir(config)
        check_run_dir(run_dir, overwrite)
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    say(f"run folder: {run_dir}")
    for note in run.notes:
        say(note)
    progress = not quiet and sys.stderr.isatty()
    try:
        with compiling.notice(None if quiet else sys.stderr):
            train.train(run, run_dir, progress, out=open_null() if quiet else None)
    except train.Interrupted as exc:  # not a success: said even with --quiet
        click.echo(f"interrupted; checkpoint written to {exc.args[0]}", err=True)
        again = f"{config} --resume" if config is not None else "--resume"
        click.echo(f"resume with: nettrain fit {again} {exc.args[0]}", err=True)
        sys.exit(exc.exit_code)
    if threads.changes():
        say(
            "note: other processes took cores during the run, so nettrain changed its thread "
            "count; matrix products round differently on another thread count, so a rerun may "
            "differ in the last bits (--threads N keeps the count fixed)"
        )
    say(f"done: {run_dir}")


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
    from nettrain.gradcheck import gradcheck_config

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
    from nettrain.plot import plot_run

    path = plot_run(run, output)
    click.echo(f"learning curves written to {path}", err=True)


@cli.command()
@click.argument("config", type=PathArg(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def summary(config, sets):
    """Print the layer table of CONFIG: output shapes, parameters, FLOPs per sample."""
    from nettrain.assemble import net_for_config
    from nettrain.summary import format_summary

    net, _ = net_for_config(config, sets)
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
    from nettrain.bench import format_timing, time_layers

    net, cfg = net_for_config(config, sets)
    batch = cfg["train"]["batch_size"]
    result = time_layers(net, batch, cfg["train"]["optimizer"], repeats)
    click.echo(format_timing(result, batch, int(os.environ["NETTRAIN_THREADS"])))


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


for command in (predict, evaluate, export):  # the commands that use trained nets: cli_use.py
    cli.add_command(command)


def main():
    cli(prog_name="nettrain")
