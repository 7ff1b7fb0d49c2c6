"""Terminal output: the only package that prints."""

from llmctl.ui.console import Output

__all__ = ["Output"]
