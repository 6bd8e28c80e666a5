"""The training engine: one readable loop from MNIST tensors to a finished, recorded run.

``train(config, store, run_id)`` reads top to bottom like nanoGPT's ``train.py``:

1. claim the run in the store, start a watcher thread (stop flag + heartbeat, every 0.25 s);
2. put MNIST on the training device as uint8 tensors (60,000 × 28 × 28 = 47 MB);
3. build the model (zoo, MNIST-adapted), optimizer and LR schedule, seeded;
4. loop: slice a batch, convert/resize/normalise it on the device, forward, backward, step;
   every few steps one transaction of metrics (loss, running accuracy, lr, images/s, ETA,
   progress); every epoch the test loss and accuracy;
5. at the end: accuracy, macro precision/recall/F1, per-class metrics and the confusion matrix
   (scikit-learn), the most confidently wrong test digits, and a checkpoint.

fp32 on CPU; bf16 autocast + channels_last on CUDA. Nothing here knows about Streamlit or SQL:
progress leaves through :class:`~cnnlab.training.store.RunStore` methods and ``on_progress``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.devices import autocast, cpu_threads, resolve_device
from cnnlab.errors import UserError, error_text
from cnnlab.training.checkpoints import save_checkpoint
from cnnlab.training.config import TrainConfig
from cnnlab.training.evaluate import _eval_batch, evaluate, summarise
from cnnlab.training.recipe import (
    build,
    make_optimizer,
    make_schedule,
    prepare,
    seed_everything,
)
from cnnlab.training.store import FAILED, FINISHED, INTERRUPTED, STOPPED, RunStore
from cnnlab.training.watcher import Stopped, Watcher

LOG_POINTS = 200  # at most about this many metric records per run …


LOG_INTERVAL_S = 0.2  # … and at most five a second (plus the first step and each epoch's end)


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


ProgressCallback = Callable[["Progress"], None]


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
            "metrics": {k: self.metrics.get(k) for k in ("accuracy", "precision", "recall", "f1")},
            "confusion_matrix": self.confusion_matrix,
            "train_seconds": round(self.train_seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }


def train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    *,
    on_progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train the run ``run_id`` (created as ``queued``) to its end; never leaves it running.

    Returns how it ended: ``finished`` (all metrics), ``stopped`` (stop requested; metrics so
    far kept), ``failed`` (error text in the store), or — when the run was not queued any more
    (cancelled) — its current status untouched.
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
    with Watcher(store, run_id) as watcher:
        try:
            return _train(config, store, run_id, device, watcher.stop, on_progress)
        except Stopped:
            store.finish_run(run_id, STOPPED, "stopped on request")
            return TrainResult(run_id, STOPPED, error="stopped on request")
        except KeyboardInterrupt:
            store.finish_run(
                run_id, INTERRUPTED, "interrupted: Ctrl-C, or its worker was shut down"
            )
            raise
        except Exception as err:  # anything at all: the run must not stay "running"
            text = error_text(err)
            if not isinstance(err, UserError):  # a bug: keep its traceback for the log
                traceback.print_exc(file=sys.stderr)
            store.finish_run(run_id, FAILED, text)
            return TrainResult(run_id, FAILED, error=text)


def _train(
    config: TrainConfig,
    store: RunStore,
    run_id: str,
    device: torch.device,
    stop: threading.Event,
    on_progress: ProgressCallback | None,
) -> TrainResult:
    from cnnlab.training.data import load_mnist

    t_start = time.perf_counter()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator = seed_everything(config.seed)

    # Data: uint8 tensors resident on the training device.
    train_split = load_mnist("train", limit=config.train_limit, data_dir=config.data_dir)
    test_split = load_mnist("test", data_dir=config.data_dir)
    x_train, y_train = train_split.images.to(device), train_split.labels.to(device)
    x_test, y_test = test_split.images.to(device), test_split.labels.to(device)
    n_train, size, bs = len(train_split), config.input_size, config.batch_size

    # Model, optimizer, schedule.
    model = build(config, device)
    optimizer = make_optimizer(config, model)
    steps_per_epoch = max(1, n_train // bs)  # the last batch takes the remainder (never size 1)
    total_steps = steps_per_epoch * config.epochs
    schedule = make_schedule(config, optimizer, total_steps)
    log_every = max(1, total_steps // LOG_POINTS)
    eval_batch = _eval_batch(bs, size)

    step, train_time, images_done = 0, 0.0, 0
    eval_time_per_pass: float | None = None
    window = _Window(device)
    final: dict[str, Any] = {}
    for epoch in range(config.epochs):
        model.train()
        t_step = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(device)
        for i in range(steps_per_epoch):
            if stop.is_set():
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
            window.add(loss, logits, y)

            last_of_epoch = i == steps_per_epoch - 1
            now = time.perf_counter()
            if not (
                last_of_epoch
                or step == 1
                or (step % log_every == 0 and now - window.last >= LOG_INTERVAL_S)
            ):
                continue
            # Every few steps: one transaction of step metrics (plus test metrics at epoch end).
            seen, mean_loss, accuracy = window.take()  # syncs the device
            now = time.perf_counter()
            train_time += now - t_step
            t_step = now
            images_done += seen
            ips = window.rate(seen, now)
            remaining_evals = config.epochs - epoch - (0 if last_of_epoch else 1)
            eval_guess = eval_time_per_pass or len(y_test) / max(ips * 3, 1.0)
            eta = (total_steps - step) * train_time / step + remaining_evals * eval_guess
            epoch_pos = epoch + (i + 1) / steps_per_epoch
            lr = optimizer.param_groups[0]["lr"]
            rows = [
                (step, epoch_pos, "loss", mean_loss),
                (step, epoch_pos, "train_accuracy", accuracy),
                (step, epoch_pos, "lr", lr),
                (step, epoch_pos, "images_per_second", ips),
                (step, epoch_pos, "eta_seconds", eta),
                (step, epoch_pos, "progress", step / total_steps),
            ]
            test_accuracy = None
            if last_of_epoch:
                t_eval = time.perf_counter()
                test_loss, probs = evaluate(model, x_test, y_test, size, device, eval_batch, stop)
                test_accuracy = float((probs.argmax(1) == y_test.cpu()).float().mean())
                eval_time_per_pass = time.perf_counter() - t_eval
                rows += [
                    (step, epoch_pos, "test_loss", test_loss),
                    (step, epoch_pos, "test_accuracy", test_accuracy),
                ]
                if epoch == config.epochs - 1:
                    final = summarise(probs, test_split.labels, test_split.images)
                    final["train_seconds"] = train_time
                    final["mean_images_per_second"] = images_done / max(train_time, 1e-9)
                    final["total_seconds"] = time.perf_counter() - t_start
                    rows += [(step, epoch_pos, k, v) for k, v in final.items() if _scalar(v)]
            store.add_metrics(run_id, rows)
            if on_progress is not None:
                on_progress(
                    Progress(
                        step,
                        total_steps,
                        epoch_pos,
                        mean_loss,
                        accuracy,
                        lr,
                        ips,
                        eta,
                        test_accuracy,
                    )
                )
            if last_of_epoch:  # the test evaluation is not training time
                t_step = time.perf_counter()
                window.restart_clock()

    # The end: results as artifacts, a checkpoint, and the run marked finished.
    folder = store.run_dir(run_id)
    checkpoint = save_checkpoint(model, config, folder / "checkpoint.pt")
    store.put_artifact(run_id, "checkpoint", path=checkpoint)
    store.put_artifact(run_id, "confusion_matrix", final["confusion_matrix"])
    store.put_artifact(run_id, "per_class", final["per_class"])
    store.put_artifact(run_id, "mistakes", final["mistakes"])
    store.put_artifact(
        run_id,
        "summary",
        {
            "data_source": train_split.source,
            "train_images": n_train,
            "test_images": len(test_split),
            "steps": total_steps,
            "device": str(device),
            **{k: v for k, v in final.items() if _scalar(v)},
        },
    )
    store.finish_run(run_id, FINISHED)
    return TrainResult(
        run_id,
        FINISHED,
        metrics={k: v for k, v in final.items() if _scalar(v)},
        confusion_matrix=final["confusion_matrix"],
        train_seconds=final["train_seconds"],
        images_per_second=final["mean_images_per_second"],
    )


class _Window:
    """Loss and accuracy of the batches since the last record, kept on the device (no sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0
        self.last = time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.loss += loss.detach().float() * n
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += n

    def take(self) -> tuple[int, float, float]:
        seen = max(self.seen, 1)
        result = (self.seen, float(self.loss) / seen, float(self.correct) / seen)
        self.loss.zero_()
        self.correct.zero_()
        self.seen = 0
        return result

    def rate(self, seen: int, now: float) -> float:
        """Images per second since the previous call (evaluation time excluded by the caller)."""
        elapsed = max(now - self.last, 1e-9)
        self.last = now
        return seen / elapsed

    def restart_clock(self) -> None:
        self.last = time.perf_counter()


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
