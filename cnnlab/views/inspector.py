"""The Model Inspector's view-model: everything the page shows, without Streamlit.

``view = inspector_view(choice, input_shape=..., mnist=...)`` analyses the model (and its
separable what-if) on the meta device and returns an :class:`InspectorView`: the layer table
with each formula beside its count and the names a course uses (conv1 … fc8), the totals, the
torchinfo-style footer, the charts, the cross-check and the "check my calculation" results.
A bad input comes back as ``view.input_error`` (nothing else is filled in, so nothing stale
shows); a model that cannot take the input as ``view.error``. The page lays the view out; the
tests assert on it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd
import plotly.graph_objects as go

from cnnlab.counting import zoo
from cnnlab.counting.analyse import Analysis, LayerRow, analyse_zoo
from cnnlab.counting.check import ParamCheck, check_user_params
from cnnlab.counting.crosscheck import ToolReport, crosscheck
from cnnlab.counting.spec import StackSpec, check_input_shape
from cnnlab.errors import UserError
from cnnlab.format import fmt_int, fmt_si, shape_text, tensor_shape_text
from cnnlab.views import tables
from cnnlab.views.charts import kind_share_bars, lesson, model_layer_bars

CONV_LAB = "Conv Lab stack"
"""The model-list entry for the stack built on the Conv Lab page."""

MNIST_SIZES: tuple[int, ...] = (28, 32, 64, 224)
"""The MNIST input sizes the page offers (28 is native; the others are resized digits)."""

CROSSCHECK_MAX_PARAMS = 200_000_000
"""Larger models are not built with real weights for the cross-check."""

CHECK_COLUMN = "Your params"

CROSSCHECK_INTRO = (
    "torchinfo, fvcore and `torch.utils.flop_counter.FlopCounterMode` run a real forward pass "
    "with real (random) weights, so this takes a few seconds; results are cached per model and "
    "input."
)
WHY_THEY_DIFFER = (
    "**Why they differ:** every tool counts the same parameters, but not the same operations — "
    "torchinfo adds the bias to its mult-adds, fvcore counts one fused multiply-add as one "
    '"flop" and adds batch norm but skips max-pooling, and FlopCounterMode counts 2 FLOPs per '
    "multiply-add for conv and matmul only. The numbers differ by convention, not by error."
)
CHECK_INTRO = (
    "Type your own parameter count for each layer (commas are fine), or paste a column of "
    "numbers in table order and put it in the table. Wrong cells are flagged with the correct "
    "formula and value; text that is not a number is reported apart."
)


# ---------------------------------------------------------------- the model list


def model_choices(with_stack: bool) -> list[str]:
    """The zoo first, then the Conv Lab stack (when there is one), then every other classifier."""
    names = list(zoo.ZOO)
    if with_stack:
        names.append(CONV_LAB)
    return names + [n for n in zoo.list_models() if n not in zoo.ZOO]


@functools.lru_cache(maxsize=32)
def _param_count(name: str) -> int:
    return sum(p.numel() for p in zoo.build_model(name, device="meta").parameters())


def model_note(choice: str) -> str | None:
    """What tells look-alikes apart: ``the report's AlexNet: … → 1000; 45,442,856 params``."""
    note = zoo.MODEL_NOTES.get(choice)
    return f"{note}; {_param_count(choice):,} params" if note else None


def model_label(choice: str) -> str:
    """The model list's text for ``choice`` (the two AlexNets say which is which)."""
    note = model_note(choice)
    return f"{choice} — {note}" if note else choice


def model_name(choice: str) -> str:
    """The zoo name behind a model-list entry (the Conv Lab stack is ``stack``)."""
    return zoo.STACK if choice == CONV_LAB else choice


def native_input(choice: str, spec: StackSpec | None = None) -> tuple[int, int, int]:
    """The input a model-list entry takes by default (3×224×224, 1×28×28, the stack's own)."""
    return zoo.default_input_shape(model_name(choice), spec=spec)


