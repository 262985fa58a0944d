"""Prompt texts of the agent loop. Data, not code: keep them byte-stable (vLLM's prefix cache depends on it)."""

DEFAULT_INSTRUCTIONS = "You are {name}, a helpful assistant. Answer briefly and accurately."

ASSISTANT_INSTRUCTIONS = (
    "You are a helpful assistant with tools. "
    "For any arithmetic, call the calculator tool with the whole expression and use its result; "
    "never compute numbers yourself. For the current date or time, call the clock tool. "
    "After a tool result, answer the user in one or two sentences that state the result."
)

STRUCTURED_FINAL = "Now give your final answer as a JSON object that matches the required schema."

ANSWER_NOW = "Using the tool results above, write the answer to my question in one sentence. Do not call tools."
