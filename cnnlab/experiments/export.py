"""An experiment as JSON (``experiment … --json``), CSV (one row per run) and Markdown (the arms
table and the verdict table, ready for a homework write-up)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

from cnnlab.experiments.results import ArmSummary, ExperimentResults, arm_json
from cnnlab.experiments.verdicts import RULE, Claim
from cnnlab.format import fmt_int

CSV_COLUMNS = (
    "experiment_id", "arm", "seed", "run_id", "status", "train_images", "params", "macs",
    "accuracy", "f1", "train_seconds", "images_per_second", "latency_ms", "batch_ms_per_image",
    "train_accuracy", "gap", "epochs_to_target", "epoch_test_accuracy",
)  # fmt: skip


def experiment_json(results: ExperimentResults, claims: Sequence[Claim]) -> dict[str, Any]:
    """The object ``--json`` prints: id, kind, one entry per run, the verdicts."""
    return {
        "experiment_id": results.experiment.id,
        "kind": results.plan.kind,
        "arms": [arm_json(results, run) for run in results.runs],
        "claims": [claim.to_dict() for claim in claims],
    }


def to_csv(results: ExperimentResults) -> str:
    """One row per run (arm × seed) with every number, exact integers, fractions unrounded."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results.runs:
        writer.writerow(
            [
                results.experiment.id, r.arm.label, r.arm.seed, r.run_id or "", r.status,
                _cell(r.train_images), _cell(r.params), _cell(r.macs),
                _cell(r.accuracy), _cell(r.f1), _cell(r.train_seconds),
                _cell(r.images_per_second), _cell(r.latency_ms), _cell(r.batch_ms_per_image),
                _cell(r.train_accuracy), _cell(r.gap), _cell(r.epochs_to_target),
                " ".join(f"{a:.4f}" for a in r.epoch_accuracy),
            ]
        )  # fmt: skip
    return out.getvalue()


def _cell(value: float | int | None) -> str:
    return "" if value is None else str(value)


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


ARM_COLUMNS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("params", "params", lambda v: fmt_int(int(v))),
    ("macs", "MACs/image", lambda v: fmt_int(int(v))),
    ("accuracy", "test accuracy", lambda v: f"{100 * v:.2f} %"),
    ("f1", "macro F1", lambda v: f"{100 * v:.2f} %"),
    ("gap", "train − test gap", lambda v: f"{100 * v:+.2f} pt"),
    ("train_seconds", "training time", lambda v: f"{v:.1f} s"),
    ("images_per_second", "images/s", lambda v: f"{v:,.0f}"),
    ("latency_ms", "latency b=1", lambda v: f"{v:.3f} ms"),
    ("batch_ms_per_image", "ms/image (large batch)", lambda v: f"{v:.4f} ms"),
    ("epochs_to_target", "epochs to target", lambda v: f"{v:.1f}"),
)
"""The arms table: metric, column title, how a value is written (mean ± spread over seeds)."""


def arm_cells(arm: ArmSummary) -> list[str]:
    """An arm's row of the arms table as text (mean ± sd over its finished seeds)."""
    done = len(arm.finished)
    cells = [arm.label, f"{arm.status} ({done}/{len(arm.runs)})"]
    for metric, _, fmt in ARM_COLUMNS:
        stat = arm.stat(metric)
        if metric == "epochs_to_target" and arm.finished and stat.mean is None:
            cells.append(f"not in {arm.runs[0].arm.config.epochs}")  # never reached the target
        elif metric == "epochs_to_target" and 0 < stat.n < len(arm.finished):
            cells.append(f"{stat.text(fmt)} ({stat.n} of {len(arm.finished)} reached it)")
        else:
            cells.append(stat.text(fmt))
    return cells


def to_markdown(results: ExperimentResults, claims: Sequence[Claim], machine: str = "") -> str:
    """The experiment for a write-up: setup, arms table (mean ± sd), verdicts and the rule."""
    e, plan = results.experiment, results.plan
    base = plan.arms[0].config
    lines = [
        f"# {_md(e.name)}",
        "",
        f"Experiment `{e.id}` ({plan.kind}): {_md(plan.base_model)}; {base.epochs} epoch(s), "
        f"batch {base.batch_size}, {base.optimizer} lr {base.lr:g} ({base.schedule}), input "
        f"{base.input_size}×{base.input_size}; seeds {', '.join(map(str, plan.seeds))}; "
        f"{results.done} of {results.total} runs done"
        + (f" ({results.failed} failed)" if results.failed else "")
        + (f"; {_md(machine)}" if machine else "")
        + ".",
        "",
        "| arm | runs | " + " | ".join(title for _, title, _ in ARM_COLUMNS) + " |",
        "|" + "---|" * (2 + len(ARM_COLUMNS)),
    ]
    for arm in results.arms:
        lines.append("| " + " | ".join(_md(c) for c in arm_cells(arm)) + " |")
    lines += [
        "",
        f"Epochs to target: the first epoch whose test accuracy reached "
        f"{100 * plan.target_accuracy:.1f} %. Gap: accuracy on the first 2,000 training digits "
        "minus test accuracy. Latency: median forward pass on the training device.",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
    ]
    for claim in claims:
        lines.append(f"| {_md(claim.claim)} | **{claim.verdict}** | {_md(claim.evidence)} |")
    lines += ["", f"How verdicts are decided: {RULE}", ""]
    return "\n".join(lines)
