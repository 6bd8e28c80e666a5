"""The Train page's view-models: the form and its cost, the live run, its results, "Try it".

Plain Python (no Streamlit): the page draws widgets, asks these functions what to show and lays
the answers out; the tests call the same functions. Four calls, one per section of the page:

- :func:`train_form_view` — the config the form describes (or what is wrong with it), its cost,
  a long-run warning, and for a run this machine would take days a lighter version it can finish;
- :func:`live_view` — status, stage, progress and the live curves of the run in the URL;
- :func:`results_view` — the finished run's numbers, confusion matrix, mistakes and downloads;
- :func:`prediction_view` — what the trained model makes of one digit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from cnnlab.classroom import fair_queue
from cnnlab.classroom.access import MACHINE, Viewer, require_change, why_not
from cnnlab.counting import zoo
from cnnlab.errors import UserError
from cnnlab.format import duration_text, fmt_si, md_escape, percent
from cnnlab.training import names
from cnnlab.training.checkpoints import predict
from cnnlab.training.config import (
    DEVICES,
    INPUT_SIZES,
    OPTIMIZERS,
    REPORT_PRESET,
    SCHEDULES,
    TrainConfig,
)
from cnnlab.training.estimate import LONG_RUN_S, CostEstimate
from cnnlab.training.store import Run, RunStore
from cnnlab.views import live_plot, run_charts, runview
from cnnlab.views.images import upscale
from cnnlab.views.live_plot import LivePlot
from cnnlab.views.runs import owner_text
from cnnlab.views.runview import Curves

FIELDS = {  # widget key → TrainConfig field
    "tr_model": "model",
    "tr_input_size": "input_size",
    "tr_epochs": "epochs",
    "tr_batch_size": "batch_size",
    "tr_lr": "lr",
    "tr_optimizer": "optimizer",
    "tr_schedule": "schedule",
    "tr_weight_decay": "weight_decay",
    "tr_momentum": "momentum",
    "tr_seed": "seed",
    "tr_device": "device",
}
LIMIT_KEY, NAME_KEY = "tr_limit", "tr_name"
STACK_LABEL = "Conv Lab stack"
MODEL_NOTES = {
    "small-cnn": "2 conv + 2 FC, made for MNIST — a minute or less on a CPU",
    "lenet5": "LeCun 1998 — tiny and fast",
    "vgg16": "the report's model (224×224 there) — needs input ≥ 32, and a GPU at 224",
    "mobilenet_v2": "inverted residuals of depthwise-separable convs — the report tried it too",
    "alexnet-report": "AlexNet with the report's 4096→1024 classifier — needs input ≥ 64",
    "resnet18": "residual blocks, batch norm",
}
LIGHTER_TARGET_S = 10 * 60  # a lighter version should finish in about this long …
LIGHTER_LIMITS = (10_000, 5_000, 2_000, 1_000)  # … on the first of these many digits that does

ChartsBuilder = Callable[[Curves, Any, float], dict[str, go.Figure]]
"""``charts(curves, epochs, smoothing)`` → container key → figure (``run_charts.live_charts``)."""
PlotsBuilder = Callable[[Curves, Any, float], dict[str, LivePlot]]
"""``plots(curves, epochs, smoothing)`` → container key → live chart (``live_plot.live_plots``)."""
Estimator = Callable[[TrainConfig, bool], CostEstimate]
"""``estimate(config, measure)``: the page passes a cached :func:`estimate_cost`."""


@dataclass(frozen=True)
class Tile:
    """One ``st.metric``: label, value, and the tooltip with the exact figure."""

    label: str
    value: str
    help: str | None = None


@dataclass(frozen=True)
class Message:
    """A box the page shows: ``kind`` is ``error``, ``warning`` or ``info``."""

    kind: str
    text: str
    icon: str


# --- the form ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One form widget: ``kind`` is ``select``, ``number`` or ``text``; ``key`` its state key."""

    key: str
    label: str
    kind: str
    options: tuple[Any, ...] = ()
    labels: Mapping[Any, str] | None = None  # option → what the select box shows
    help: str | None = None
    step: float | None = None
    format: str | None = None
    min_value: int | None = None
    placeholder: str | None = None

    def text(self, option: Any) -> str:
        return (self.labels or {}).get(option, str(option))


