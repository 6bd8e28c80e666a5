"""Everything the Conv Lab page shows, from one configuration: :func:`conv_lab_view`.

The page lays out a :class:`ConvLabView` (tables, totals, ratios, charts, messages); the tests
and the fuzzer call the same function, so "what the page does" exists once. No Streamlit here.

Numbering: layers are counted from 0 everywhere — the editor's row numbers, the table's ``#``,
the messages (``Layer 1: …``, as the spec's own ``layer 1 (conv): …``), the chart labels
(``#1``) and the latency text — the same numbers as PyTorch's ``features.1``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from cnnlab.counting.analyse import (
    SeparableComparison,
    Totals,
    analyse_spec,
    compare_separable,
    summarise_layers,
)
from cnnlab.counting.latency import Latency, compare_latency, noise_notes
from cnnlab.counting.spec import StackSpec, check_input_shape, dumps
from cnnlab.devices import resolve_device
from cnnlab.errors import UserError
from cnnlab.format import fmt_si
from cnnlab.views import labstate as lab
from cnnlab.views.charts import separable_bars, theory_curve

LATENCY_MAX_MACS_CPU = 20 * 10**9
"""Above this many MACs per pass the page does not time a stack on a CPU (it would take minutes)."""

MAX_RATIO_LINES = 6

COUNT_COLUMNS: dict[str, str | None] = {
    "Params": None,
    "MACs": None,
    "FLOPs": None,
    "Activations (bytes)": "fp32 output of the layer, batch 1",
}
"""The table's integer columns (shown localized: 73,856) and their help texts."""

TERMS = (
    "**M** = input channels, **N** = output channels (filters), **k** = kernel size "
    "(a k×k window). A *regular* conv does k·k·M·N multiply-adds per output position; a "
    "*depthwise-separable* one does a k×k depthwise conv per input channel (k·k·M) and then "
    "a 1×1 pointwise conv (M·N): the ratio is 1/N + 1/k²."
)
"""Part I's words, shown next to the regular / separable switch."""

FORM_HELP = (
    "All regular / all separable override the per-layer *separable* column (only convs with "
    "kernel > 1 and groups = 1 have a separable form); your own ticks come back with *per layer*."
)

STACK_HELP = (
    "**The stack** — one row per layer (numbered from 0); add rows at the bottom, select rows "
    "to delete them. `out` is output channels (conv) or features (linear). Empty cells take "
    "the defaults."
)

NO_RESULTS = (
    "No results until the input shape is fixed: the numbers of another shape would be stale."
)

LATENCY_HELP = (
    "Real forward passes of the regular and the all-separable stack on this machine (GPU when "
    "present): a warm-up, then rounds alternating the two forms; min / median / max over the "
    "rounds, and a warning when they are too noisy to trust."
)

WHY_NOT_FASTER = (
    "**Why fewer MACs is not proportionally faster.** A depthwise conv does very "
    "little arithmetic per byte it reads, so it waits on memory instead of computing; "
    "the separable form runs two kernels instead of one and writes, then reads back, "
    "an extra activation map between them; and the libraries (oneDNN, cuDNN) are "
    "tuned hardest for dense k×k convs. At batch 1 fixed per-layer overheads weigh "
    "in too. MACs count arithmetic, not time."
)

PROS_CONS_REGULAR = """
**Regular convolution**

Pros
- Extracts more features: every filter mixes all input channels over k×k, with many more
  parameters to learn from.
- Simple and intuitive to use; one layer, one kernel.
- Suits smaller datasets and complex features, where it may perform better.

Cons
- Heavy computation: k·k·M·N·H·W multiply-adds grow quickly with channels and resolution.
- Many parameters (k·k·M·N per layer).
- Higher risk of overfitting, from the extra parameters and capacity.
"""

PROS_CONS_SEPARABLE = """
**Depthwise-separable convolution** (depthwise k×k, then pointwise 1×1)

Pros
- Far fewer parameters: k·k·M + M·N instead of k·k·M·N.
- Far fewer MACs: the ratio is 1/N + 1/k², about 8–9× fewer for 3×3 kernels.
- Faster training and inference, and less memory — though not by the full MAC ratio
  (measure it above).

Cons
- Extracts fewer features: each depthwise filter sees one channel; channels mix only
  through the 1×1 conv.
- More complex to implement (two layers, each with its own norm and activation).
- Accuracy may drop somewhat (MobileNet v1: about 1 % on ImageNet for 8–9× fewer MACs).
"""


