"""Tools the agent offers the model."""

from .builtin import builtin_tools, get_current_time

__all__ = ["builtin_tools", "get_current_time"]
