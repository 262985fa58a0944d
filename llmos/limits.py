"""Size bounds on what a model writes and what it is shown, in one place.

A model's output is untrusted input: a runaway or hostile answer can nest JSON a
thousand levels deep, write megabytes of arguments, or make a tool return megabytes
that would all go back into the next prompt. These bounds keep every such output an
error the model can correct, never a crash or a stall:

- MAX_JSON_DEPTH: JSON from a model nested deeper is refused before it is parsed
  (Python's parser would hit its recursion limit near 1,000 levels).
- MAX_CALL_TEXT_CHARS: tool calls written as text are looked for in this much of an
  answer; the rest is prose.
- MAX_ARGUMENTS_CHARS: tool arguments longer than this are refused with an error result.
- MAX_RESULT_CHARS: a longer tool result is cut, with a note saying so, before the model
  sees it (the tool's Python value is kept whole).

The last two are defaults of `Budget(max_argument_chars=..., max_result_chars=...)`, per agent.
"""

from __future__ import annotations

MAX_JSON_DEPTH = 64
MAX_CALL_TEXT_CHARS = 100_000
MAX_ARGUMENTS_CHARS = 32_000
MAX_RESULT_CHARS = 20_000


def arguments_problem(tool: str, arguments: str, limit: int = MAX_ARGUMENTS_CHARS) -> str | None:
    """What is wrong with a call's arguments before they are even parsed, for the model to read; None if nothing."""
    if len(arguments) > limit:
        return (
            f"The arguments of this call to '{tool}' are {len(arguments):,} characters long; tools take at most "
            f"{limit:,}. Call it again with shorter arguments (pass references, not whole documents)."
        )
    return None


def clip_result(content: str, limit: int = MAX_RESULT_CHARS) -> str:
    """The result as the model sees it: whole, or its first `limit` characters and a note that it was cut."""
    if len(content) <= limit:
        return content
    return (
        content[:limit] + f"\n[The result was cut: it has {len(content):,} characters and only the first "
        f"{limit:,} are shown. Ask the tool for less (a narrower query, fewer rows) if you need the rest.]"
    )
