"""What llmos knows about how each model family calls tools.

A vLLM server needs a tool-call parser that matches the family's chat template,
and agents need to know whether the model reliably emits a real tool call when
`tool_choice="auto"`, or whether the call must be forced (`"required"` or a named
tool), which vLLM enforces through structured outputs.

    >>> profile_for("Qwen/Qwen2.5-Coder-0.5B-Instruct").auto_tool_calls_native
    False
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class ModelProfile(BaseModel):
    """How one family of models behaves with tools, as served by vLLM."""

    model_config = ConfigDict(frozen=True)

    family: str
    patterns: tuple[str, ...] = ()
    """Regular expressions searched in the lower-cased model name; the first profile that matches wins."""
    tool_call_parser: str
    """vLLM's `--tool-call-parser` for this family's chat template."""
    auto_tool_calls_native: bool
    """True when `tool_choice="auto"` yields real tool calls; False means: force the choice."""
    parallel_tool_calls: bool
    """True when the model can be trusted with several tool calls in one turn."""
    notes: str = ""


# Order matters: the more specific families come first.
PROFILES: list[ModelProfile] = [
    ModelProfile(
        family="qwen2.5-coder",
        patterns=(r"qwen2\.?5[-_ ]?coder",),
        tool_call_parser="hermes",
        # Checked here with 0.5B and 1.5B: with tools in the template they write the call as
        # a fenced JSON block, not <tool_call> tags, so vLLM returns it as text in `content`.
        auto_tool_calls_native=False,
        parallel_tool_calls=False,
        notes="Force tool_choice ('required' or a named tool) and validate: small models can still break the schema.",
    ),
    ModelProfile(
        family="qwen2.5",
        patterns=(r"qwen2\.?5",),
        tool_call_parser="hermes",
        # The Instruct (non-Coder) models are trained on Hermes-style <tool_call> tags.
        auto_tool_calls_native=True,
        parallel_tool_calls=True,
    ),
]

DEFAULT_PROFILE = ModelProfile(
    family="generic",
    tool_call_parser="hermes",
    # Unknown model: assume the worst, so that agents force tool calls and nothing is lost.
    auto_tool_calls_native=False,
    parallel_tool_calls=False,
    notes="No profile matched; tool calls are forced and parsed with the Hermes parser.",
)


def profile_for(model_name: str) -> ModelProfile:
    """The profile of a model, matched on its name (catalog name, hub id or folder path)."""
    name = model_name.lower()
    for profile in PROFILES:
        if any(re.search(pattern, name) for pattern in profile.patterns):
            return profile
    return DEFAULT_PROFILE
