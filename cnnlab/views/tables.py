"""Formatting only: numbers, tables, CSV and Markdown from an :class:`~.analyse.Analysis`.

Nothing here counts; every number comes from the analysis rows. Units stay spelled out:
MACs and FLOPs never share a column.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from cnnlab.counting.rules import CONVENTIONS_MARKDOWN
from cnnlab.format import fmt_bytes, fmt_int, fmt_si, shape_text, tensor_shape_text

if TYPE_CHECKING:
    from cnnlab.counting.analyse import Analysis, Footer
    from cnnlab.counting.check import ParamCheck
    from cnnlab.counting.crosscheck import ToolReport


def rows_frame(analysis: Analysis) -> pd.DataFrame:
    """One display row per leaf: integers stay integers, shapes become ``C×H×W`` text."""
    return pd.DataFrame(
        {
            "Layer": [r.name for r in analysis.rows],
            "Type": [r.type for r in analysis.rows],
            "Output": [tensor_shape_text(r.output_shape) for r in analysis.rows],
            "Params": [r.params for r in analysis.rows],
            "MACs": [r.macs for r in analysis.rows],
            "FLOPs": [r.flops for r in analysis.rows],
            "Activations (bytes)": [r.activation_bytes for r in analysis.rows],
            "Params formula": [r.params_formula for r in analysis.rows],
            "MACs formula": [r.macs_formula for r in analysis.rows],
            "FLOPs formula": [r.flops_formula for r in analysis.rows],
            "Counted": [r.counted for r in analysis.rows],
        },
        columns=[
            "Layer",
            "Type",
            "Output",
            "Params",
            "MACs",
            "FLOPs",
            "Activations (bytes)",
            "Params formula",
            "MACs formula",
            "FLOPs formula",
            "Counted",
        ],
    )


def to_csv(analysis: Analysis) -> str:
    """Every row with exact integers and formula text, as CSV."""
    frame = pd.DataFrame(
        {
            "name": [r.name for r in analysis.rows],
            "type": [r.type for r in analysis.rows],
            "group": [r.group for r in analysis.rows],
            "input_shape": [shape_text(r.input_shape) for r in analysis.rows],
            "output_shape": [shape_text(r.output_shape) for r in analysis.rows],
            "params": [r.params for r in analysis.rows],
            "trainable_params": [r.trainable_params for r in analysis.rows],
            "macs": [r.macs for r in analysis.rows],
            "flops": [r.flops for r in analysis.rows],
            "activation_bytes": [r.activation_bytes for r in analysis.rows],
            "params_formula": [r.params_formula for r in analysis.rows],
            "macs_formula": [r.macs_formula for r in analysis.rows],
            "flops_formula": [r.flops_formula for r in analysis.rows],
            "counted": [r.counted for r in analysis.rows],
        }
    )
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def _align(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def memory_items(footer: Footer) -> list[tuple[str, str]]:
    """The torchinfo-style memory lines, (label, MB text): the one footer every view prints."""
    return [
        ("Input size (MB)", f"{footer.input_mb:.2f}"),
        ("Forward/backward pass size (MB)", f"{footer.forward_backward_mb:.2f}"),
        ("Params size (MB)", f"{footer.params_mb:.2f}"),
        ("Estimated total size (MB)", f"{footer.total_mb:.2f}"),
    ]


def _labelled(items: Sequence[tuple[str, str]], width: int = 0) -> list[str]:
    return [f"{label + ':':<{width}} {value}" if width else f"{label}: {value}"
            for label, value in items]  # fmt: skip


def totals_lines(analysis: Analysis) -> list[str]:
    """The CLI table's totals and memory footer (aligned ``label: value`` lines)."""
    t = analysis.totals
    return _labelled(
        [
            ("Params", f"{fmt_int(t.params)} ({fmt_si(t.params)})"),
            ("Trainable params", fmt_int(t.trainable_params)),
            ("MACs", f"{fmt_int(t.macs)} ({fmt_si(t.macs, 'MACs')})"),
            ("FLOPs", f"{fmt_int(t.flops)} ({fmt_si(t.flops, 'FLOPs')})"),
            ("Activations (bytes)", f"{fmt_int(t.activation_bytes)} (fp32 outputs, batch 1)"),
            *memory_items(analysis.footer),
        ],
        width=32,
    )


