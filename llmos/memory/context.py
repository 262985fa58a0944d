"""Context that fits: a session's history within a token budget, with a running summary of older turns.

The history sent with a new message is the session's summary (when there is one) and the
turns after it, oldest first. While that fits `max_history_tokens`, each turn's request
repeats the previous request's history byte for byte and adds the last turn: a server's
prefix cache (vLLM) keeps hitting. When it would overflow, the oldest turns are folded into
the summary in one chunk, until the turns kept fill only `keep_share` of the budget: the
history is then rewritten once, and stays stable again for the many turns that fill the rest.

The summary is updated incrementally: the model gets the previous summary and only the turns
being folded, never the whole conversation again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

from pydantic import BaseModel, Field, model_validator

from llmos.errors import ConfigError
from llmos.llm.messages import Message, SystemMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest
from llmos.memory import prompts
from llmos.memory.models import StoredMessage, Summary
from llmos.memory.store import ActiveTurn, SessionStore

TokenCounter = Callable[[str], int]

MESSAGE_OVERHEAD = 4  # a chat template's role markers and separators around each message


def estimate_tokens(text: str) -> int:
    """About four characters per token, rounded up: BPE tokenizers' rate on English text.

    An estimate, not the model's tokenizer: give Memory(count_tokens=...) the model's own
    counter when the budget must be exact.
    """
    return (len(text) + 3) // 4


def message_tokens(message: Message, count: TokenCounter = estimate_tokens) -> int:
    text = message.content or ""
    for call in getattr(message, "tool_calls", ()):
        text += call.name + call.arguments
    return count(text) + MESSAGE_OVERHEAD


class ContextPolicy(BaseModel):
    """How much of a conversation a request carries."""

    max_history_tokens: int = Field(
        3000, ge=200, description="Summary, turns kept and the new message together, in tokens."
    )
    keep_share: float = Field(
        0.5, gt=0, lt=1, description="After a fold, what the turns kept and the new message may fill of the budget."
    )
    summary_tokens: int = Field(300, ge=50, description="The longest summary; a longer one is cut.")

    @model_validator(mode="after")
    def _check(self) -> ContextPolicy:
        if self.summary_tokens >= self.max_history_tokens * self.keep_share:
            raise ConfigError(
                f"ContextPolicy: summary_tokens ({self.summary_tokens}) must be under max_history_tokens x keep_share "
                f"({self.max_history_tokens * self.keep_share:g}), or the history cannot fit. Raise the budget."
            )
        return self


class ContextWindow:
    """Builds a session's history for its running turn, folding older turns into the summary when needed."""

    def __init__(self, policy: ContextPolicy | None = None, count_tokens: TokenCounter = estimate_tokens) -> None:
        self.policy = policy or ContextPolicy()
        self.count = count_tokens

    async def history(self, store: SessionStore, turn: ActiveTurn, model: ChatModel) -> list[Message]:
        """The messages to send before the turn's user message (which it does not include)."""
        summary = await store.summary(turn.session, tenant=turn.tenant)
        done = summary.through_turn if summary else 0
        stored = await store.messages(turn.session, tenant=turn.tenant, include_unanswered=False)
        turns = [
            list(group)
            for _, group in groupby((m for m in stored if done < m.turn < turn.number), key=lambda m: m.turn)
        ]
        new = self._tokens(turn.user_message)
        sizes = [sum(self._tokens(m) for m in t) for t in turns]
        header = self.count(prompts.SUMMARY_HEADER) + MESSAGE_OVERHEAD  # what the summary's message adds to its text
        used = (summary.tokens + header if summary else 0) + sum(sizes) + new
        if used > self.policy.max_history_tokens:
            # Fold the oldest turns until the rest leaves room for the next turns and a full summary.
            room = self.policy.max_history_tokens * self.policy.keep_share - self.policy.summary_tokens - header
            fold = 0
            while fold < len(turns) and sum(sizes[fold:]) + new > room:
                fold += 1
            if fold:
                summary = await self.fold(model, summary, turns[:fold])
                await store.save_summary(turn, summary)
                turns = turns[fold:]
        history: list[Message] = [SystemMessage(content=prompts.SUMMARY_HEADER + summary.text)] if summary else []
        history += [m.message for t in turns for m in t]
        return history

    async def fold(self, model: ChatModel, previous: Summary | None, turns: Sequence[Sequence[StoredMessage]]) -> Summary:
        """The summary of `previous` plus `turns`, written by the model from those two alone."""
        words = self.policy.summary_tokens * 3 // 5  # about 0.75 words per token, with a margin
        ask = prompts.SUMMARY_ASK.format(
            summary=previous.text if previous else prompts.NO_SUMMARY_YET, turns=render_turns(turns)
        )
        request = ChatRequest(
            messages=[SystemMessage(content=prompts.SUMMARY_SYSTEM.format(words=words)), UserMessage(content=ask)],
            max_tokens=self.policy.summary_tokens,
        )
        text = self._cut((await model.chat(request)).text.strip())
        return Summary(text=text, through_turn=turns[-1][0].turn, tokens=self.count(text))

    def _cut(self, text: str) -> str:
        """The text, shortened at a word to the summary's budget when the model wrote more."""
        limit = self.policy.summary_tokens
        while text and self.count(text) > limit:
            text = text[: max(1, len(text) * limit // self.count(text) - 1)].rsplit(" ", 1)[0]
        return text

    def _tokens(self, stored: StoredMessage) -> int:
        return stored.tokens + MESSAGE_OVERHEAD if stored.tokens is not None else message_tokens(stored.message, self.count)


def render_turns(turns: Sequence[Sequence[StoredMessage]]) -> str:
    """Turns as plain lines for the summarizer: what was said, and which tools were called with what result."""
    lines = []
    for turn in turns:
        for stored in turn:
            m = stored.message
            if m.role == "user":
                lines.append(f"User: {m.content}")
            elif m.role == "assistant":
                for call in m.tool_calls:
                    lines.append(f"(tool {call.name} {call.arguments})")
                if m.content:
                    lines.append(f"Assistant: {m.content}")
            elif m.role == "tool":
                lines.append(f"(result of {m.name}: {_short(m.content)})")
    return "\n".join(lines)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def entry_tokens(message: Message, count: TokenCounter) -> int:
    """The count stored with a message (without the per-message overhead)."""
    return message_tokens(message, count) - MESSAGE_OVERHEAD

