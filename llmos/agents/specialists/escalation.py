"""Escalation rules as data: when a human must take a case over, and what the support agent does next.

    rules = [
        EscalationRule(name="damaged safety item", tool="lookup_order",
                       when=[Condition(field="status", equals="damaged"),
                             Condition(field="items.name", contains_any=["stove", "helmet"])],
                       next_step="Damaged safety item ({matched}): escalate_to_human is required by policy."),
        EscalationRule(name="customer asks for a person", customer_says_any=["human", "a person"]),
    ]
    policy = EscalationPolicy(rules=rules)
    tools = [policy.guard(t) for t in company_tools]   # results now say whether a human is needed

A rule about tool results is checked by code on every result of its tool, so that a small
model need not derive the policy from documents: the result gains `escalation_required` and
`next_step`, which the model reads, and when escalation is required the agent's next step is
a forced call of the handoff tool (escalate_to_human): the model writes the summary, the
rule decides that a human takes over. A rule about what the customer says is checked on the
customer's message; when it matches, its `next_step` is added to the support agent's
instructions for that turn. The first matching rule wins, so order the rules from the most
to the least specific. A rule with `escalate = false` only says what to do next.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from llmos.tools.base import Tool, ToolResult

_PLAIN = TypeAdapter(Any)

ASKED_FOR_PERSON_STEP = (
    "The customer asked for a person: call escalate_to_human with reason 'customer asked for a person' "
    "and a short summary, then tell them a human will contact them."
)


class Condition(BaseModel):
    """One test on a field of a tool's result. `field` is a dotted path; through a list
    ("items.price") it holds when any element passes. Give exactly one of the tests."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path in the tool's result, e.g. 'status' or 'items.price'.")
    equals: str | float | bool | None = None
    above: float | None = Field(None, description="Holds when the value is a number greater than this.")
    below: float | None = Field(None, description="Holds when the value is a number smaller than this.")
    contains_any: list[str] | None = Field(None, description="Holds when the text contains one of these words (any case).")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [n for n in ("equals", "above", "below", "contains_any") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"condition on '{self.field}' needs exactly one test of equals, above, below, contains_any; got "
                f"{', '.join(given) or 'none'}"
            )
        return self

    def matches(self, value: Any) -> list[Any]:
        """The elements at `field` that pass (an empty list: the condition does not hold)."""
        return [found for found in _at(value, self.field.split(".")) if self._passes(found[1])]

    def _passes(self, value: Any) -> bool:
        if self.equals is not None:
            if isinstance(self.equals, str) and isinstance(value, str):
                return value.strip().lower() == self.equals.strip().lower()
            return value == self.equals
        if self.contains_any is not None:
            return isinstance(value, str) and _contains_any(value, self.contains_any)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return value > self.above if self.above is not None else value < self.below  # type: ignore[operator]