def fewer(ratio: float) -> str:
    """0.12 → ``8.4× fewer``; 0.95 → ``5.0 % fewer``; 1.1 → ``10.0 % more``."""
    if ratio <= 0:
        return "all"
    if ratio > 1:
        return f"{(ratio - 1) * 100:.1f} % more"
    return f"{1 / ratio:.1f}× fewer" if ratio <= 2 / 3 else f"{(1 - ratio) * 100:.1f} % fewer"


def ratio_line(c: SeparableComparison, separable: bool) -> str:
    """One conv layer's measured ratio against the theory; a what-if when it is not separable."""
    theory = f"1/N + 1/k² = 1/{c.out_channels} + 1/{c.kernel * c.kernel} = {c.theory:.4f}"
    if separable:
        return f"Layer {c.index}: {c.ratio:.4f} measured vs {theory}"
    return (
        f"Layer {c.index} (regular here — what-if): {c.ratio:.4f} if it were separable, vs {theory}"
    )


@dataclass(frozen=True)
class TotalsBox:
    """One totals box: exact integers and the caption under them."""

    title: str
    totals: Totals
    caption: str


@dataclass(frozen=True)
class RatioBox:
    """The ratio box: the ratios when something is separable, else why there is none."""

    mac_ratio: float | None = None
    param_ratio: float | None = None
    summary: str = ""
    lines: tuple[str, ...] = ()
    info: str = ""


@dataclass(frozen=True, eq=False)
class ConvLabView:
    """What the Conv Lab page shows for one configuration.

    ``input_error`` (a bad C×H×W) or ``stack_error`` (a stack that cannot be analysed at all)
    means there are no results: the page says why and shows nothing stale. Otherwise rows that
    do not parse or do not fit have a message each (``messages``, ``errors``) and the results
    cover the rows above the first invalid one.
    """

    config: lab.LabConfig
    input_error: str | None = None
    stack_error: str | None = None
    stack: lab.LabStack | None = None
    spec: StackSpec | None = None  # the analysed spec, the form applied
    messages: dict[int, str] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    regular: TotalsBox | None = None
    configured: TotalsBox | None = None
    ratio: RatioBox = RatioBox()
    comparisons: tuple[SeparableComparison, ...] = ()
    bars: go.Figure | None = None
    theory: go.Figure | None = None
    pros_cons_caption: str = ""
    n_separable: int = 0
    n_flippable: int = 0
    link_value: str | None = None
    link_error: str | None = None

    @property
    def ok(self) -> bool:
        """There are results to show (possibly for a prefix of the rows)."""
        return self.input_error is None and self.stack_error is None

    @property
    def valid(self) -> bool:
        """Every row is valid: the stack can be timed, handed to the Inspector, downloaded."""
        return self.ok and not self.messages and bool(self.config.layers)

    @property
    def errors(self) -> tuple[str, ...]:
        """The messages shown above the table (rows below a bad one only say so in the table)."""
        return tuple(
            f"Layer {i}: {m}"
            for i, m in sorted(self.messages.items())
            if not m.startswith("not analysed")
        )

    @property
    def status_width(self) -> str:
        """The Status column is wide only when it holds messages."""
        return "large" if self.messages else "small"

    @property
    def can_download(self) -> bool:
        return self.ok and self.stack is not None and self.stack.complete

    @property
    def download_json(self) -> str:
        return dumps(self.spec) if self.spec is not None else ""

    @property
    def file_name(self) -> str:
        return f"{self.config.name.replace(' ', '_') or 'stack'}.json"

    @property
    def spec_key(self) -> str:
        """Identifies the stack as typed (the form aside): a latency result belongs to one."""
        if self.stack is None:
            return ""
        return json.dumps(self.stack.spec.to_dict(), sort_keys=True)

    def styled_table(self) -> Styler:
        """The table with rows that are not ✅ tinted red."""
        assert self.table is not None
        return self.table.style.apply(
            lambda row: [
                ""
                if str(row["Status"]).startswith("✅")
                else "background-color: rgba(255, 75, 75, 0.15)"
                for _ in row
            ],
            axis=1,
        )