def torchinfo_footer(analysis: Analysis) -> str:
    """torchinfo's summary footer: params, mult-adds and the memory estimate."""
    t = analysis.totals
    return "\n".join(
        _labelled(
            [
                ("Total params", fmt_int(t.params)),
                ("Trainable params", fmt_int(t.trainable_params)),
                ("Non-trainable params", fmt_int(t.params - t.trainable_params)),
                ("Total mult-adds (MACs)", fmt_si(t.macs)),
                *memory_items(analysis.footer),
            ]
        )
    )


def totals_comparison_markdown(analysis: Analysis, what_if: Analysis) -> str:
    """Totals of a model beside its separable what-if, with the ratio what-if / original."""
    t, w = analysis.totals, what_if.totals
    lines = ["| | original | separable what-if | ratio |", "|---|--:|--:|--:|"]
    for label, ours, theirs in (
        ("params", t.params, w.params),
        ("trainable params", t.trainable_params, w.trainable_params),
        ("MACs", t.macs, w.macs),
        ("FLOPs", t.flops, w.flops),
    ):
        ratio = f"{theirs / ours:.3f}" if ours else "—"
        lines.append(f"| {label} | {fmt_int(ours)} | {fmt_int(theirs)} | {ratio} |")
    return "\n".join(lines) + "\n"


def file_stem(*parts: str) -> str:
    """An ASCII file name stem: ``vgg16``, ``3×224×224`` → ``vgg16_3x224x224``."""
    text = "_".join(p for p in parts if p).replace("×", "x")
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "model"


def table_text(analysis: Analysis, formulas: bool = False) -> str:
    """The CLI table: one line per leaf (optionally with the params and MACs formulas)."""
    header = ["Layer", "Type", "Output", "Params", "MACs", "FLOPs"]
    if formulas:
        header += ["Params formula", "MACs formula"]
    table = [header]
    for r in analysis.rows:
        line = [
            r.name,
            r.type,
            tensor_shape_text(r.output_shape),
            fmt_int(r.params),
            fmt_int(r.macs) if r.counted else "not counted",
            fmt_int(r.flops) if r.counted else "not counted",
        ]
        if formulas:
            line += [r.params_formula, r.macs_formula]
        table.append(line)
    body = _align(table, right={3, 4, 5})
    rule = "-" * max(len(line) for line in body)
    out = [
        f"{analysis.model}  input {tensor_shape_text(analysis.input_shape, drop_batch=False)}",
        rule,
        body[0],
        rule,
        *body[1:],
        rule,
        *totals_lines(analysis),
    ]
    if analysis.error:
        out.append(f"Error: {analysis.error}")
    return "\n".join(out) + "\n"


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def crosscheck_markdown(reports: Sequence[ToolReport]) -> str:
    lines = [
        "| tool | quantity | value | unit | includes | note |",
        "|---|---|--:|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r.tool} | {r.quantity} | {fmt_int(r.value)} | {_md_cell(r.unit)} | "
            f"{_md_cell(r.includes)} | {_md_cell(r.note)} |"
        )
    return "\n".join(lines) + "\n"


CHECK_MARKS = {"right": "✅", "wrong": "❌", "unreadable": "❓", "unknown layer": "❓"}


def checks_summary(checks: Sequence[ParamCheck]) -> str:
    """``1 of 3 checked layers are wrong.`` plus any cells that could not be read (apart)."""
    checked = [c for c in checks if c.status in ("right", "wrong")]
    wrong = sum(c.status == "wrong" for c in checked)
    unread = len(checks) - len(checked)
    if not checked:
        text = "No number to check yet."
    elif wrong:
        text = f"{wrong} of {len(checked)} checked layers are wrong."
    else:
        text = f"All {len(checked)} checked layers are right."
    if unread:
        text += (
            f" {unread} cell{'s' if unread != 1 else ''} could not be read as a whole number"
            " (not counted as wrong)."
        )
    return text