def form_fields(lab_spec: object) -> tuple[tuple[Field, ...], tuple[Field, ...], tuple[Field, ...]]:
    """The form's widgets: two rows of four, and the five under "More options"."""
    models = model_labels(lab_spec)
    sizes = {s: f"{s}×{s}" + (" (native)" if s == 28 else " (resized)") for s in INPUT_SIZES}
    optimizers = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD (momentum)"}
    first = (
        Field("tr_model", "Model", "select", tuple(models), models,
              "Every model gets a 1-channel first conv and a 10-class head"),
        Field("tr_input_size", "Input size", "select", INPUT_SIZES, sizes,
              "MNIST digits are 28×28; larger sizes are resized on the device"),
        Field("tr_epochs", "Epochs", "number", step=1),
        Field("tr_batch_size", "Batch size", "number", step=16),
    )  # fmt: skip
    second = (
        Field("tr_lr", "Learning rate", "number", step=1e-4, format="%.0e"),
        Field("tr_optimizer", "Optimizer", "select", OPTIMIZERS, optimizers),
        Field(LIMIT_KEY, "Training images (0 for all)", "number", step=1000, min_value=0,
              help="A subset of the 60,000 training digits, for quick demos"),
        Field("tr_device", "Device", "select", DEVICES,
              help="auto: CUDA if present, else Apple MPS, else the CPU"),
    )  # fmt: skip
    more = (
        Field("tr_schedule", "LR schedule", "select", SCHEDULES),
        Field("tr_weight_decay", "Weight decay", "number", step=1e-5, format="%.0e"),
        Field("tr_momentum", "Momentum (SGD)", "number", step=0.05),
        Field("tr_seed", "Seed", "number", step=1),
        Field(NAME_KEY, "Run name", "text", placeholder="optional"),
    )  # fmt: skip
    return first, second, more


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    state: dict[str, Any]
    help: str


def presets() -> tuple[Preset, ...]:
    """The two buttons above the form."""
    return (
        Preset("preset-default", "Defaults (small-cnn)", form_state(TrainConfig(), 0),
               "small-cnn on all 60,000 training digits for 1 epoch"),
        Preset("preset-report", "Report preset (VGG-16)", form_state(REPORT_PRESET, 0),
               "The report's setting: VGG-16, 224×224, 3 epochs, Adam 1e-4, batch 16"),
    )  # fmt: skip


def form_defaults() -> dict[str, Any]:
    """Widget key → starting value (a fresh page shows the default config)."""
    defaults = TrainConfig()
    return {**{k: getattr(defaults, f) for k, f in FIELDS.items()}, LIMIT_KEY: 0, NAME_KEY: ""}


def form_state(config: TrainConfig, limit: int) -> dict[str, Any]:
    """Widget key → value that puts ``config`` into the form (presets, "Use these settings")."""
    return {
        **{k: getattr(config, f) for k, f in FIELDS.items()},
        LIMIT_KEY: limit,
        NAME_KEY: config.name or "",
    }


def model_labels(lab_spec: object) -> dict[str, str]:
    """Model name → what the select box shows (MNIST models first, then the lab's stack)."""
    first = list(zoo.MNIST_MODELS)
    labels = {m: m for m in first}
    if isinstance(lab_spec, dict):
        labels[zoo.STACK] = f"{STACK_LABEL}: {lab_spec.get('name') or 'current stack'}"
    labels.update({m: m for m in zoo.ZOO if m not in first})
    return labels


def size_for_model(model: str, current: int, lab_spec: object) -> tuple[int, str | None]:
    """The input size the form moves to when the model changes, and a toast saying why.

    A Conv Lab stack trains at its own input size (when offered); a zoo model that cannot take
    the current size moves up to the smallest offered size it takes.
    """
    if model == zoo.STACK:
        spec = lab_spec if isinstance(lab_spec, dict) else {}
        size = (spec.get("input") or [1, 28, 28])[-1]
        return (size, None) if size in INPUT_SIZES else (current, None)
    try:
        fit = zoo.fit_input_size(model, [s for s in INPUT_SIZES if s >= current])
    except UserError:  # an unknown model: the form says so
        return current, None
    if fit is None or fit == current:
        return current, None
    return fit, f"{model} cannot take {current}×{current}: input size set to {fit}×{fit}"


