"""Prompt texts of the agent loop. Data, not code: keep them byte-stable (vLLM's prefix cache depends on it)."""

DEFAULT_INSTRUCTIONS = "You are {name}, a helpful assistant. Answer briefly and accurately."

ASSISTANT_INSTRUCTIONS = (
    "You are a helpful assistant with tools. "
    "For any arithmetic, call the calculator tool with the whole expression and use its result; "
    "never compute numbers yourself. For the current date or time, call the clock tool. "
    "After a tool result, answer the user in one or two sentences that state the result."
)

NOT_APPROVED = (
    "The call to {tool} did not run: it needs approval, and {reason}. Do not call it again. "
    "Tell the user that this needs a person's approval."
)

STRUCTURED_FINAL = "Now give your final answer as a JSON object that matches the required schema."

ANSWER_NOW = "Using the tool results above, write the answer to my question in one sentence. Do not call tools."

ANSWER_WITHOUT_TOOL = (
    "The tool {tool} keeps failing. Answer my question with what you already have, "
    "and say plainly what you could not find out. Do not call tools."
)

# --- the team's planner (llmos.agents.planner) ---------------------------------------
# One system prompt per team (its specialists in the team's order) is first in every
# planner request; what each call asks goes in the last user message.

PLANNER_SYSTEM = "You lead a team of specialists. Each one does these things:\n{specialists}{instructions}"

SPECIALIST_LINE = "- {name}: {description}"

ROUTE = (
    "Message: {goal}\n\n"
    "Who should handle this message? Answer with \"route\":\n"
    "- the name of the one specialist who can handle all of it;\n"
    "- \"plan\" if it asks for several things that need different specialists;\n"
    "- \"direct\" if it is small talk (a greeting, thanks) that needs no specialist."
)

# The request comes last, closest to the answer: small models otherwise copy the example.
PLAN = (
    "Split the request below into subtasks for the specialists: one subtask for each question or task in it, "
    "and no more. Each subtask has \"id\" (s1, s2, ...), \"specialist\" (who does it), \"instruction\" (that part "
    "of the request in its own words, with the names, numbers and dates it needs), \"depends_on\" (ids of subtasks "
    "whose results it needs, usually []) and \"returns\" (what it gives back, in a few words). Subtasks without "
    "dependencies run at the same time.\n\n{example}\n\nRequest: {goal}"
)

# Another domain on purpose: its instructions cannot be copied into a plan for this team.
PLAN_EXAMPLE = (
    'Example request: "Book a flight to Oslo on May 3. Also find a hotel near the station there."\n'
    'Example plan: {"subtasks": [{"id": "s1", "specialist": "flights", '
    '"instruction": "Book a flight to Oslo on May 3.", "depends_on": [], "returns": "the booking"}, '
    '{"id": "s2", "specialist": "hotels", "instruction": "Find a hotel near the station in Oslo.", '
    '"depends_on": [], "returns": "hotel names and prices"}]}'
)

REPAIR = "This plan cannot run:\n{problems}\nWrite the whole plan again, with these problems fixed."

REPLAN = (
    "\n\nSome subtasks could not be done. So far:\n{report}\n\n"
    "Write a plan for only the work that is still left. Do not repeat finished subtasks; give new ids "
    "(r1, r2, ...); a new subtask may depend on a finished one by its id."
)

DIRECT = "Reply briefly to this message; it needs no specialist: {goal}"

SYNTHESIZE = (
    "Request: {goal}\n\n"
    "Results from the specialists:\n{results}\n\n"
    "Write one answer to the request from these results, for the user. Keep the source numbers like [1] "
    "after the facts they support; do not list the sources, they are added after your answer. "
    "If something could not be done, say so plainly."
)

# --- the runtime (llmos.agents.runtime): how a subtask reaches its specialist -------------

SUBTASK_GOAL = "The user's message, for context:\n{goal}\n\nYour part (do only this): {instruction}"

SUBTASK_RETURNS = "\nGive back: {returns}"

SUBTASK_INPUT = "\n\nResult of {id} ({specialist}):\n{text}"

# --- the team's answer (llmos.agents.team): lines added after the model's text -----------

NOT_DONE = "Could not be done:"

NOT_DONE_LINE = "- {instruction} ({reason})"

SOURCES = "Sources:"

NOTHING_DONE = "Sorry, I could not do this."
