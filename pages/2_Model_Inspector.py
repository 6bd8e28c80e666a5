"""Model Inspector page."""

from cnnlab.ui import page_header

page_header("Model Inspector", "🧮")