def checks_markdown(checks: Sequence[ParamCheck]) -> str:
    """The "check my calculation" results as a Markdown table."""
    lines = ["| | layer | you wrote | correct | formula |", "|---|---|--:|--:|---|"]
    for c in checks:
        wrote = fmt_int(c.user_value) if c.user_value is not None else c.status
        lines.append(
            f"| {CHECK_MARKS[c.status]} | {_md_cell(c.name)} | {_md_cell(wrote)} | "
            f"{fmt_int(c.correct)} | {_md_cell(c.formula)} |"
        )
    return "\n".join(lines) + "\n"


def crosscheck_text(reports: Sequence[ToolReport]) -> str:
    """The cross-check for a terminal: tool, quantity, value, what it includes."""
    rows = [
        [r.tool, r.quantity, fmt_int(r.value), r.includes + (f"; {r.note}" if r.note else "")]
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "".join(
        f"  {row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  "
        f"{row[2].rjust(widths[2])}  {row[3]}\n"
        for row in rows
    )


def to_markdown(
    analysis: Analysis,
    crosscheck: Sequence[ToolReport] | None = None,
    checks: Sequence[ParamCheck] | None = None,
) -> str:
    """A homework-ready report: per-layer formulas, totals, memory footer, cross-check and
    the "check my calculation" results (when given)."""
    out = [
        f"# {analysis.model}: parameters and MACs by layer",
        "",
        f"Input: {tensor_shape_text(analysis.input_shape, drop_batch=False)} (batch 1, fp32).",
        "",
    ]
    if analysis.error:
        out += [f"**Error:** {analysis.error}", ""]
    out += [
        "| layer | type | output | params | params formula | MACs | MACs formula | FLOPs |",
        "|---|---|---|--:|---|--:|---|--:|",
    ]
    for r in analysis.rows:
        macs = fmt_int(r.macs) if r.counted else "not counted"
        flops = fmt_int(r.flops) if r.counted else "not counted"
        out.append(
            f"| {_md_cell(r.name)} | {r.type} | {tensor_shape_text(r.output_shape)} | "
            f"{fmt_int(r.params)} | {_md_cell(r.params_formula)} | {macs} | "
            f"{_md_cell(r.macs_formula)} | {flops} |"
        )
    t, f = analysis.totals, analysis.footer
    out += [
        "",
        "## Totals",
        "",
        "| quantity | value |",
        "|---|--:|",
        f"| params | {fmt_int(t.params)} |",
        f"| trainable params | {fmt_int(t.trainable_params)} |",
        f"| MACs | {fmt_int(t.macs)} ({fmt_si(t.macs, 'MACs')}) |",
        f"| FLOPs | {fmt_int(t.flops)} ({fmt_si(t.flops, 'FLOPs')}) |",
        f"| activations (fp32 outputs) | {fmt_bytes(t.activation_bytes)} |",
        f"| params size | {fmt_bytes(t.param_bytes)} |",
        "",
        "## Memory (torchinfo-style, MB = 10⁶ bytes, every layer's activations)",
        "",
        *(f"- {label.removesuffix(' (MB)')}: {value} MB" for label, value in memory_items(f)),
        "",
    ]
    if crosscheck:
        out += [
            "## Cross-check",
            "",
            "Each tool counts something slightly different; the *includes* column says what.",
            "",
            crosscheck_markdown(crosscheck),
        ]
    if checks:
        out += ["## Check my calculation", "", checks_summary(checks), "", checks_markdown(checks)]
    out += ["## Counting conventions", "", CONVENTIONS_MARKDOWN]
    return "\n".join(out)
