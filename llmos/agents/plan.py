"""A plan: subtasks for a team's specialists, with the ids each one depends on.

The planner asks the model for a Plan through structured output with `plan_schema`,
whose `specialist` field is an enum of the team's names: with constrained decoding the
model cannot name a specialist the team does not have. What a schema cannot express
(unique ids, known dependencies, no cycles) `validate_plan` checks; its messages go
back to the model when the plan needs a repair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field, field_validator

from llmos.llm.model import OutputSchema

MAX_SUBTASKS = 6
"""Most subtasks in one plan: a goal needing more is several goals, and small models write runaway lists."""


class Subtask(BaseModel):
    """One piece of work for one specialist."""

    id: str = Field(description="Short and unique in the plan, e.g. s1.")
    specialist: str = Field(description="Name of the team's specialist that does it.")
    instruction: str = Field(description="What to do, with every detail it needs from the goal.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of subtasks whose results it needs.")
    returns: str = Field("", description="What it should give back.")

    @field_validator("depends_on")
    @classmethod
    def _drop_blanks(cls, ids: list[str]) -> list[str]:
        # [""] is how a small model on an unconstrained server writes "no dependencies".
        return [i.strip() for i in ids if i.strip()]


class Plan(BaseModel):
    subtasks: list[Subtask]

    @classmethod
    def single(cls, specialist: str, instruction: str) -> Plan:
        """The short road: the whole goal for one specialist."""
        return cls(subtasks=[Subtask(id="s1", specialist=specialist, instruction=instruction)])

    def get(self, subtask_id: str) -> Subtask:
        return next(s for s in self.subtasks if s.id == subtask_id)


def plan_schema(specialist_names: Sequence[str], *, max_subtasks: int = MAX_SUBTASKS) -> OutputSchema:
    """The JSON schema of a Plan for one team: specialists as an enum, bounded lengths.

    Written by hand rather than generated, so that it is flat (no $ref), its property
    order is the order the model writes (constrained decoders follow it), and lengths are
    bounded (a small model constrained to a string can otherwise write until max_tokens).
    """
    subtask = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 24},
            "specialist": {"enum": list(specialist_names)},
            "instruction": {"type": "string", "minLength": 1, "maxLength": 400},
            # minLength 1: a small model otherwise writes [""] for "no dependencies".
            "depends_on": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 24},
                "maxItems": max_subtasks,
            },
            "returns": {"type": "string", "maxLength": 160},
        },
        "required": ["id", "specialist", "instruction", "depends_on", "returns"],
        "additionalProperties": False,
    }
    schema = {
        "title": "Plan",
        "type": "object",
        "properties": {"subtasks": {"type": "array", "items": subtask, "minItems": 1, "maxItems": max_subtasks}},
        "required": ["subtasks"],
        "additionalProperties": False,
    }
    return OutputSchema.of(schema)


def validate_plan(
    plan: Plan,
    specialists: Iterable[str],
    *,
    max_subtasks: int | None = MAX_SUBTASKS,
    done: Iterable[str] = (),
) -> list[str]:
    """Everything that keeps `plan` from running, one sentence each; [] when it can run.

    `done` are ids of subtasks finished earlier (a re-plan may depend on them, not reuse them).
    `max_subtasks=None` checks no length (the runtime runs any valid plan; the bound is the planner's).
    """
    names = list(specialists)
    done_ids = set(done)
    problems: list[str] = []
    if not plan.subtasks:
        return ["The plan has no subtasks: add at least one."]
    if max_subtasks is not None and len(plan.subtasks) > max_subtasks:
        problems.append(f"The plan has {len(plan.subtasks)} subtasks: use at most {max_subtasks}.")
    ids = [s.id for s in plan.subtasks]
    uses = Counter(ids)  # not ids.count per id: quadratic on a runaway plan
    for dup in sorted(i for i, n in uses.items() if n > 1):
        problems.append(f"The id '{dup}' is used by {uses[dup]} subtasks: give each subtask its own id.")
    for reused in sorted(done_ids.intersection(ids)):
        problems.append(f"The id '{reused}' belongs to a finished subtask: use a new id.")
    for s in plan.subtasks:
        if s.specialist not in names:
            problems.append(
                f"Subtask '{s.id}' names specialist '{s.specialist}', who is not in the team ({', '.join(names)})."
            )
        for dep in s.depends_on:
            if dep not in uses and dep not in done_ids:
                problems.append(f"Subtask '{s.id}' depends on '{dep}', which is not a subtask id.")
    cycle = find_cycle(plan)
    if cycle:
        problems.append(f"The plan has a cycle: {' -> '.join(cycle)}. Remove one of these dependencies.")
    return problems


def find_cycle(plan: Plan) -> list[str] | None:
    """One dependency cycle as a path that ends where it starts (['s1', 's2', 's1']), or None."""
    deps = {s.id: list(s.depends_on) for s in plan.subtasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, []):
            if dep not in deps:
                continue  # unknown or finished earlier: not part of a cycle
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for s in plan.subtasks:
        if s.id not in state and (found := visit(s.id)):
            return found
    return None
