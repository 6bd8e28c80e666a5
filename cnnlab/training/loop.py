"""The training engine: one readable loop from MNIST tensors to a finished, recorded run.

``train(config, store, run_id)`` reads top to bottom like nanoGPT's ``train.py``:

1. claim the run in the store, start a watcher thread (stop flag + heartbeat, every 0.25 s);
2. put MNIST on the training device as uint8 tensors (60,000 × 28 × 28 = 47 MB);
3. build the model (zoo, MNIST-adapted), optimizer and LR schedule, seeded;
4. loop: slice a batch, convert/resize/normalise it on the device, forward, backward, step;
   every few steps one transaction of metrics (loss, running accuracy, lr, images/s, ETA,
   progress); after every epoch the test loss and accuracy;
5. at the end: accuracy, macro precision/recall/F1, per-class metrics and the confusion matrix
   (scikit-learn), the most confidently wrong test digits, and a checkpoint.

Between metric rows the run's ``stage`` artifact says what it is doing ("loading data",
"evaluating on 10,000 test digits", …). fp32 on CPU; bf16 autocast + channels_last on CUDA.
Nothing here knows about Streamlit or SQL: progress leaves through
:class:`~cnnlab.training.store.RunStore` methods and ``on_progress``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.devices import autocast, cpu_threads, resolve_device
from cnnlab.errors import UserError, error_text
from cnnlab.training import names
from cnnlab.training.checkpoints import INITIAL, save_checkpoint, save_initial
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import load_mnist
from cnnlab.training.evaluate import eval_batch_size, evaluate, import_metrics, summarise
from cnnlab.training.names import FAILED, FINISHED, INTERRUPTED, STOPPED
from cnnlab.training.recipe import build, make_optimizer, make_schedule, prepare, seed_everything
from cnnlab.training.store import RunStore
from cnnlab.training.watcher import STOPPED_TEXT, Stopped, Watcher

LOG_POINTS = 200  # at most about this many metric records per run …
LOG_INTERVAL_S = 0.2  # … and at most five a second (plus the first step and each epoch's end)
SUMMARY_GUESS_S = 0.2  # the final summary (scikit-learn) before the checkpoint is written
IMPORT_GUESS_S = 1.0  # importing scikit-learn for it, where this process has not yet
WRITE_BYTES_PER_S = 200e6  # a guess for how fast the checkpoint is written


@dataclass(frozen=True)
class Progress:
    """What ``on_progress`` receives every few steps (and once per test evaluation)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    accuracy: float
    lr: float
    images_per_second: float
    eta_seconds: float
    test_accuracy: float | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    def rows(self) -> list[tuple[int, float, str, float]]:
        """The step's metric rows, as the store records them."""
        values = {
            names.LOSS: self.loss,
            names.TRAIN_ACCURACY: self.accuracy,
            names.LR: self.lr,
            names.IMAGES_PER_SECOND: self.images_per_second,
            names.ETA_SECONDS: self.eta_seconds,
            names.PROGRESS: self.fraction,
        }
        return [(self.step, self.epoch, key, values[key]) for key in names.STEP_KEYS]


ProgressCallback = Callable[[Progress], None]


@dataclass
class TrainResult:
    """How a run ended; :meth:`to_json` is what ``cnnlab train --json`` prints."""

    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    train_seconds: float = 0.0
    images_per_second: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "metrics": {k: self.metrics.get(k) for k in names.FINAL_KEYS},
            "confusion_matrix": self.confusion_matrix,
            "train_seconds": round(self.train_seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }


def warm_up(config: TrainConfig | None = None) -> None:
    """Make the next :func:`train` in this process start at once: decode MNIST into the data
    cache (both splits), and run one tiny training step and one evaluation batch so the
    kernels' first-call setup is done. What a worker process does when it starts."""
    config = config or TrainConfig()
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    images = load_mnist("train", data_dir=config.data_dir).images
    load_mnist("test", data_dir=config.data_dir)
    import_metrics()  # the summary's scikit-learn, here rather than during a run (see there)
    model = build(config, device)
    x = prepare(images[: config.batch_size].to(device), config.input_size, device)
    with autocast(device):
        loss = model(x).float().logsumexp(1).mean()
    loss.backward()
    model.eval()
    with torch.inference_mode(), autocast(device):
        model(x)


