"""llmos: multi-agent, tool-using assistants."""

__version__ = "0.1.0"
