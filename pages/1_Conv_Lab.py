"""Conv Lab page."""

from cnnlab.ui import page_header

page_header("Conv Lab", "🔬")
