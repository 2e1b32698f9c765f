"""What a search leaves in its folder: trials.csv (one row a trial: number, values, score, state,
epochs, seconds), best.yaml (the best trial's resolved config, which `fit` takes as it is), and
the table printed at the end."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import yaml

from nettrain.config import load_config
from nettrain.core.files import write_text
from nettrain.tuning.study import best_trial, outcome_of

HIDDEN = ("waiting", "surplus")  # queued trials, and those that gave way to another process's


def trial_rows(study, keys) -> list[dict]:
    """One dict a trial, in trial order: trial, the values of ``keys``, score, state, epochs,
    seconds (None where not known yet)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = outcome_of(t)
        if state in HIDDEN:
            continue
        values = t.user_attrs.get("values", {})
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            {
                "trial": t.number,
                **{k: values.get(k) for k in keys},
                "score": t.user_attrs.get("score"),
                "state": state,
                "epochs": t.user_attrs.get("epochs"),
                "seconds": seconds,
            }
        )
    return rows


def csv_text(rows, keys) -> str:
    columns = ["trial", *keys, "score", "state", "epochs", "seconds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r[c] is None else _csv(r[c]) for c in columns])
    return buffer.getvalue()


def _csv(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    return str(v)


def format_table(rows, keys, monitor: str) -> str:
    """The table printed at the end of a search; the score is ``monitor``'s best epoch."""

    def shown(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return _csv(v)

    columns = ["trial", *keys, monitor, "state", "epochs", "seconds"]
    cells = [
        [shown(r[c]) for c in ["trial", *keys, "score", "state", "epochs"]]
        + ["-" if r["seconds"] is None else f"{r['seconds']:.1f}"]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def write_reports(study, out: Path, keys, config, base_sets) -> None:
    """trials.csv, and best.yaml once a trial is complete."""
    write_text(out / "trials.csv", csv_text(trial_rows(study, keys), keys))
    best = best_trial(study)
    if best is not None:
        cfg, _ = load_config(config, [*base_sets, *best.user_attrs["sets"]])
        head = (
            f"# the best trial ({best.number}) of study '{study.study_name}': "
            f"{best.user_attrs.get('monitor')} {best.value!r}\n"
        )
        write_text(out / "best.yaml", head + yaml.safe_dump(cfg, sort_keys=False))


def drop_runs(study, out: Path) -> None:
    """--no-keep-runs: remove the run folders of finished trials but the best one's."""
    best = best_trial(study)
    for t in study.get_trials(deepcopy=False):
        folder = out / f"trial-{t.number}"
        finished = t.state.is_finished()
        if finished and (best is None or t.number != best.number) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