@functools.lru_cache(maxsize=64)
def settle_mnist_size(
    choice: str, size: int, spec: StackSpec | None = None, sizes: tuple[int, ...] = MNIST_SIZES
) -> tuple[int, str | None]:
    """(the size to use, why it moved) for an MNIST-adapted model at ``size``×``size``.

    A model that cannot take ``size`` moves to the smallest offered size it takes (first looking
    above ``size``), as the Train page does: ``alexnet-report`` at 28 → 64, with a note saying
    why. When no offered size fits, ``size`` stays and the analysis explains the failure.
    """
    name = model_name(choice)
    try:
        zoo.check_input(name, mnist=True, input_shape=(1, size, size), spec=spec)
    except UserError as err:
        fitted = zoo.fit_input_size(name, [s for s in sizes if s >= size], mnist=True, spec=spec)
        if fitted is None:
            fitted = zoo.fit_input_size(name, sizes, mnist=True, spec=spec)
        if fitted is None:
            return size, None
        head, _, why = str(err).partition(": ")
        why = re.sub(r"; use input size ≥ (\d+)$", r"; it needs at least \1×\1", why)
        offered = "/".join(str(s) for s in sizes)
        return fitted, (
            f"{head} ({why}): input size moved to {fitted}×{fitted}, the smallest of the "
            f"offered sizes ({offered}) it takes."
        )
    return size, None


# ---------------------------------------------------------------- the view


@dataclass(frozen=True)
class CheckView:
    """ "Check my calculation": the results of one set of entered cells."""

    results: tuple[ParamCheck, ...]
    summary: str
    tone: str
    """``"none"`` (nothing entered), ``"success"``, ``"error"`` (some wrong) or ``"warning"``
    (nothing wrong, but some cells could not be read)."""
    frame: pd.DataFrame | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ChartView:
    title: str
    figure: go.Figure = field(compare=False)