def conv_lab_view(config: lab.LabConfig) -> ConvLabView:
    """Analyse ``config`` (rows as typed, form, input) into everything the page shows."""
    try:
        check_input_shape(tuple(config.input))
    except UserError as err:
        return ConvLabView(config=config, input_error=str(err))
    layers = [dict(layer) for layer in config.layers]
    try:
        stack = lab.parse_rows(config.input, layers, config.name)
        spec = lab.effective_spec(stack.spec, config.mode)
        analysis = analyse_spec(spec)
        regular = analyse_spec(stack.spec, separable=False)
        summaries = summarise_layers(spec, analysis)
        messages = lab.row_messages(stack, spec)
        comparisons = tuple(compare_separable(spec))
    except UserError as err:
        return ConvLabView(config=config, stack_error=str(err))
    table = lab.layer_table(stack, summaries, layers, spec)
    n_sep = sum(1 for layer in spec.layers if layer.type == "conv" and layer.separable)
    n_flippable = sum(1 for layer in stack.spec.layers if layer.flippable)
    separable_rows = {i for i, layer in enumerate(spec.layers) if layer.separable}
    ratio = _ratio_box(analysis.totals, regular.totals, n_sep, n_flippable, comparisons,
                       separable_rows)  # fmt: skip
    caption = ""
    if n_sep and regular.totals.params and regular.totals.macs:
        caption = (
            f"For this stack: {regular.totals.params / max(analysis.totals.params, 1):.1f}× "
            f"fewer parameters and {regular.totals.macs / max(analysis.totals.macs, 1):.1f}× "
            "fewer MACs as configured."
        )
    link_value = link_error = None
    try:
        link_value = lab.encode_config(config)
    except UserError as err:
        link_error = str(err)
    return ConvLabView(
        config=config,
        stack=stack,
        spec=spec,
        messages=messages,
        table=table,
        regular=TotalsBox("Regular", regular.totals, "every conv as a regular k×k conv"),
        configured=TotalsBox(
            "As configured",
            analysis.totals,
            f"{n_sep} of {n_flippable} flippable conv layers separable",
        ),
        ratio=ratio,
        comparisons=comparisons,
        bars=separable_bars(comparisons) if comparisons else None,
        theory=theory_curve(comparisons) if comparisons else None,
        pros_cons_caption=caption,
        n_separable=n_sep,
        n_flippable=n_flippable,
        link_value=link_value,
        link_error=link_error,
    )


def _ratio_box(
    configured: Totals,
    regular: Totals,
    n_sep: int,
    n_flippable: int,
    comparisons: tuple[SeparableComparison, ...],
    separable_rows: set[int],
) -> RatioBox:
    if n_sep and regular.macs:
        mac_ratio = configured.macs / regular.macs
        param_ratio = configured.params / regular.params if regular.params else 0.0
        lines = [ratio_line(c, c.index in separable_rows) for c in comparisons[:MAX_RATIO_LINES]]
        if len(comparisons) > MAX_RATIO_LINES:
            lines.append(
                f"… and {len(comparisons) - MAX_RATIO_LINES} more conv layers (see the theory "
                "chart)."
            )
        if any(c.index not in separable_rows for c in comparisons):
            lines.append(
                "A what-if is the ratio a layer would have if it were made separable; it is "
                "not in the totals above."
            )
        return RatioBox(
            mac_ratio=mac_ratio,
            param_ratio=param_ratio,
            summary=f"{fewer(mac_ratio)} MACs, {fewer(param_ratio)} parameters",
            lines=tuple(lines),
        )
    if not n_flippable:
        return RatioBox(
            info="No conv with kernel > 1 and groups = 1 here: nothing to make separable."
        )
    return RatioBox(
        info="Every conv is regular. Tick a layer's **separable** box (form: per layer) or "
        "choose **all separable** to see the ratio."
    )


