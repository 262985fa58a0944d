"""The run context: who a run is for and what the program lends its tools, set by the caller, never by the model.

    @tool
    def my_orders(ctx: RunContext) -> list[str]:
        \"\"\"The signed-in customer's orders.\"\"\"
        return orders_of(ctx.user)          # the model cannot name another customer

    await agent.run("Where is my order?", context=RunContext(user="C001", tenant="acme"))

A tool asks for the context with a parameter typed `RunContext` (any name). That parameter is
not in the tool's schema: the model neither sees it nor can fill it. The context also carries
`approver`, which answers the approval requests of side-effecting tools (`@tool(requires_approval=True)`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from llmos.llm.messages import ToolCall

DepsT = TypeVar("DepsT")

DEFAULT_APPROVAL_TIMEOUT_S = 300.0


class ApprovalRequest(BaseModel):
    """A side-effecting call waiting for a yes or no from the caller (a person, a policy)."""

    agent: str
    call: ToolCall
    description: str = Field(description="What the tool does, from its definition.")
    user: str | None = None
    tenant: str | None = None
    session: str | None = None


Approver = Callable[[ApprovalRequest], Any]
"""Answers an ApprovalRequest with a bool, or an awaitable of one: True runs the call; False,
anything else, or no answer in time does not."""


class RunContext(BaseModel, Generic[DepsT]):
    """What the caller (a program, the CLI, the server) tells a run; the model sees none of it.

    user, tenant, session: who the run is for. Tools that act for a customer read `user`
        from here and check that what they touch belongs to that user.
    deps: anything the program lends its tools (a database handle, an HTTP client...).
    approver: answers approval requests; without one, every call that needs approval is denied.
    approval_timeout_s: how long a request may wait for its answer; unanswered means denied.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    user: str | None = None
    tenant: str | None = None
    session: str | None = None
    deps: DepsT | None = None
    approver: Approver | None = Field(default=None, exclude=True)
    approval_timeout_s: float = Field(DEFAULT_APPROVAL_TIMEOUT_S, gt=0)

    async def ask_approval(self, request: ApprovalRequest) -> bool:
        """The approver's answer: False without an approver. Bounded by the caller (see Agent)."""
        if self.approver is None:
            return False
        answer: Any = self.approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer is True


def is_context_type(hint: Any) -> bool:
    """True for `RunContext`, `RunContext[Deps]` and subclasses: the hint of a context parameter."""
    origin = getattr(hint, "__pydantic_generic_metadata__", {}).get("origin") or hint
    return isinstance(origin, type) and issubclass(origin, RunContext)