@dataclass(frozen=True)
class InspectorView:
    """What the Model Inspector shows for one model and input."""

    choice: str
    name: str
    input_shape: tuple[int, int, int]
    mnist: bool
    spec: StackSpec | None = field(default=None, compare=False)
    input_error: str | None = None
    """The input itself is out of range (channels 0, height 99,999): shown next to the input."""
    error: str | None = None
    """The model cannot take this input (with the size that would work)."""
    analysis: Analysis | None = None
    what_if: Analysis | None = None
    """Every conv with kernel > 1 made depthwise-separable."""
    names: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Module name → the name a course uses (``features.0`` → ``conv1``), AlexNet and VGG."""
    title: str = ""
    totals_markdown: str = ""
    totals_caption: str = ""
    footer: str = ""
    lesson: str = ""
    charts: tuple[ChartView, ...] = ()
    check_layers: tuple[str, ...] = ()
    """The rows "check my calculation" asks about (every layer with parameters), in order."""
    crosscheck_refusal: str | None = None

    @property
    def ok(self) -> bool:
        return self.analysis is not None

    # -- the layer table ------------------------------------------------------------------

    def layer_table(self, *, only_costly: bool = True, details: bool = False) -> pd.DataFrame:
        """One row per layer: each formula right beside its count, all in sight at 1,400 px.

        Columns: Layer, Name (AlexNet/VGG; else Type), Params, Params formula, MACs, MACs
        formula; ``details`` adds Output, Type, FLOPs, FLOPs formula, Activations (bytes) and
        Counted.
        """
        assert self.analysis is not None
        rows = [r for r in self.analysis.rows if not only_costly or r.params > 0 or r.macs > 0]
        data: dict[str, list[object]] = {"Layer": [r.name for r in rows]}
        if self.names:
            data["Name"] = [self.names.get(r.name, "") for r in rows]
        else:
            data["Type"] = [r.type for r in rows]
        data |= {
            "Params": [r.params for r in rows],
            "Params formula": [r.params_formula for r in rows],
            "MACs": [r.macs for r in rows],
            "MACs formula": [r.macs_formula for r in rows],
        }
        if details:
            data["Output"] = [tensor_shape_text(r.output_shape) for r in rows]
            data["Type"] = [r.type for r in rows]
            data |= {
                "FLOPs": [r.flops for r in rows],
                "FLOPs formula": [r.flops_formula for r in rows],
                "Activations (bytes)": [r.activation_bytes for r in rows],
                "Counted": [r.counted for r in rows],
            }
        return pd.DataFrame(data, columns=list(data))

    def table_caption(self, shown: int) -> str:
        assert self.analysis is not None
        return (
            f"{shown} of {len(self.analysis.rows)} layers shown. MACs: conv and linear "
            "multiply-accumulates, bias excluded (torchvision's convention); FLOPs add bias, "
            "normalisation, activation and pooling work."
        )

    # -- check my calculation -------------------------------------------------------------

    def check_source(self, filled: Mapping[int, str | None] | None = None) -> pd.DataFrame:
        """The editor's table: one row per layer with parameters, ``Your params`` to type in."""
        assert self.analysis is not None
        filled = filled or {}
        by_name = {r.name: r for r in self.analysis.rows}
        data: dict[str, object] = {"Layer": list(self.check_layers)}
        if self.names:
            data["Name"] = [self.names.get(n, "") for n in self.check_layers]
        data[CHECK_COLUMN] = pd.Series(
            [filled.get(i) for i in range(len(self.check_layers))], dtype="object"
        )
        data["Type"] = [by_name[n].type for n in self.check_layers]
        return pd.DataFrame(data)

    def check(self, entered: Mapping[int, str | None]) -> CheckView:
        """Check the entered cells (row index in :attr:`check_layers` → text)."""
        assert self.analysis is not None
        raw = {
            self.check_layers[i]: text
            for i, text in entered.items()
            if 0 <= i < len(self.check_layers) and text is not None and str(text).strip()
        }
        results = tuple(check_user_params(self.analysis, raw))
        if not results:
            return CheckView((), "Nothing entered yet.", "none")
        statuses = {c.status for c in results}
        tone = "error" if "wrong" in statuses else "success"
        if tone == "success" and statuses - {"right"}:
            tone = "warning"
        frame = pd.DataFrame(
            {
                "": [tables.CHECK_MARKS[c.status] for c in results],
                "Layer": [c.name for c in results],
                "You wrote": [
                    fmt_int(c.user_value) if c.user_value is not None else str(raw.get(c.name))
                    for c in results
                ],
                "Correct": [c.correct for c in results],
                "Formula": [c.formula for c in results],
                "Message": [c.message for c in results],
            }
        )
        return CheckView(results, tables.checks_summary(results), tone, frame)

    # -- cross-check and exports ----------------------------------------------------------

    def run_crosscheck(self) -> list[ToolReport]:
        """torchinfo, fvcore and FlopCounterMode on a real forward pass (seconds; cached)."""
        return crosscheck(self.name, input_shape=self.input_shape, mnist=self.mnist, spec=self.spec)

    @property
    def file_stem(self) -> str:
        """``vgg16_3x224x224`` (ASCII only: no ``×`` in a downloaded file's name)."""
        return tables.file_stem(
            self.choice, shape_text(self.input_shape), "mnist" if self.mnist else ""
        )

    def csv(self) -> str:
        assert self.analysis is not None
        return tables.to_csv(self.analysis)

    def markdown(
        self, reports: Sequence[ToolReport] | None = None, check: CheckView | None = None
    ) -> str:
        """The homework report, with the cross-check and the checked cells when there are any."""
        assert self.analysis is not None
        return tables.to_markdown(
            self.analysis, crosscheck=reports or None, checks=check.results if check else None
        )


@functools.lru_cache(maxsize=64)
def _analyse(
    name: str, shape: tuple[int, int, int], mnist: bool, spec: StackSpec | None, separable: bool
) -> Analysis:
    return analyse_zoo(name, input_shape=shape, mnist=mnist, spec=spec, separable=separable)