def train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    *,
    on_progress: ProgressCallback | None = None,
    on_abandon: Callable[[], None] | None = None,
) -> TrainResult:
    """Train the run ``run_id`` (created as ``queued``) to its end; never leaves it running.

    Returns how it ended: ``finished`` (all metrics), ``stopped`` (stop requested; metrics so
    far kept), ``failed`` (error text in the store), or — when the run was not queued any more
    (cancelled) — its current status untouched. A stop that the loop cannot honour within about
    a second (one step takes longer) is recorded by the watcher, which then calls
    ``on_abandon`` (the worker and the CLI end their process there; see :mod:`.watcher`).
    """
    try:
        config.validate()
        device = resolve_device(config.device)
    except UserError as err:
        store.finish_run(run_id, FAILED, str(err))
        return TrainResult(run_id, FAILED, error=str(err))
    if not store.mark_running(run_id, os.getpid(), str(device)):
        run = store.get_run(run_id)
        return TrainResult(run_id, run.status if run else "missing", error="not queued")
    with Watcher(store, run_id, on_abandon=on_abandon) as watcher:
        try:
            return _train(config, store, run_id, device, watcher, on_progress)
        except Stopped:
            with watcher.ending() as ours:
                if ours:
                    store.finish_run(run_id, STOPPED, STOPPED_TEXT)
            return TrainResult(run_id, STOPPED, error=STOPPED_TEXT)
        except KeyboardInterrupt:
            with watcher.ending() as ours:
                if ours:
                    text = "interrupted: Ctrl-C, or its worker was shut down"
                    store.finish_run(run_id, INTERRUPTED, text)
            raise
        except Exception as err:  # anything at all: the run must not stay "running"
            text = error_text(err)
            if not isinstance(err, UserError):  # a bug: keep its traceback for the log
                traceback.print_exc(file=sys.stderr)
            with watcher.ending() as ours:
                if not ours:  # stopped by the watcher meanwhile: that is how it ended
                    return TrainResult(run_id, STOPPED, error=STOPPED_TEXT)
                store.finish_run(run_id, FAILED, text)
            return TrainResult(run_id, FAILED, error=text)


