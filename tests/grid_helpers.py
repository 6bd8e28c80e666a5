"""Driving Streamlit's grid (``st.data_editor`` / ``st.dataframe``) from Playwright.

The grid draws on a canvas, but keeps an accessible table in the DOM: one
``td#glide-cell-<column>-<row>`` per visible cell with ``aria-selected`` on the selected one
(columns count from 1 when a row-marker column is shown, else from 0). Cells are selected by a
click, moved to with the arrow keys (each step confirmed through ``aria-selected``), and edited
in the overlay editor that Enter opens.
"""

from __future__ import annotations

import time

from playwright.sync_api import Locator, Page, expect

HEADER_PX = 35
ROW_PX = 35


def grid_in(page: Page, container_key: str) -> Locator:
    """The grid inside ``st.container(key=container_key)``."""
    # .first: while a busy server redraws, the stale and the new grid can briefly both be there
    grid = page.locator(f".st-key-{container_key} [data-testid='stDataFrame']").first
    expect(grid).to_be_visible()
    return grid


def cell(grid: Locator, column: int, row: int) -> Locator:
    return grid.locator(f"[id='glide-cell-{column}-{row}']")


def _selected_column(grid: Locator, row: int) -> int | None:
    selected = grid.locator(f"td[aria-selected='true'][id$='-{row}']")
    if selected.count() != 1:
        return None
    return int((selected.get_attribute("id") or "").split("-")[2])


def _wait_selected(page: Page, grid: Locator, row: int, other_than: int | None = None,
                   timeout_ms: int = 3000) -> int | None:  # fmt: skip
    """The selected column of ``row`` once it is not ``other_than`` (None after the timeout)."""
    for _ in range(timeout_ms // 50):
        current = _selected_column(grid, row)
        if current is not None and current != other_than:
            return current
        page.wait_for_timeout(50)
    return None


def select_cell(page: Page, grid: Locator, column: int, row: int, timeout_s: float = 30) -> None:
    """Select one cell: click its row, then arrow across until ``aria-selected`` says so."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.keyboard.press("Escape")
        box = grid.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 60, box["y"] + HEADER_PX + ROW_PX * row + ROW_PX // 2)
        current = _wait_selected(page, grid, row)
        while current is not None and current != column:
            page.keyboard.press("ArrowRight" if current < column else "ArrowLeft")
            current = _wait_selected(page, grid, row, other_than=current)
        if current == column:
            return
    raise AssertionError(f"could not select cell ({column}, {row})")


def edit_cell(page: Page, grid: Locator, column: int, row: int, value: str) -> None:
    """Replace a text or number cell's value (Enter opens the editor, Enter commits)."""
    select_cell(page, grid, column, row)
    page.keyboard.press("Enter")
    editor = page.locator("#portal input, #portal textarea").first
    expect(editor).to_be_visible()
    editor.fill(value)
    page.keyboard.press("Enter")
    expect(page.locator("#portal input, #portal textarea")).to_have_count(0)


def toggle_cell(page: Page, grid: Locator, column: int, row: int) -> None:
    """Flip a checkbox cell."""
    select_cell(page, grid, column, row)
    page.keyboard.press("Space")


def column_of(grid: Locator, header: str) -> int:
    """The cell-id column under the header reading ``header`` (matched via aria-colindex)."""
    th = grid.locator("th[role='columnheader']").filter(has_text=header).first
    expect(th).to_be_attached()
    index = th.get_attribute("aria-colindex")
    td = grid.locator(f"td[role='gridcell'][aria-colindex='{index}']").first
    expect(td).to_be_attached()
    return int((td.get_attribute("id") or "").split("-")[2])