def _page_chart(figure: go.Figure) -> ChartView:
    """The chart's title moves out of the figure (the page prints it, wrapping on a phone) and
    plotly's toolbar stands upright in the right margin, where it covers no title or legend."""
    title = str(figure.layout.title.text or "")
    figure.update_layout(
        title=None,
        margin={"t": 40, "r": 44},
        modebar={"orientation": "v"},
    )
    return ChartView(title, figure)


def inspector_view(
    choice: str,
    *,
    input_shape: tuple[int, int, int],
    mnist: bool = False,
    spec: StackSpec | None = None,
) -> InspectorView:
    """Analyse ``choice`` (a model name or :data:`CONV_LAB` with ``spec``) at ``input_shape``."""
    name = model_name(choice)
    shape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    base = InspectorView(choice=choice, name=name, input_shape=shape, mnist=mnist, spec=spec)
    try:
        check_input_shape(shape)
    except UserError as err:
        return _replace(base, input_error=str(err))
    try:
        analysis = _analyse(name, shape, mnist, spec, False)
        what_if = _analyse(name, shape, mnist, spec, True)
    except UserError as err:
        return _replace(base, error=str(err))
    names = zoo.student_layer_names(name, [(r.name, r.type) for r in analysis.rows])
    t, w = analysis.totals, what_if.totals
    refusal = None
    if t.params > CROSSCHECK_MAX_PARAMS:
        refusal = (
            f"{fmt_si(t.params)} parameters is too large to build with real weights here "
            f"(limit {fmt_si(CROSSCHECK_MAX_PARAMS)})."
        )
    return _replace(
        base,
        analysis=analysis,
        what_if=what_if,
        names=names,
        title=f"{analysis.model} at {shape_text(shape)}",
        totals_markdown=tables.totals_comparison_markdown(analysis, what_if),
        totals_caption=(
            f"MACs {fmt_si(t.macs, 'MACs')} → {fmt_si(w.macs, 'MACs')}; "
            f"params {fmt_si(t.params)} → {fmt_si(w.params)}."
        ),
        footer=tables.torchinfo_footer(analysis),
        lesson=lesson(analysis),
        charts=(
            _page_chart(model_layer_bars(analysis, names=names)),
            _page_chart(kind_share_bars(analysis)),
        ),
        check_layers=tuple(r.name for r in _param_rows(analysis)),
        crosscheck_refusal=refusal,
    )


def _param_rows(analysis: Analysis) -> list[LayerRow]:
    return [r for r in analysis.rows if r.params > 0]


def _replace(view: InspectorView, **changes: object) -> InspectorView:
    return replace(view, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the one check input


def entered_cells(
    filled: Mapping[int, str | None], editor_state: Mapping[str, object] | None
) -> dict[int, str | None]:
    """The editor's cells: the filled-in values with the typed edits on top.

    ``editor_state`` is what ``st.data_editor`` keeps under its key
    (``{"edited_rows": {row: {column: value}}, …}``).
    """
    cells = dict(filled)
    edited = (editor_state or {}).get("edited_rows") or {}
    assert isinstance(edited, Mapping)
    for row, change in edited.items():
        if isinstance(change, Mapping) and CHECK_COLUMN in change:
            value = change[CHECK_COLUMN]
            cells[int(row)] = None if value is None else str(value)
    return cells


def fill_from_column(
    cells: Mapping[int, str | None], pasted: str, rows: int
) -> tuple[dict[int, str | None], str]:
    """Put a pasted column (one number a line, in table order) into the editor's cells.

    Returns the new cells and a sentence saying what went where (extra lines are left out).
    """
    lines = [line.strip() for line in pasted.splitlines() if line.strip()]
    out = dict(cells)
    for i, line in enumerate(lines[:rows]):
        out[i] = line
    if not lines:
        return out, "Nothing to put in the table: the pasted column is empty."
    used = min(len(lines), rows)
    note = f"{used} pasted number{'s' if used != 1 else ''} went into the table (rows 1–{used})."
    if len(lines) > rows:
        note = (
            f"You pasted {len(lines)} numbers for {rows} layers with parameters; the first "
            f"{rows} went into the table."
        )
    return out, note
