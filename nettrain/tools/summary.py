"""The layer table of `nettrain summary`: one row per model.layers entry (its activation folded
in), with output shape, parameter count and forward FLOPs per sample, then the totals (and the
state values, saved but not trained, such as batchnorm's running statistics). A net that is a
graph (docs/graphs.md) gets a column `from`: the entries each one reads, and its name if any."""

from __future__ import annotations

from nettrain.net import graph
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


def inputs_text(net: Network) -> dict[int, str]:
    """{entry: 'input', '2', '3, block_in (0)'}: what each entry reads, for a graph; {} for a
    plain stack, where each reads the one before."""
    entries = net.entries
    if entries is None or graph.is_chain([refs for refs, _ in entries]):
        return {}

    def ref(j):
        if j < 0:
            return "input"
        name = entries[j][1]
        return f"{name} ({j})" if name else str(j)

    return {i: ", ".join(map(ref, refs)) for i, (refs, _) in enumerate(entries)}


def format_summary(net: Network) -> str:
    rows, reads = summary_rows(net), inputs_text(net)
    names = {i: name for i, (_, name) in enumerate(net.entries or ()) if name}
    texts = {i: f"{names[i]}: {text}" if i in names else text for i, text, *_ in rows}
    for j in sorted(set(names) - set(texts)):  # a named activation applied by the row before
        texts[j - 1] += f" [{j}: {names[j]}]"
    lw = max([30, *(len(t) + 1 for t in texts.values())])
    fw = max([len(t) for t in reads.values()] + [4]) + 1 if reads else 0
    col = (lambda t: f"{t:<{fw}}") if reads else (lambda t: "")
    head = (
        f"{'#':>3}  {'layer':<{lw}} {col('from')}{'output shape':<16} {'params':>10} "
        f"{'FLOPs/sample':>14}"
    )
    lines = [head, "-" * len(head)]
    lines.append(f"{'':>3}  {'input':<{lw}} {col('')}{_shape(net.input_shape):<16}")
    for i, _, shape, params, flops in rows:
        lines.append(
            f"{i:>3}  {texts[i]:<{lw}} {col(reads.get(i, ''))}{_shape(shape):<16} "
            f"{params:>10,} {flops:>14,}"
        )
    lines.append("-" * len(head))
    total_p = sum(r[3] for r in rows)
    total_f = sum(r[4] for r in rows)
    lines.append(f"{'':>3}  {'total':<{lw}} {col('')}{'':<16} {total_p:>10,} {total_f:>14,}")
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
