"""Test-set evaluation and the final summary (sklearn metrics, confusion matrix, mistakes)."""

from __future__ import annotations

import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.devices import autocast
from cnnlab.training import names
from cnnlab.training.recipe import NUM_CLASSES, prepare
from cnnlab.training.watcher import Stopped

MISTAKES = 24  # how many confidently wrong test digits to keep


def import_metrics() -> Any:
    """``sklearn.metrics``, imported on first use (~1 s of CPU with scipy).

    Only the final summary needs it, so a run imports it after its last test evaluation, not
    in a background thread while it trains: on a machine whose cores all train, that thread
    slowed the one-click run by 1–2 s (``benchmarks/time_to_accuracy.py``, 2-core VM,
    2026-12-04: 11.6 s → 9.4 s to the first test accuracy, the end no later). A worker imports
    it in its warm-up (:func:`cnnlab.training.loop.warm_up`), before any run.
    """
    from sklearn import metrics  # lazy, see the docstring

    return metrics


def eval_batch_size(batch_size: int, size: int) -> int:
    """Evaluation batches: large at 28×28, about the training batch at 224×224."""
    return max(batch_size, min(1000, int(1000 * (28 / size) ** 2)))


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int,
    device: torch.device,
    batch: int,
    stop: threading.Event | None = None,
) -> tuple[float, torch.Tensor]:
    """Mean test loss and the class probabilities [N, 10] (float32, on the CPU)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    probs = []
    for start in range(0, images.shape[0], batch):
        if stop is not None and stop.is_set():
            raise Stopped
        x, y = prepare(images[start : start + batch], size, device), labels[start : start + batch]
        with autocast(device):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        probs.append(logits.softmax(1).cpu())
    model.train(was_training)
    return float(loss_sum) / max(images.shape[0], 1), torch.cat(probs)


def summarise(probs: torch.Tensor, labels: torch.Tensor, images: torch.Tensor) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class metrics, confusion matrix (scikit-learn),
    and the most confidently wrong test digits (with their 28×28 pixels)."""
    y_true = labels.cpu().numpy()
    y_pred = probs.argmax(1).numpy()
    classes = list(range(NUM_CLASSES))
    skm = import_metrics()
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average="macro", zero_division=0
    )
    per_p, per_r, per_f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=classes, average=None, zero_division=0
    )
    matrix = skm.confusion_matrix(y_true, y_pred, labels=classes)

    confidence = probs.max(1).values
    wrong = torch.from_numpy(y_pred != y_true)
    order = torch.argsort(
        torch.where(wrong, confidence, torch.full_like(confidence, -1.0)), descending=True
    )
    worst = [int(i) for i in order[: min(MISTAKES, int(wrong.sum()))]]
    mistakes = [
        {
            "index": i,
            "true": int(y_true[i]),
            "pred": int(y_pred[i]),
            "confidence": round(float(confidence[i]), 6),
            "probs": [round(float(p), 6) for p in probs[i]],
            "pixels": images[i].cpu().tolist(),
        }
        for i in worst
    ]

    return {
        names.ACCURACY: float(skm.accuracy_score(y_true, y_pred)),
        names.PRECISION: float(precision),
        names.RECALL: float(recall),
        names.F1: float(f1),
        names.PER_CLASS: [
            {
                "digit": d,
                "precision": float(per_p[d]),
                "recall": float(per_r[d]),
                "f1": float(per_f[d]),
                "support": int(support[d]),
            }
            for d in classes
        ],
        names.CONFUSION_MATRIX: matrix.astype(int).tolist(),
        names.MISTAKES: mistakes,
    }
