"""Runs page."""

from cnnlab.ui import page_header

page_header("Runs", "📊")
