"""Formatting only: numbers, tables, CSV and Markdown from an :class:`~.analyse.Analysis`.

Nothing here counts; every number comes from the analysis rows. Units stay spelled out:
MACs and FLOPs never share a column.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from cnnlab.counting.rules import CONVENTIONS_MARKDOWN
from cnnlab.format import fmt_bytes, fmt_int, fmt_si, shape_text, tensor_shape_text

if TYPE_CHECKING:
    from cnnlab.counting.analyse import Analysis
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
            "input_shape": [
                shape_text(r.input_shape) for r in analysis.rows
            ],
            "output_shape": [
                shape_text(r.output_shape) for r in analysis.rows
            ],
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


def totals_lines(analysis: Analysis) -> list[str]:
    t, f = analysis.totals, analysis.footer
    return [
        f"Params:                          {fmt_int(t.params)} ({fmt_si(t.params)})",
        f"Trainable params:                {fmt_int(t.trainable_params)}",
        f"MACs:                            {fmt_int(t.macs)} ({fmt_si(t.macs, 'MACs')})",
        f"FLOPs:                           {fmt_int(t.flops)} ({fmt_si(t.flops, 'FLOPs')})",
        f"Activations (bytes):             {fmt_int(t.activation_bytes)} (fp32 outputs, batch 1)",
        f"Input size (MB):                 {f.input_mb:.2f}",
        f"Forward/backward pass size (MB): {f.forward_backward_mb:.2f}",
        f"Params size (MB):                {f.params_mb:.2f}",
        f"Estimated total size (MB):       {f.total_mb:.2f}",
    ]


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


def to_markdown(analysis: Analysis, crosscheck: list[ToolReport] | None = None) -> str:
    """A homework-ready report: per-layer formulas, totals, memory footer, cross-check."""
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
        f"- Input size: {f.input_mb:.2f} MB",
        f"- Forward/backward pass size: {f.forward_backward_mb:.2f} MB",
        f"- Params size: {f.params_mb:.2f} MB",
        f"- Estimated total size: {f.total_mb:.2f} MB",
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
    out += ["## Counting conventions", "", CONVENTIONS_MARKDOWN]
    return "\n".join(out)
