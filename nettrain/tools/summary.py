"""The layer table of `nettrain summary`: one row per model.layers entry (its activation folded
in), with output shape, parameter count and forward FLOPs per sample, then the totals (and the
state values, saved but not trained, such as batchnorm's running statistics)."""

from __future__ import annotations

from nettrain.net.network import Network


def feature_table(cfg: dict) -> str | None:
    """The feature columns of a config whose training data is a table (CSV, .parquet): each
    column's type, width and missing fields in the training split; None for other data."""
    from nettrain import data
    from nettrain.assemble import training_rows
    from nettrain.data.sources import resolve

    train = cfg["data"]["train"]
    if not train or resolve(train)["format"] not in ("csv", "parquet"):
        return None
    ds, _ = data.load({**cfg["data"], "test": None}, lambda n: training_rows(cfg, n))
    return f"{ds.name}: feature columns\n{ds.encoding.table()}"


def summary_rows(net: Network) -> list[tuple]:
    """[(index, description, output shape, params, flops)] per YAML entry."""
    rows: dict[int, list] = {}
    for layer in net.layers:
        if layer.index not in rows:
            rows[layer.index] = [layer.index, layer.label(), layer.out_shape, 0, 0]
        else:
            rows[layer.index][1] += f" + {layer.label()}"
            rows[layer.index][2] = layer.out_shape
        rows[layer.index][3] += layer.param_count()
        rows[layer.index][4] += layer.flops()
    return [tuple(r) for r in rows.values()]


def format_summary(net: Network) -> str:
    rows = summary_rows(net)
    head = f"{'#':>3}  {'layer':<30} {'output shape':<16} {'params':>10} {'FLOPs/sample':>14}"
    lines = [head, "-" * len(head), f"{'':>3}  {'input':<30} {_shape(net.input_shape):<16}"]
    for i, text, shape, params, flops in rows:
        lines.append(f"{i:>3}  {text:<30} {_shape(shape):<16} {params:>10,} {flops:>14,}")
    lines.append("-" * len(head))
    total_p = sum(r[3] for r in rows)
    total_f = sum(r[4] for r in rows)
    lines.append(f"{'':>3}  {'total':<30} {'':<16} {total_p:>10,} {total_f:>14,}")
    lines.append(
        f"loss: {net.loss_name}{' (taken through the output activation)' if net.combined else ''}"
        f"; dtype: {net.dtype}; parameters: {total_p * net.dtype.itemsize:,} bytes"
    )
    state = sum(a.size for a in net.state().values())
    if state:
        lines.append(f"state (saved, not trained): {state:,} values")
    return "\n".join(lines)


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"
