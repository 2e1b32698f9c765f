"""`nettrain fit`'s work, in one process or as one rank of `mpirun -np N nettrain fit`
(nettrain.training.mpi): only rank 0 checks the run folder and prints."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from nettrain.core.errors import UserError
from nettrain.runtime import compiling, threads


def run_fit(config, sets, out, resume, weights, overwrite, quiet, w):
    """fit's work; ``w`` the world (only rank 0 checks the run folder and prints)."""
    from nettrain import checkpoint
    from nettrain.config import config_from_dict, load_config
    from nettrain.training import loop
    from nettrain.training.resume import check_resume
    from nettrain.training.run_folder import check_run_dir, default_run_dir

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
        run = loop.prepare(cfg, src, resume=(arrays, meta, resume))
        run_dir = Path(out) if out else Path(resume).resolve().parent
        w.on_root(lambda: check_run_dir(run_dir, overwrite=True))  # continuing a run writes into it
    else:
        weights_state = (checkpoint.load_weights(weights), weights) if weights else None
        run = loop.prepare(cfg, src, weights=weights_state)
        run_dir = Path(out) if out else w.on_root(lambda: default_run_dir(config))
        w.on_root(lambda: check_run_dir(run_dir, overwrite))
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    say(f"run folder: {run_dir}")
    for note in run.notes:
        say(note)
    progress = not quiet and sys.stderr.isatty()
    try:
        with compiling.notice(None if quiet else sys.stderr):
            rows = io.StringIO() if quiet else None  # --quiet swallows the metrics rows
            loop.train(run, run_dir, progress, out=rows)
    except loop.Interrupted as exc:  # not a success: said even with --quiet (by rank 0)
        if not w.root:
            sys.exit(exc.exit_code)
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
