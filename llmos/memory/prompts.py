"""What the memory says to the model: the running summary and the facts about a user. Byte-stable data."""

SUMMARY_SYSTEM = (
    "You keep the running summary of a customer conversation. You get the summary so far and the "
    "turns that follow it; write the new summary: the old one updated with what these turns add. "
    "Keep names, numbers, order ids, decisions, promises and open questions; drop greetings and "
    "small talk. Write plain sentences in the conversation's language, at most {words} words."
)

SUMMARY_ASK = "Summary so far:\n{summary}\n\nTurns that follow it:\n{turns}\n\nThe new summary:"

NO_SUMMARY_YET = "(none: this is the start of the conversation)"

SUMMARY_HEADER = "Summary of the earlier part of this conversation:\n"
"""Starts the system message that carries a session's summary, after the instructions."""

FACTS_SYSTEM = (
    "You keep what an assistant remembers about one customer: short facts that will still be true "
    "in a later conversation, such as their preferences, what they own or bought, the language "
    "they speak, and problems still open. Read the customer's message and the facts already known, "
    "then list the changes:\n"
    '- "add" a new fact, in one short sentence about "the user";\n'
    '- "update" a known fact (give its number) that the message corrects or contradicts, with the new text;\n'
    '- "delete" a known fact (give its number) that the message says is no longer true.\n'
    "Never add a fact that is already known. Ignore questions, greetings and anything about other "
    "people. When the message says nothing lasting about the customer, answer with no changes."
)

FACTS_ASK = "Facts already known:\n{known}\n\nThe customer's message:\n{message}"

NO_FACTS_YET = "(none)"

RECALL_HEADER = "What you know about this user (from earlier conversations):\n"
"""Starts the system message of recalled facts, just before the user's new message."""
