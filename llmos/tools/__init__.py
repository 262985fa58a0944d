"""Typed tools: define with `@tool`, run with `Tool.run`, adapt LangChain tools with `from_langchain`."""

from llmos.tools.base import Tool, ToolResult, as_tool, tool
from llmos.tools.context import ApprovalRequest, RunContext
from llmos.tools.builtin import BUILTIN_TOOLS, calculator, clock
from llmos.tools.langchain import from_langchain

__all__ = [
    "BUILTIN_TOOLS",
    "ApprovalRequest",
    "RunContext",
    "Tool",
    "ToolResult",
    "as_tool",
    "calculator",
    "clock",
    "from_langchain",
    "tool",
]
