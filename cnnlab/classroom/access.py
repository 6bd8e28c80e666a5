"""Who may change a run: its owner, the teacher, and for a run from the CLI the machine's owner.

Every stop, rename or delete from a page goes through :func:`require_change` in the action
itself (not only a disabled button), so a forged click or an old link changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.classroom.identity import Owner
from cnnlab.errors import UserError
from cnnlab.training.store import Run


@dataclass(frozen=True)
class Viewer:
    """The person looking at a page: their identity (None: no browser identity, e.g. a test or
    the CLI), whether they unlocked the teacher role, and whether the class has a teacher."""

    owner: Owner | None = None
    teacher: bool = False
    class_has_teacher: bool = False

    @property
    def owner_id(self) -> str | None:
        return self.owner.id if self.owner else None


MACHINE = Viewer()
"""The machine's owner (the CLI, or a page with no class set up): may change every run."""


def may_change(run: Run, viewer: Viewer) -> bool:
    """Whether ``viewer`` may stop, rename or delete ``run``."""
    if viewer.teacher or viewer.owner is None:
        return True
    if run.owner_id is None:  # launched from the CLI: the machine's owner's run
        return not viewer.class_has_teacher
    return run.owner_id == viewer.owner.id


def why_not(run: Run, viewer: Viewer) -> str | None:
    """Why ``viewer`` may not change ``run`` (None: they may)."""
    if may_change(run, viewer):
        return None
    who = run.owner_name or ("the teacher" if run.owner_id is None else "another student")
    return f"read-only: this run belongs to {who}; only they or the teacher can change it"


def require_change(run: Run, viewer: Viewer) -> None:
    """Raise :class:`UserError` when ``viewer`` may not change ``run``."""
    reason = why_not(run, viewer)
    if reason is not None:
        raise UserError(reason)
