"""The model interface and its backends."""

from llmos.llm.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from llmos.llm.model import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    OutputSchema,
    TextDelta,
    ToolChoice,
    ToolSpec,
    Usage,
)
from llmos.llm.registry import get_model, known_models

__all__ = [
    "AssistantMessage",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "OutputSchema",
    "SystemMessage",
    "TextDelta",
    "ToolCall",
    "ToolChoice",
    "ToolMessage",
    "ToolSpec",
    "Usage",
    "UserMessage",
    "get_model",
    "known_models",
]