def config_from_form(values: Mapping[str, Any], lab_spec: object) -> TrainConfig:
    """The validated config the widgets describe (a :class:`UserError` says what is wrong)."""
    fields = {field: values[key] for key, field in FIELDS.items()}
    limit = values.get(LIMIT_KEY)
    return TrainConfig(
        **fields,
        train_limit=int(limit) if limit else None,
        name=str(values.get(NAME_KEY) or "").strip() or None,
        spec=lab_spec if fields["model"] == zoo.STACK and isinstance(lab_spec, dict) else None,
    ).validate()


@dataclass(frozen=True)
class Lighter:
    """A version of a too-long run that this machine can finish, with its own estimate."""

    config: TrainConfig
    limit: int
    estimate: CostEstimate
    label: str  # what the one-click button says


@dataclass(frozen=True)
class FormView:
    """Everything the form section shows below the widgets."""

    config: TrainConfig | None
    problem: str | None  # why it cannot train (shown next to the form; blocks the launch)
    tiles: tuple[Tile, ...] = ()
    warning: str | None = None  # a long run: said plainly, does not block
    lighter: Lighter | None = None
    note: str | None = None  # a line about the chosen model

    @property
    def can_launch(self) -> bool:
        return self.config is not None and self.problem is None


def train_form_view(
    values: Mapping[str, Any], *, lab_spec: object, estimate: Estimator
) -> FormView:
    """The form's config, its cost on this machine and what to do about a run too long for it."""
    model = values.get("tr_model")
    note = f"**{model}**: {MODEL_NOTES[model]}" if model in MODEL_NOTES else None
    try:
        config = config_from_form(values, lab_spec)
        cost = estimate(config, False)
        if cost.fits and cost.warning is None:  # cheap enough to time a few real steps
            cost = estimate(config, True)
    except UserError as err:
        return FormView(config=None, problem=str(err), note=note)
    how = "measured warm-up" if cost.measured_images_per_second else "from FLOPs"
    tiles = (
        Tile("Parameters", f"{cost.params:,}"),
        Tile("MACs / image", fmt_si(cost.macs_per_image), f"{cost.macs_per_image:,}"),
        Tile(
            "Training FLOPs",
            fmt_si(cost.train_flops),
            f"{cost.train_flops:,} = MACs × {cost.images:,} images × 3 (forward + backward)"
            " × 2 FLOPs per MAC",
        ),
        Tile(f"Estimated time on {cost.device}", cost.eta_text, how),
    )
    problem = cost.refusal if not cost.fits else None
    warning = f"Long run: {cost.warning}. You can still start it." if cost.warning else None
    lighter = lighter_version(config, estimate) if cost.warning else None
    return FormView(config, problem, tiles, warning, lighter, note)


def lighter_version(config: TrainConfig, estimate: Estimator) -> Lighter | None:
    """The same model at the smallest input it takes, 1 epoch, on the most digits (of
    :data:`LIGHTER_LIMITS`) that this machine trains in about :data:`LIGHTER_TARGET_S` — by the
    FLOP guess first, then by a measured warm-up (a busy machine steps down further)."""
    spec = config.stack_spec()
    size = zoo.fit_input_size(config.model, INPUT_SIZES, spec=spec) or config.input_size
    best: tuple[TrainConfig, int, CostEstimate] | None = None
    for limit in LIGHTER_LIMITS:
        light = config.with_(input_size=size, epochs=1, train_limit=limit, name=None)
        guess = estimate(light, False)
        if not guess.fits or guess.eta_seconds > LIGHTER_TARGET_S:
            continue
        cost = estimate(light, True)
        if cost.eta_seconds <= LONG_RUN_S:
            best = (light, limit, cost)
        if cost.eta_seconds <= LIGHTER_TARGET_S:
            break
    if best is None:
        return None
    light, limit, cost = best
    label = (
        f"Try {config.model} at {size}×{size}, 1 epoch on {limit:,} digits:"
        f" {cost.eta_text} on {cost.device}"
    )
    return Lighter(light, limit, cost, label)


# --- the run in the URL -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunHeader:
    """The run's title line, its options in one line, and the form state to reuse them."""

    title: str
    caption: str
    reuse: dict[str, Any] | None  # form_state of the run's config (None: unreadable config)


def run_header(run: Run) -> RunHeader:
    try:
        config = TrainConfig.from_dict(run.config)
    except (UserError, TypeError):
        reuse = None
    else:
        reuse = form_state(config.with_(name=None), config.train_limit or 0)
    caption = f"`{run.id}` · {runview.config_text(run.config)}"
    return RunHeader(f"Run “{md_escape(run.name)}”", caption, reuse)


