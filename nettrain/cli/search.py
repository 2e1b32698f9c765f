"""The commands that search for training settings: lr-find (the learning-rate range test) and
tune (a hyperparameter search with Optuna). They parse, call the library, and print."""

from __future__ import annotations

import sys

import click

from nettrain.cli.base import PathArg

SET_HELP = "Override a config key, e.g. --set train.epochs=1 (repeatable; value parsed as YAML)."


@click.command("lr-find")
@click.argument("config", type=PathArg(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--start", default=1e-7, show_default=True, type=float, help="First rate.")
@click.option("--end", default=10.0, show_default=True, type=float, help="Last rate.")
@click.option(
    "--steps", default=100, show_default=True, type=click.IntRange(3), help="Steps (batches)."
)
@click.option("--plot", type=PathArg(dir_okay=False), help="Draw the curve to this PNG.")
def lr_find(config, sets, start, end, steps, plot):
    """Learning-rate range test: train from CONFIG's start with the rate growing exponentially
    from --start to --end, until the smoothed loss exceeds 4x its minimum.

    Prints rate and loss per step, then 'suggested lr: X', the rate where the smoothed loss
    falls fastest. Nothing of the run is kept.
    """
    from nettrain.config import load_config
    from nettrain.tools.lr_find import format_table, plot_range_test, range_test, suggestion

    cfg, src = load_config(config, sets)
    rows = range_test(cfg, src, start, end, steps)
    suggested = suggestion(rows)
    click.echo(format_table(rows))
    if plot:
        path = plot_range_test(rows, suggested, cfg["train"]["optimizer"]["lr"], plot)
        click.echo(f"plot written to {path}", err=True)
    if suggested is None:
        click.echo("suggested lr: none (the loss never fell; try a lower --start)")
    else:
        click.echo(f"suggested lr: {suggested:.3g}")


@click.command()
@click.argument("config", type=PathArg(dir_okay=False))
@click.option(
    "--space",
    required=True,
    type=PathArg(dir_okay=False),
    help="YAML file: config key (as --set writes it) -> {log_uniform: [lo, hi]}, "
    "{uniform: [lo, hi]}, {int: [lo, hi]} or {choice: [a, b, ...]}.",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--trials",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="Finished trials the study should hold, over every process working on it.",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Keep the study in a database, e.g. sqlite:///study.db (one machine) or "
    "postgresql://host/db (several): resumable, shared by every process given the same URL. "
    "Default: in memory.",
)
@click.option("--study", "study_name", help="Study name in the storage (default: CONFIG's name).")
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Trials run at once by this process, sharing the machine's cores.",
)
@click.option(
    "--out",
    type=PathArg(file_okay=False),
    help="Search folder: trials.csv, best.yaml, trial-N/ (default: runs/STUDY-tune[-TIME]).",
)
@click.option(
    "--keep-runs/--no-keep-runs",
    default=True,
    show_default=True,
    help="Keep every trial's run folder (else only the best trial's).",
)
@click.option(
    "--launcher",
    metavar="COMMAND",
    help='Start each trial under this command, e.g. "mpirun -np 2": each trial on 2 ranks.',
)
@click.pass_context
def tune(ctx, config, space, sets, trials, storage, study_name, jobs, out, keep_runs, launcher):
    """Search hyperparameters of CONFIG over SPACE with Optuna (pip install 'nettrain[tune]').

    Each trial is a `nettrain fit` with values drawn from SPACE (seeded TPE), scored on the
    validation set (train.checkpoint.monitor; never the test set) and pruned early when its
    epochs fall below the median of earlier trials. Writes trials.csv and best.yaml (the best
    trial's config, for `nettrain fit`) to the search folder and prints the table of trials.
    """
    from nettrain.tuning.search import prepare_search, run_search, summary

    threads = ctx.parent.params.get("threads") if ctx.parent else None
    search, study = prepare_search(
        config, space, sets, trials, storage, study_name, jobs, out, keep_runs, launcher, threads
    )
    for note in search.notes:
        click.echo(note, err=True)
    click.echo(f"search folder: {search.out}", err=True)
    finished = run_search(search, study, say=lambda text: click.echo(text, err=True))
    click.echo(summary(search, study))
    if not finished:
        again = (
            "run the same command again to go on"
            if storage
            else "the study was in memory: give --storage sqlite:///FILE to make a search resumable"
        )
        click.echo(f"interrupted; {again}", err=True)
        sys.exit(130)