def _train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    device: torch.device,
    watcher: Watcher,
    on_progress: ProgressCallback | None,
) -> TrainResult:
    t_start = time.perf_counter()
    stage = _Stage(store, run_id)
    report = on_progress or (lambda _: None)

    # Data: uint8 tensors resident on the training device.
    stage.enter(names.LOADING)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator = seed_everything(config.seed)
    train_split = load_mnist("train", limit=config.train_limit, data_dir=config.data_dir)
    test_split = load_mnist("test", data_dir=config.data_dir)
    x_train, y_train = train_split.images.to(device), train_split.labels.to(device)
    x_test, y_test = test_split.images.to(device), test_split.labels.to(device)
    n_train, size, bs = len(train_split), config.input_size, config.batch_size

    # Model, optimizer, schedule.
    stage.enter(names.BUILDING)
    model = build(config, device)
    optimizer = make_optimizer(config, model)
    steps_per_epoch = max(1, n_train // bs)  # the last batch takes the remainder (never size 1)
    total_steps = steps_per_epoch * config.epochs
    schedule = make_schedule(config, optimizer, total_steps)
    params = sum(p.numel() for p in model.parameters())
    initial = save_initial(model, config, store.run_dir(run_id))  # "before training" (small only)
    rec = _Recorder(
        device,
        total_steps=total_steps,
        test_images=len(y_test),
        finish_s=SUMMARY_GUESS_S
        + (0.0 if "sklearn.metrics" in sys.modules else IMPORT_GUESS_S)
        + 4 * params / WRITE_BYTES_PER_S,
    )

    step, point = 0, None
    evaluating = f"{names.EVALUATING} on {len(y_test):,} test digits"
    for epoch in range(config.epochs):
        stage.enter(names.TRAINING, eta=rec.eta(step, config.epochs - epoch) if step else None)
        model.train()
        rec.resume()
        order = torch.randperm(n_train, generator=generator).to(device)
        for i in range(steps_per_epoch):
            # One step.
            if watcher.stop.is_set():
                raise Stopped
            end = (i + 1) * bs if i < steps_per_epoch - 1 else n_train
            idx = order[i * bs : end]
            x, y = prepare(x_train[idx], size, device), y_train[idx]
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            rec.add(loss, logits, y)

            # Logging: the first step, each epoch's last, and every few steps in between.
            if rec.due(step, last_of_epoch=i == steps_per_epoch - 1):
                point = rec.take(
                    step=step,
                    epoch=epoch + (i + 1) / steps_per_epoch,
                    lr=optimizer.param_groups[0]["lr"],
                    evals_left=config.epochs - epoch,
                )
                store.add_metrics(run_id, point.rows())
                report(point)

        # Evaluation: the whole test set after every epoch (not training time).
        assert point is not None  # every epoch's last step is logged
        stage.enter(names.EVALUATING, evaluating, eta=rec.eta(step, config.epochs - epoch))
        with rec.evaluating():
            test_loss, probs = evaluate(
                model, x_test, y_test, size, device, eval_batch_size(bs, size), watcher.stop
            )
        test_accuracy = float((probs.argmax(1) == y_test.cpu()).float().mean())
        store.add_metrics(
            run_id,
            [
                (step, point.epoch, names.TEST_LOSS, test_loss),
                (step, point.epoch, names.TEST_ACCURACY, test_accuracy),
            ],
        )
        report(replace(point, test_accuracy=test_accuracy))

    # The end: the report's numbers, results as artifacts, a checkpoint, the run finished.
    assert point is not None
    stage.enter(names.SAVING, "saving the results and the checkpoint", eta=rec.finish_s)
    final = summarise(probs, test_split.labels, test_split.images)
    scalars = {k: v for k, v in final.items() if _scalar(v)}
    scalars[names.TRAIN_SECONDS] = rec.train_seconds
    scalars[names.MEAN_IMAGES_PER_SECOND] = rec.images_done / max(rec.train_seconds, 1e-9)
    scalars[names.TOTAL_SECONDS] = time.perf_counter() - t_start
    checkpoint = save_checkpoint(model, config, store.run_dir(run_id) / "checkpoint.pt")
    with watcher.ending() as ours:
        if not ours:
            raise Stopped
        store.add_metrics(run_id, [(step, point.epoch, k, v) for k, v in scalars.items()])
        store.put_artifact(run_id, names.CHECKPOINT, path=checkpoint)
        if initial is not None:
            store.put_artifact(run_id, INITIAL, path=initial)
        store.put_artifact(run_id, names.CONFUSION_MATRIX, final[names.CONFUSION_MATRIX])
        store.put_artifact(run_id, names.PER_CLASS, final[names.PER_CLASS])
        store.put_artifact(run_id, names.MISTAKES, final[names.MISTAKES])
        summary = {
            "data_source": train_split.source,
            "train_images": n_train,
            "test_images": len(test_split),
            "steps": total_steps,
            "device": str(device),
            "evaluation_seconds": rec.eval_seconds,
            **scalars,
        }
        store.put_artifact(run_id, names.SUMMARY, summary)
        store.finish_run(run_id, FINISHED)
    return TrainResult(
        run_id,
        FINISHED,
        metrics=scalars,
        confusion_matrix=final[names.CONFUSION_MATRIX],
        train_seconds=rec.train_seconds,
        images_per_second=scalars[names.MEAN_IMAGES_PER_SECOND],
    )


class _Recorder:
    """The run's clocks (training time, evaluation time, images done) and its metric buffer.

    Loss and accuracy of the batches since the last record stay on the device (no sync per
    step); :meth:`take` reads them once per record and turns them into a :class:`Progress`.
    """

    def __init__(
        self, device: torch.device, *, total_steps: int, test_images: int, finish_s: float
    ) -> None:
        self.total_steps, self.test_images, self.finish_s = total_steps, test_images, finish_s
        self.log_every = max(1, total_steps // LOG_POINTS)
        self.train_seconds = 0.0  # training only: evaluation and logging pauses excluded
        self.eval_seconds = 0.0
        self.eval_pass_seconds: float | None = None  # one test evaluation, once measured
        self.images_done = 0
        self.images_per_second = 0.0
        self._loss = torch.zeros((), device=device)
        self._correct = torch.zeros((), device=device, dtype=torch.long)
        self._seen = 0
        self._clock = self._last = time.perf_counter()

    def resume(self) -> None:
        """Training (re)starts now: the clock of the next record starts here."""
        self._clock = self._last = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self._loss += loss.detach().float() * y.shape[0]
        self._correct += (logits.detach().argmax(1) == y).sum()
        self._seen += y.shape[0]

    def due(self, step: int, *, last_of_epoch: bool) -> bool:
        if step == 1 or last_of_epoch:
            return True
        return step % self.log_every == 0 and time.perf_counter() - self._last >= LOG_INTERVAL_S

    def take(self, *, step: int, epoch: float, lr: float, evals_left: int) -> Progress:
        """The batches since the last record as one point (syncs the device)."""
        seen = self._seen
        loss, accuracy = float(self._loss) / max(seen, 1), float(self._correct) / max(seen, 1)
        now = time.perf_counter()
        self.train_seconds += now - self._clock
        self.images_per_second = seen / max(now - self._last, 1e-9)
        self.images_done += seen
        self._clock = self._last = now
        self._loss.zero_()
        self._correct.zero_()
        self._seen = 0
        return Progress(
            step=step,
            total_steps=self.total_steps,
            epoch=epoch,
            loss=loss,
            accuracy=accuracy,
            lr=lr,
            images_per_second=self.images_per_second,
            eta_seconds=self.eta(step, evals_left),
        )

    def eta(self, step: int, evals_left: int) -> float:
        """Seconds to the end: the steps left at the speed so far, the test evaluations left
        (measured after the first; before it, forward-only at three times the training speed)
        and the final summary and checkpoint."""
        per_step = self.train_seconds / step if step else 0.0
        rate = self.images_per_second or (self.images_done / max(self.train_seconds, 1e-9))
        guess = self.test_images / max(3 * rate, 1.0) if rate else 0.0
        per_eval = self.eval_pass_seconds if self.eval_pass_seconds is not None else guess
        return (self.total_steps - step) * per_step + evals_left * per_eval + self.finish_s

    def evaluating(self) -> _EvalClock:
        return _EvalClock(self)


class _EvalClock:
    """``with recorder.evaluating():`` times one test evaluation."""

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = time.perf_counter() - self.start
        self.recorder.eval_seconds += spent
        self.recorder.eval_pass_seconds = spent


class _Stage:
    """The run's ``stage`` artifact: what it is doing now, since when, and the ETA then."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def enter(self, stage: str, text: str | None = None, *, eta: float | None = None) -> None:
        data = {"stage": stage, "text": text or stage, "since": time.time(), "eta_seconds": eta}
        self.store.put_artifact(self.run_id, names.STAGE, data)


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
