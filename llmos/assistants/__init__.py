"""Assistants described by one file: a company's documents, tools, specialists, rules and guidelines.

    llmos check fjord.toml                       # every mistake, with its field and what to write
    llmos ask --assistant fjord.toml --user u-17 "Is my card blocked?"

    from llmos.assistants import load_assistant
    assistant = load_assistant("fjord.toml")
    assistant.team.run_sync("Is my card blocked?", context=assistant.context(user="u-17"))
"""

from llmos.assistants.loader import Assistant, load_assistant, toolset
from llmos.assistants.spec import AssistantSpec, check_file

__all__ = ["Assistant", "AssistantSpec", "check_file", "load_assistant", "toolset"]
