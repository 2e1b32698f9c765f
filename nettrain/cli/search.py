"""The commands that search for training settings: lr-find (the learning-rate range test) and
tune (a hyperparameter search with Optuna). They parse, call the library, and print."""

from __future__ import annotations

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
