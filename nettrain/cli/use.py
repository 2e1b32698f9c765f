"""The commands that use trained nets: predict, evaluate (one checkpoint or an ensemble) and
export. Each is a thin layer over the Python API's calls (nettrain/api.py, ensemble.py): it
parses, calls, and prints; results to stdout, messages to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nettrain.cli.base import PathArg
from nettrain.core.errors import UserError

CKPTS_HELP = "Several CKPT: an ensemble, the mean of the nets' outputs."


def _not_overwritten(output, reads) -> None:
    """Refuse an --output that is one of the files the command reads."""
    read = {Path(r).resolve() for r in reads}
    if output and Path(output).exists() and Path(output).resolve() in read:
        raise UserError(output, "--output would overwrite the checkpoint or the inputs it reads")


@click.command()
@click.argument("ckpt", nargs=-1, required=True, type=PathArg(dir_okay=False))
@click.argument("input", type=PathArg())
@click.option("--output", type=PathArg(dir_okay=False), help="Write here instead of stdout.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "npy"]),
    default="csv",
    show_default=True,
    help="Output format.",
)
def predict(ckpt, input, output, fmt):
    """Run the net of checkpoint CKPT on the inputs in INPUT.

    INPUT: .npz (array x, or the training data's name for it), .npy, .csv/.tsv (without labels,
    or with the training data's label column), an IDX images file, an image, or a folder of
    images. Inputs are scaled and preprocessed as the training data was. Several CKPT: an
    ensemble, the mean of the nets' outputs.
    """
    from nettrain.api import load
    from nettrain.inference import ensemble, single

    _not_overwritten(output, [*ckpt, input])
    model = load(ckpt)
    members = model.members
    sets = ensemble.inputs(members, input)
    outputs = ensemble.mean_outputs(members, sets)
    meta = members[0][1]
    classes = meta.get("targets") == "classes"

    def write(stream):
        names = meta.get("classes")
        single.write_predictions(outputs, classes, fmt, stream, sets[0].names, names)

    if fmt == "npy" and not output:
        write(sys.stdout.buffer)
        return
    if output:
        from nettrain.core.files import write_stream

        write_stream(output, write, text=fmt != "npy")  # atomic: never a half-written file
        click.echo(f"{len(outputs)} predictions written to {output}", err=True)
    else:
        write(sys.stdout)


@click.command()
@click.argument("ckpt", nargs=-1, required=True, type=PathArg(dir_okay=False))
@click.option("--data", type=PathArg(), help="Labelled data file or image folder to score.")
@click.option(
    "--split",
    type=click.Choice(["test", "validation"]),
    default="test",
    show_default=True,
    help="Without --data: which of the config's sets to score.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
def evaluate(ckpt, data, split, fmt):
    """Loss, accuracy, per-class figures and confusion matrix of CKPT on a labelled set.

    Several CKPT: those of their mean output (an ensemble)."""
    import numpy as np

    from nettrain.api import load
    from nettrain.net import metrics

    model = load(ckpt)
    result = model.evaluate(data, split=split)
    if fmt == "json":
        click.echo(json.dumps(result))
        return
    click.echo(f"samples   {result['samples']}")
    click.echo(f"loss      {result['loss']:.6f}")
    if result["accuracy"] is not None:
        click.echo(f"accuracy  {100 * result['accuracy']:.2f}%")
    for key in ("precision", "recall", "f1"):  # of class 1, for 0/1 labels
        if key in result:
            click.echo(f"{key:<9} {result[key]:.4f}")
    if result.get("roc_auc") is not None:
        click.echo(f"roc_auc   {result['roc_auc']:.4f}")
    for key in ("rmse", "mae", "r2"):
        if key in result:
            click.echo(f"{key:<9} {result[key]:.6g}")
    if "classes" in result:
        click.echo("")
        m = np.array(result["confusion"])
        click.echo(metrics.format_classes(result["classes"], m, model.classes))


@click.command()
@click.argument("ckpt", nargs=-1, required=True, type=PathArg(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "safetensors"]),
    required=True,
    help="onnx: one graph for ONNX Runtime (several CKPT: their mean); safetensors: the "
    "weights in PyTorch's layouts.",
)
@click.option("--output", required=True, type=PathArg(dir_okay=False), help="File to write.")
@click.option(
    "--opset",
    type=click.IntRange(1),
    help="ONNX opset (default 17; 13 and later).",
)
def export(ckpt, fmt, output, opset):
    """Export the net of checkpoint CKPT (or the mean of several) for other tools.

    ONNX needs pip install 'nettrain[onnx]'. The ONNX graph takes 'input', float32
    (N, *input shape), the float inputs predict takes, and includes data.preprocess; its
    'output' (N, K) is what predict --format npy gives.
    """
    from nettrain.api import load

    _not_overwritten(output, ckpt)
    load(ckpt).export(output, fmt, opset)
    click.echo(f"{fmt} written to {output}", err=True)
