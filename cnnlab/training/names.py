"""The names that the loop, the store, the queue, the views and the CLI share: one place each.

Run statuses, the metric keys a run records, and the kinds of artifact it leaves. A new metric or
artifact is one entry here, not a string in four files.
"""

from __future__ import annotations

# --- run statuses: queued → running → finished | failed | stopped | interrupted -----------------
QUEUED, RUNNING = "queued", "running"
FINISHED, FAILED, STOPPED, INTERRUPTED = "finished", "failed", "stopped", "interrupted"
STATUSES = (QUEUED, RUNNING, FINISHED, FAILED, STOPPED, INTERRUPTED)

TRASH_KEEP_S = 7 * 86_400.0
"""How long a run stays in the trash (restorable) before opening the store deletes it for good."""
ACTIVE = (QUEUED, RUNNING)
DONE = (FINISHED, FAILED, STOPPED, INTERRUPTED)

# --- metric keys ---------------------------------------------------------------------------------
LOSS, TRAIN_ACCURACY, LR = "loss", "train_accuracy", "lr"
IMAGES_PER_SECOND, ETA_SECONDS, PROGRESS = "images_per_second", "eta_seconds", "progress"
STEP_KEYS = (LOSS, TRAIN_ACCURACY, LR, IMAGES_PER_SECOND, ETA_SECONDS, PROGRESS)
"""Recorded every few training steps (``train_accuracy``: running, on the batches seen)."""

TEST_LOSS, TEST_ACCURACY = "test_loss", "test_accuracy"
EPOCH_KEYS = (TEST_LOSS, TEST_ACCURACY)
"""Recorded once per epoch."""

ACCURACY, PRECISION, RECALL, F1 = "accuracy", "precision", "recall", "f1"
FINAL_KEYS = (ACCURACY, PRECISION, RECALL, F1)
"""The report's four numbers (test set, macro averages), recorded at the last step of a finished
run together with the :data:`TIMING_KEYS`."""

TRAIN_SECONDS, MEAN_IMAGES_PER_SECOND, TOTAL_SECONDS = (
    "train_seconds",
    "mean_images_per_second",
    "total_seconds",
)
TIMING_KEYS = (TRAIN_SECONDS, MEAN_IMAGES_PER_SECOND, TOTAL_SECONDS)

# --- artifact kinds ------------------------------------------------------------------------------
CHECKPOINT = "checkpoint"
CONFUSION_MATRIX = "confusion_matrix"
PER_CLASS = "per_class"
MISTAKES = "mistakes"
SUMMARY = "summary"
STAGE = "stage"
"""What a running run is doing now: ``{"stage", "text", "since", "eta_seconds"}`` (replaced at
each change of stage, so a page can say "loading data" or "evaluating" between metric rows)."""
ARTIFACT_KINDS = (CHECKPOINT, CONFUSION_MATRIX, PER_CLASS, MISTAKES, SUMMARY, STAGE)

# --- stages of a run (the ``stage`` artifact's ``stage``) ---------------------------------------
LOADING, BUILDING, TRAINING, EVALUATING, SAVING = (
    "loading data",
    "building the model",
    "training",
    "evaluating",
    "saving",
)
STAGES = (LOADING, BUILDING, TRAINING, EVALUATING, SAVING)