class EscalationRule(BaseModel):
    """When a case needs a human (or a particular next step), as data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What the rule is about, e.g. 'damaged item over $200'; also the escalation reason.")
    tool: str | None = Field(None, description="Only results of this tool; None: results of every guarded tool.")
    when: list[Condition] = Field(default_factory=list, description="Conditions on the tool's result; all must hold.")
    customer_says_any: list[str] = Field(
        default_factory=list, description="Words in the customer's message that trigger the rule, e.g. 'human', 'a person'."
    )
    escalate: bool = Field(True, description="False: the rule only says what to do next.")
    next_step: str = Field(
        "",
        description="What the agent must do, shown to the model; '{matched}' becomes the matching items' names. "
        "Default: call escalate_to_human, for the rule's name.",
    )

    @model_validator(mode="after")
    def _some_condition(self) -> EscalationRule:
        if not self.when and not self.customer_says_any:
            raise ValueError(f"rule '{self.name}' has no condition: give `when` (tool results) or `customer_says_any`")
        if self.when and self.customer_says_any:
            raise ValueError(f"rule '{self.name}' mixes `when` and `customer_says_any`: make them two rules")
        return self

    def step(self, matched: list[str]) -> str:
        if self.next_step:
            return self.next_step.replace("{matched}", ", ".join(matched))
        if not self.when:
            return ASKED_FOR_PERSON_STEP
        return f"{self.name[0].upper()}{self.name[1:]}: escalate_to_human is required by policy."


class Verdict(BaseModel):
    """What the rules say about one tool result."""

    escalation_required: bool
    next_step: str
    rule: str | None = None


class EscalationPolicy(BaseModel):
    """Ordered rules plus what to say when none matches."""

    model_config = ConfigDict(extra="forbid")

    rules: list[EscalationRule] = Field(default_factory=list)
    default_next_step: str = "No action required by policy."
    handoff_tool: str = Field(
        "escalate_to_human", description="The tool the agent must call next when a rule requires escalation."
    )

    def check(self, tool: str, value: Any) -> Verdict | None:
        """The first matching rule's verdict on a result of `tool`; None when no rule concerns that tool."""
        concerned = [r for r in self.rules if r.when and r.tool in (None, tool)]
        if not concerned:
            return None
        plain = _PLAIN.dump_python(value, mode="json")
        for rule in concerned:
            found = [c.matches(plain) for c in rule.when]
            if all(found):
                names = [_name_of(parent, v) for parent, v in found[-1]]
                return Verdict(escalation_required=rule.escalate, next_step=rule.step(names), rule=rule.name)
        return Verdict(escalation_required=False, next_step=self.default_next_step)

    def on_message(self, text: str) -> list[EscalationRule]:
        """The rules the customer's message triggers."""
        return [r for r in self.rules if r.customer_says_any and _contains_any(text, r.customer_says_any)]

    def guard(self, tool: Tool) -> Tool:
        """`tool` whose results carry the rules' verdict (`escalation_required`, `next_step`); as is when no rule concerns it."""
        if not any(r.when and r.tool in (None, tool.name) for r in self.rules):
            return tool
        original = tool._call

        async def call(args: BaseModel, context: Any = None) -> Any:
            value = await (original(args, context) if tool.takes_context else original(args))
            verdict = self.check(tool.name, value)
            return value if verdict is None else _with_verdict(value, verdict)

        return _GuardedTool(
            self.handoff_tool,
            name=tool.name, description=tool.description, args_model=tool.args_model, call=call,
            timeout_s=tool.timeout_s, max_retries=tool.max_retries, parameters=tool.spec.parameters,
            takes_context=tool.takes_context, requires_approval=tool.requires_approval,
        )


class _GuardedTool(Tool):
    """A company tool whose result, when a rule requires escalation, makes the handoff tool the next call."""

    def __init__(self, handoff_tool: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handoff_tool = handoff_tool

    async def run(self, arguments: str, context: Any = None) -> ToolResult:
        result = await super().run(arguments, context)
        value = result.value  # as _with_verdict made it: the tool's own model, or a dict
        required = value.get("escalation_required") if isinstance(value, dict) else getattr(value, "escalation_required", None)
        if not result.is_error and required is True:
            return result.model_copy(update={"next_call": self.handoff_tool})
        return result


def _with_verdict(value: Any, verdict: Verdict) -> Any:
    """The result with the verdict's two fields: set on a model that declares them, else added to a plain dict."""
    fields = {"escalation_required": verdict.escalation_required, "next_step": verdict.next_step}
    if isinstance(value, BaseModel) and all(f in type(value).model_fields for f in fields):
        return value.model_copy(update=fields)
    plain = _PLAIN.dump_python(value, mode="json")
    return {**plain, **fields} if isinstance(plain, dict) else {"result": plain, **fields}


def _at(value: Any, path: list[str], parent: Any = None) -> list[tuple[Any, Any]]:
    """(parent, value) pairs at a dotted path; lists are walked through."""
    if isinstance(value, list):
        return [pair for item in value for pair in _at(item, path, parent)]
    if not path:
        return [(parent, value)]
    if isinstance(value, dict) and path[0] in value:
        return _at(value[path[0]], path[1:], value)
    return []


def _name_of(parent: Any, value: Any) -> str:
    """How a matched element is named in a next step: its record's `name` when it has one."""
    if isinstance(parent, dict) and isinstance(parent.get("name"), str):
        return parent["name"]
    return str(value)


def _contains_any(text: str, words: list[str]) -> bool:
    lowered = text.lower()
    return any(re.search(rf"\b{re.escape(w.lower())}", lowered) for w in words)