@dataclass(frozen=True)
class Ownership:
    """Whose run this is (plain text) and whether the viewer may stop it (else why not)."""

    owner: str
    may_change: bool
    reason: str | None


def run_ownership(run: Run, viewer: Viewer = MACHINE) -> Ownership:
    reason = why_not(run, viewer)
    return Ownership(owner_text(run), reason is None, reason)


def launch(store: RunStore, config: TrainConfig, viewer: Viewer = MACHINE) -> str:
    """Queue the form's run through the class's fair queue (limits, K, turns); its id."""
    limited = False if viewer.teacher else None  # the teacher is not held to the class limits
    (run_id,) = fair_queue.submit([config], store, viewer.owner, limited=limited)
    return run_id


def stop_run(store: RunStore, run_id: str, viewer: Viewer = MACHINE) -> str | None:
    """Stop the run if ``viewer`` may (checked on the store's run, not the page's button);
    why not, or None."""
    try:
        run = store.require_run(run_id)
        require_change(run, viewer)
        store.request_stop(run_id)
    except UserError as err:
        return str(err)
    return None


def queue_note(store: RunStore, viewer: Viewer) -> str | None:
    """Where the viewer stands against the class's limits, when they hold (None otherwise)."""
    if viewer.owner is None or viewer.teacher or not fair_queue.class_is_limited():
        return None
    try:
        standing = fair_queue.standing(store, viewer.owner)
    except UserError:
        return None
    text = (
        f"You have {standing.entries} of {standing.runs_per_student} runs queued or running"
        " (the class's limit per student)."
    )
    if standing.queue_cap is not None and standing.waiting >= standing.queue_cap:
        text += f" The class queue is full ({standing.waiting} waiting): try again in a minute."
    return text


def missing_run_text(store: RunStore, run_id: str) -> str:
    """What to say when the run in the URL is not there (any more)."""
    if store.get_run(run_id, trashed=True) is not None:
        return (
            f"Run `{run_id}` was deleted: it is in the trash (restore it on the **Runs** page"
            f" or with `python -m cnnlab runs restore {run_id}`)."
        )
    return f"No run with id `{run_id}` (it may have been deleted)."


@dataclass(frozen=True)
class LiveView:
    """The live section: status, stage and progress, a message, the curves."""

    status: str
    status_line: str
    active: bool
    stop_requested: bool
    fraction: float
    progress_text: str
    message: Message | None
    charts: dict[str, go.Figure]  # container key → figure: loss, training accuracy, test accuracy
    plots: dict[str, LivePlot]  # the same charts for the browser's live chart while it runs
    points: int
    ended_since_drawn: bool  # the page's results (or their absence) are stale: rerun it all


def live_view(
    store: RunStore,
    run: Run,
    curves: Curves,
    *,
    page_status: str,
    smoothing: float,
    now: float | None = None,
    charts: ChartsBuilder = run_charts.live_charts,
    plots: PlotsBuilder = live_plot.live_plots,
) -> LiveView:
    """Read the rows recorded since ``curves`` last grew and what the run is doing now.

    While the run is queued or running, ``plots(curves, epochs, smoothing)`` makes the live
    charts (:mod:`cnnlab.views.live_plot`: the browser only gets new arrays each tick) and
    ``charts`` is empty; once it ended, ``charts(…)`` makes the Plotly figures and ``plots`` is
    empty. The page passes versions cached across tabs
    (:func:`cnnlab.views.ui.shared_live_plots`), so many viewers cost one build.
    """
    curves.extend(store.metrics(run.id, after_id=curves.last_id))
    stage = store.get_artifact(run.id, names.STAGE) if run.active else None
    progress = runview.progress_of(curves, run.status, stage.data if stage else None, now)
    epochs = run.config.get("epochs")
    message = None
    if run.status == names.QUEUED:
        message = Message("info", "Queued: waiting for a worker to pick it up.", "⏳")
    elif run.error and run.status != names.FINISHED:
        if run.status in (names.FAILED, names.INTERRUPTED):
            message = Message("error", f"{run.status.capitalize()}: {run.error}", "❌")
        else:
            message = Message("info", run.error[:1].upper() + run.error[1:], "⏹️")
    return LiveView(
        status=run.status,
        status_line=runview.status_line(run),
        active=run.active,
        stop_requested=run.stop_requested,
        fraction=progress.fraction,
        progress_text=progress.text,
        message=message,
        charts={} if run.active else charts(curves, epochs, smoothing),
        plots=plots(curves, epochs, smoothing) if run.active else {},
        points=curves.count(names.LOSS),
        ended_since_drawn=run.status != page_status and run.done,
    )


