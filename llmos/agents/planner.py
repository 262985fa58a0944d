"""The planner: the model calls a team makes itself, around its specialists' work.

Each method is one kind of call, and says how many model calls it makes:

- `route`: 1 small constrained call: a specialist's name, "plan" or "direct".
- `plan` / `replan`: 1 structured call, plus at most `max_repairs` when the plan is invalid.
- `reply`: 1 call (small talk, no specialist).
- `synthesize`: 1 call that writes the answer from the subtasks' results.

Every request starts with the same system prompt (the team's specialists, in the team's
order), so a server's prefix cache serves it across calls and runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError

from llmos.agents import prompts
from llmos.agents.plan import MAX_SUBTASKS, Plan, plan_schema, validate_plan
from llmos.agents.runtime import SubtaskResult
from llmos.errors import OutputValidationError, PlanError
from llmos.llm.messages import AssistantMessage, Message, SystemMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, OutputSchema, TextDelta

ROUTES = ("plan", "direct")
"""Routes besides the specialists' names; a specialist cannot have one of these names."""


class Planner:
    """Routes a goal, writes and repairs plans, re-plans, and writes the team's answer."""

    def __init__(
        self,
        specialists: Mapping[str, str],
        model: ChatModel,
        *,
        instructions: str = "",
        example: str | None = None,
        max_subtasks: int = MAX_SUBTASKS,
        max_repairs: int = 2,
        route_max_tokens: int = 24,
        answer_max_tokens: int | None = None,
    ) -> None:
        """`specialists` maps each name to its description, in the team's order."""
        self.specialists = dict(specialists)
        self.model = model
        self.max_subtasks = max_subtasks
        self.max_repairs = max_repairs
        self.route_max_tokens = route_max_tokens
        self.answer_max_tokens = answer_max_tokens
        names = list(self.specialists)
        lines = "\n".join(
            prompts.SPECIALIST_LINE.format(name=n, description=d or n) for n, d in self.specialists.items()
        )
        self.system = prompts.PLANNER_SYSTEM.format(
            specialists=lines, instructions="\n\n" + instructions.strip() if instructions.strip() else ""
        )
        self.example = example or prompts.PLAN_EXAMPLE
        self.plan_schema = plan_schema(names, max_subtasks=max_subtasks)
        self.route_schema = OutputSchema.of(
            {
                "title": "Route",
                "type": "object",
                "properties": {"route": {"enum": [*names, *ROUTES]}},
                "required": ["route"],
                "additionalProperties": False,
            }
        )

    async def route(self, goal: str, history: Sequence[Message] = ()) -> str:
        """A specialist's name (the goal has one intent), "plan" (several), or "direct" (small talk).

        An answer that does not match the schema (a server that does not constrain decoding)
        falls back to "plan", the road that works for every goal.
        """
        request = ChatRequest(
            messages=self._messages(history, prompts.ROUTE.format(goal=goal)),
            output_schema=self.route_schema,
            max_tokens=self.route_max_tokens,
        )
        try:
            response = await self.model.chat(request)
        except OutputValidationError:
            return "plan"
        return str(response.output["route"])

    async def plan(self, goal: str, history: Sequence[Message] = ()) -> Plan:
        """A valid plan for the goal. Raises PlanError when it is still invalid after `max_repairs` repairs."""
        return await self._plan(self._messages(history, prompts.PLAN.format(goal=goal, example=self.example)), done=())

    async def replan(self, goal: str, results: Sequence[SubtaskResult], history: Sequence[Message] = ()) -> Plan:
        """A plan for the work left after some subtasks failed; it may depend on the finished ones."""
        ask = prompts.PLAN.format(goal=goal, example=self.example) + prompts.REPLAN.format(
            report=describe(results, clip=600)
        )
        # A failed subtask's id may be used again (to redo it); a finished one's may not.
        return await self._plan(self._messages(history, ask), done=[r.id for r in results if r.ok])

    async def warm(self) -> None:
        """Read the start of every plan request (the system prompt and the plan's schema) into the model's cache."""
        await self.model.prefill(ChatRequest(messages=[SystemMessage(content=self.system)], output_schema=self.plan_schema))

    async def reply(
        self, goal: str, history: Sequence[Message] = (), on_text: Callable[[str], None] | None = None
    ) -> str:
        """Answer small talk directly, streaming the text to `on_text`."""
        return await self._write(self._messages(history, prompts.DIRECT.format(goal=goal)), on_text)

    async def synthesize(
        self, goal: str, results: str, history: Sequence[Message] = (), on_text: Callable[[str], None] | None = None
    ) -> str:
        """Write one answer from `results` (see `describe`), keeping their [n] source markers."""
        ask = prompts.SYNTHESIZE.format(goal=goal, results=results)
        return await self._write(self._messages(history, ask), on_text)

    # --- helpers ---------------------------------------------------------------------------

    def _messages(self, history: Sequence[Message], ask: str) -> list[Message]:
        return [SystemMessage(content=self.system), *history, UserMessage(content=ask)]

    async def _plan(self, messages: list[Message], done: Sequence[str]) -> Plan:
        problems: list[str] = []
        for _ in range(self.max_repairs + 1):
            text = None
            try:
                response = await self.model.chat(ChatRequest(messages=messages, output_schema=self.plan_schema))
                text = response.text
                plan = Plan.model_validate(response.output)
                problems = validate_plan(plan, self.specialists, max_subtasks=self.max_subtasks, done=done)
            except (OutputValidationError, ValidationError) as exc:
                problems = [str(exc)]
            if not problems:
                return plan
            # The repair is a continuation of the same conversation: the request's prefix stays cached.
            if text is not None:
                messages = [*messages, AssistantMessage(content=text)]
            messages = [*messages, UserMessage(content=prompts.REPAIR.format(problems="\n".join(problems)))]
        raise PlanError(
            f"The planner did not write a valid plan in {self.max_repairs + 1} tries; last problems: "
            f"{' '.join(problems)} Simplify the goal, or use a stronger model."
        )

    async def _write(self, messages: list[Message], on_text: Callable[[str], None] | None) -> str:
        request = ChatRequest(messages=messages, max_tokens=self.answer_max_tokens)
        response: ChatResponse | None = None
        async for event in self.model.stream(request):
            if isinstance(event, TextDelta):
                if on_text is not None:
                    on_text(event.text)
            else:
                response = event
        assert response is not None
        return response.text.strip()


def describe(
    results: Sequence[SubtaskResult], *, bodies: Mapping[str, str] | None = None, clip: int | None = None
) -> str:
    """The subtasks' outcomes as the planner reads them, in a fixed format.

    `bodies` replaces a result's text (the team passes answers with renumbered citations);
    `clip` shortens long results (a re-plan needs to know what was done, not every word).
    """
    blocks = []
    for r in results:
        head = f"[{r.id}] {r.specialist}: {r.instruction}"
        if r.ok:
            text = (bodies or {}).get(r.id, r.text)
            if clip is not None and len(text) > clip:
                text = text[:clip] + " ..."
            blocks.append(f"{head}\n{text}")
        elif r.status == "skipped":
            blocks.append(f"{head}\nSKIPPED: {r.error}")
        else:
            blocks.append(f"{head}\nFAILED: {r.error}")
    return "\n\n".join(blocks)