# ---------------------------------------------------------------- latency


@dataclass(frozen=True)
class LatencyView:
    """A regular vs all-separable timing of one stack, ready to show."""

    regular: Latency
    separable: Latency
    mac_ratio: float
    notes: tuple[str, ...]

    @property
    def time_ratio(self) -> float:
        return self.separable.median_ms / self.regular.median_ms if self.regular.median_ms else 0.0

    @property
    def noisy(self) -> bool:
        return bool(self.notes)

    @property
    def metrics(self) -> tuple[tuple[str, str, str], ...]:
        """(label, value, help) of the four figures, in reading order (two per line)."""
        return (
            ("Regular", f"{self.regular.median_ms:.2f} ms", "median over the rounds"),
            ("Separable", f"{self.separable.median_ms:.2f} ms", "median over the rounds"),
            ("MAC ratio", f"{self.mac_ratio:.3f}", "all-separable MACs ÷ regular MACs"),
            ("Time ratio", f"{self.time_ratio:.3f}", "separable ms ÷ regular ms"),
        )

    @property
    def warning(self) -> str:
        """The noisy-result flag ("" when the result looks steady)."""
        if not self.notes:
            return ""
        return "Noisy result — measure again before trusting it: " + "; ".join(self.notes) + "."

    @property
    def table(self) -> pd.DataFrame:
        """min / median / max per form, ms per forward pass (to the µs)."""
        return pd.DataFrame(
            [
                {
                    "Form": name,
                    "min (ms)": round(lat.min_ms, 3),
                    "median (ms)": round(lat.median_ms, 3),
                    "max (ms)": round(lat.max_ms, 3),
                }
                for name, lat in (("regular", self.regular), ("separable", self.separable))
            ]
        )

    @property
    def caption(self) -> str:
        reg, sep = self.regular, self.separable
        speedup = reg.median_ms / sep.median_ms if sep.median_ms else 0.0
        if speedup >= 1.1:
            pace = f"but only {speedup:.1f}× faster"
        elif speedup > 1 / 1.1:
            pace = "yet about as fast (within 10 %)"
        else:
            pace = f"yet {1 / max(speedup, 1e-9):.1f}× slower"
        return (
            f"Median of {reg.runs} rounds on {reg.device}, each round timing "
            f"{reg.passes_per_sample} regular and {sep.passes_per_sample} separable passes, "
            f"after {reg.warmup_passes} and {sep.warmup_passes} warm-up passes; regular vs all "
            f"separable: {fewer(self.mac_ratio)} MACs, {pace}."
        )


def latency_device() -> str:
    """Where the page times stacks: the GPU when there is one (the one device rule)."""
    return str(resolve_device("auto"))


def latency_refusal(view: ConvLabView, device: str) -> str | None:
    """Why this stack is not timed here (None: it can be)."""
    if not view.valid:
        return "Fix the invalid rows first."
    if not view.n_flippable:
        return "Add a conv with kernel > 1 to compare."
    assert view.regular is not None
    macs = view.regular.totals.macs
    if device == "cpu" and macs > LATENCY_MAX_MACS_CPU:
        return (
            f"This stack needs {fmt_si(macs, 'MACs')} per pass; timing it on this CPU would "
            "take too long. Reduce the input size or channels."
        )
    return None


def measure_latency_view(
    view: ConvLabView, device: str | None = None, **timing: Any
) -> LatencyView:
    """Time the stack's regular and all-separable forms (``timing``: compare_latency's knobs).

    Raises :class:`UserError` when the stack cannot be timed here.
    """
    device = device or latency_device()
    refusal = latency_refusal(view, device)
    if refusal:
        raise UserError(refusal)
    assert view.stack is not None and view.regular is not None
    regular, separable = compare_latency(view.stack.spec, device=device, **timing)
    sep_macs = analyse_spec(lab.effective_spec(view.stack.spec, "separable")).totals.macs
    reg_macs = view.regular.totals.macs
    return LatencyView(
        regular=regular,
        separable=separable,
        mac_ratio=sep_macs / reg_macs if reg_macs else 0.0,
        notes=noise_notes(regular, separable),
    )