# --- results of a finished run -----------------------------------------------------------------


@dataclass(frozen=True)
class ResultsView:
    """A finished run's report: four numbers, time and speed, charts, mistakes, downloads."""

    tiles: tuple[Tile, ...]
    charts: dict[str, go.Figure]  # container key → figure: confusion matrix, per-class metrics
    mistakes: tuple[np.ndarray, ...]
    mistake_captions: tuple[str, ...]
    checkpoint: Path | None  # None: no checkpoint file (any more)
    checkpoint_name: str
    csv: bytes
    csv_name: str


MISTAKES_SHOWN = 16


def results_view(store: RunStore, run: Run) -> ResultsView:
    final = store.final_metrics(run.id)
    matrix = store.get_artifact(run.id, names.CONFUSION_MATRIX)
    per_class = store.get_artifact(run.id, names.PER_CLASS)
    mistakes = store.get_artifact(run.id, names.MISTAKES)
    checkpoint = store.get_artifact(run.id, names.CHECKPOINT)
    macro = "macro average over the digits"
    ips = final.get(names.MEAN_IMAGES_PER_SECOND)
    tiles = (
        Tile("Accuracy", percent(final.get(names.ACCURACY))),
        Tile("Precision", percent(final.get(names.PRECISION)), macro),
        Tile("Recall", percent(final.get(names.RECALL)), macro),
        Tile("F1", percent(final.get(names.F1)), macro),
        Tile("Training time", duration_text(final.get(names.TRAIN_SECONDS))),
        Tile("Images/s", "—" if ips is None else runview.speed_text(ips)),
    )
    items = (mistakes.data if mistakes is not None and mistakes.data else [])[:MISTAKES_SHOWN]
    path = checkpoint.path if checkpoint is not None else None
    stem = f"{run.name}-{run.id}"
    charts = {}
    if matrix is not None and matrix.data:
        charts["confusion"] = run_charts.confusion_figure(matrix.data)
    if per_class is not None and per_class.data:
        charts["per-class"] = run_charts.per_class_figure(per_class.data)
    return ResultsView(
        tiles=tiles,
        charts=charts,
        mistakes=tuple(upscale(np.asarray(m["pixels"], dtype=np.uint8), 3) for m in items),
        mistake_captions=tuple(
            f"#{m['index']}: {m['true']} → {m['pred']} ({m['confidence']:.0%})" for m in items
        ),
        checkpoint=path if path is not None and Path(path).is_file() else None,
        checkpoint_name=f"{stem}.pt",
        csv=runview.metrics_csv(store.metrics(run.id)),
        csv_name=f"{stem}-metrics.csv",
    )


# --- "Try it" ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionView:
    picture: np.ndarray  # the 28×28 digit the model saw, enlarged
    label: str
    digit: int
    sure: str
    figure: go.Figure


def prediction_view(
    model: nn.Module, config: TrainConfig, digit: np.ndarray, label: str
) -> PredictionView:
    """The trained model's answer for one 28×28 uint8 digit (white on black)."""
    probs = predict(model, config, torch.from_numpy(np.ascontiguousarray(digit)).unsqueeze(0))
    values = probs[0].tolist()
    best, p = runview.top_prediction(values)
    return PredictionView(
        picture=upscale(digit, 4),
        label=label,
        digit=best,
        sure=f"{p:.1%} sure",
        figure=run_charts.probability_figure(values),
    )


def drawn_digit(image: np.ndarray | None) -> np.ndarray | None:
    """The canvas picture as an MNIST digit; None while nothing is drawn."""
    if image is None or image[..., :3].max() < 20:
        return None
    return runview.to_digit(image, invert=False)


def count_clear(state: dict[str, Any] | Any) -> None:
    """The canvas's Clear button: a new canvas key starts an empty drawing."""
    state["canvas-clears"] = int(state.get("canvas-clears", 0)) + 1


def uploaded_digit(data: bytes) -> np.ndarray:
    """An uploaded picture of one digit as an MNIST digit (a :class:`UserError` if it is none)."""
    return runview.to_digit(runview.read_picture(data))


def pick_label(index: int, label: int) -> str:
    """The caption of a picked test digit."""
    return f"test #{index}, true label {label}"
