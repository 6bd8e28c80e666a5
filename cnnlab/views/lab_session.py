"""The Conv Lab page's per-tab state, on the session-state mapping the page passes in.

No Streamlit import: every function takes the mapping (``st.session_state`` on the page, a plain
dict in tests). Keys:

- ``lab_config``: the :class:`~cnnlab.views.labstate.LabConfig` last shown (survives a visit to
  another page, when Streamlit drops the page's widget values);
- ``lab_source`` + ``lab_version``: the editor's source frame and the suffix of its widget key.
  The source stays fixed while the user edits (feeding the edited frame back in loses every
  second edit); anything that must rebuild it (a preset, an upload, a move, a change of form)
  folds the edits in first, then bumps the version;
- ``lab_layers``: the rows as last read from the editor, edits included;
- ``lab_c`` / ``lab_h`` / ``lab_w`` / ``lab_mode`` / ``lab_name``: the widgets' values.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

import pandas as pd

from cnnlab.counting.spec import PRESETS, loads
from cnnlab.errors import UserError
from cnnlab.views import labstate as lab

DEFAULT_PRESET = "VGG block"
MAX_UPLOAD_BYTES = 200_000

State = MutableMapping[str, Any]


class Upload(Protocol):
    """What an uploaded file offers (Streamlit's ``UploadedFile``)."""

    name: str
    size: int

    def getvalue(self) -> bytes: ...


def load_config(ss: State, config: lab.LabConfig) -> None:
    """Make ``config`` the editor's source (a new editor key, so the old widget state goes)."""
    ss["lab_config"] = config
    ss["lab_source"] = lab.editor_frame(config.layers, config.mode)
    ss["lab_layers"] = [dict(layer) for layer in config.layers]
    ss["lab_name"] = config.name
    ss["lab_c"], ss["lab_h"], ss["lab_w"] = config.input
    ss["lab_mode"] = config.mode
    ss["lab_version"] = ss.get("lab_version", 0) + 1


def start(ss: State, link_value: str | None, *, narrow: bool = False) -> None:
    """First visit in this tab: the link's configuration, else the default preset (a bad link
    leaves its reason in ``lab_link_error``). Back from another page: the last configuration.

    ``narrow`` (a phone) starts the editor with its main columns only.
    """
    ss.setdefault("lab_compact", narrow)
    if "lab_config" not in ss:
        config = lab.LabConfig.from_spec(PRESETS[DEFAULT_PRESET])
        if link_value:
            try:
                config = lab.decode_config(link_value)
            except UserError as err:
                ss["lab_link_error"] = str(err)
        load_config(ss, config)
    elif "lab_c" not in ss:
        load_config(ss, ss["lab_config"])


def link_problem(ss: Mapping[str, Any]) -> str:
    """The message for a link that could not be read ("" when there is none)."""
    if not ss.get("lab_link_error"):
        return ""
    return (
        f"This link's Conv Lab configuration could not be read: {ss['lab_link_error']}. "
        f"Showing the {DEFAULT_PRESET} preset instead."
    )


def current_config(
    ss: Mapping[str, Any], layers: list[dict[str, Any]] | None = None
) -> lab.LabConfig:
    """The configuration the widgets hold now (``layers``: as read from the editor)."""
    return lab.LabConfig(
        input=(int(ss["lab_c"]), int(ss["lab_h"]), int(ss["lab_w"])),
        layers=tuple(ss.get("lab_layers", []) if layers is None else layers),
        mode=ss["lab_mode"],
        name=ss.get("lab_name", "stack"),
    )


def refresh(ss: State) -> None:
    """Rebuild the editor from the rows as edited, under the form now chosen.

    The radio's callback (and any other change of the editor's columns): without it, a change
    of form gave the editor a new identity and dropped every edit (issue 17, bug 1).
    """
    load_config(ss, current_config(ss))


def refresh_if_stale(ss: State, edited: pd.DataFrame) -> bool:
    """Rebuild the editor when its *separable* boxes no longer show the effective form (at most
    once per editor version); True when the page should rerun to show the rebuilt editor."""
    stale = lab.editor_is_stale(edited, ss.get("lab_layers", []), ss["lab_mode"])
    if not stale or ss.get("lab_refreshed_version") == ss.get("lab_version"):
        return False
    refresh(ss)
    ss["lab_refreshed_version"] = ss["lab_version"]
    return True


def load_preset(ss: State) -> None:
    load_config(ss, lab.LabConfig.from_spec(PRESETS[ss["lab_preset"]]))
    ss.pop("lab_upload_error", None)
    ss.pop("lab_link_error", None)


def load_upload(ss: State) -> None:
    """The uploaded spec becomes the stack; a bad file leaves its reason in ``lab_upload_error``."""
    file: Upload | None = ss.get("lab_upload")
    ss.pop("lab_upload_error", None)
    if file is None:
        return
    try:
        if file.size > MAX_UPLOAD_BYTES:
            raise UserError(
                f"{file.name} is {file.size:,} bytes; the limit is {MAX_UPLOAD_BYTES:,}"
            )
        spec = loads(file.getvalue(), validate=False)
    except UserError as err:
        ss["lab_upload_error"] = f"{file.name}: {err}"
        return
    load_config(ss, lab.LabConfig.from_spec(spec, mode="per-layer"))
    ss.pop("lab_link_error", None)


def move(ss: State, offset: int) -> None:
    """Move the layer picked in ``lab_move_index`` by ``offset`` rows."""
    layers = ss.get("lab_layers", [])
    index = ss.get("lab_move_index", 0)
    if 0 <= index < len(layers):
        load_config(ss, current_config(ss, lab.move_layer(layers, index, offset)))
        ss["lab_move_index"] = max(0, min(len(layers) - 1, index + offset))
