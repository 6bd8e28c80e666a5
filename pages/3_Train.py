"""Train page."""

from cnnlab.ui import page_header

page_header("Train", "🏋️")
