"""One error hierarchy for llmos. Every message says what went wrong and what to do."""

from __future__ import annotations


class LLMOSError(Exception):
    """Base class of every error llmos raises on purpose."""


class ConfigError(LLMOSError):
    """A setting or argument is wrong."""


# --- models -----------------------------------------------------------------


class ModelError(LLMOSError):
    """A model could not be found, loaded or called."""


class ModelNotFoundError(ModelError):
    """The model name is not known and is not a path to a model folder."""


class WeightsError(ModelError):
    """Model weights are missing or corrupt."""


class ModelConnectionError(ModelError):
    """A model server could not be reached."""


class PromptError(ModelError):
    """The request itself is unusable: empty, or longer than the model's context."""


class OutputValidationError(ModelError):
    """The model's answer does not match the requested output schema."""


class JSONDepthError(ModelError, ValueError):
    """JSON from a model nests deeper than llmos reads (see llmos.limits). A ValueError too,
    so code that handles unparsable JSON handles this the same way."""


# --- tools ------------------------------------------------------------------


class ToolError(LLMOSError):
    """A tool is defined wrongly, or failed in a way the model cannot recover from."""


class ToolDefinitionError(ToolError):
    """A function cannot be turned into a tool (missing hints, bad name...)."""


class UnknownToolError(ToolError):
    """The model asked for a tool the agent does not have."""


# --- agents -----------------------------------------------------------------


class AgentError(LLMOSError):
    """An agent run could not finish."""


class BudgetExceededError(AgentError):
    """A run used up its budget of steps, tokens or wall time."""


class PlanError(AgentError):
    """The planner could not write a valid plan for a goal, even after the allowed repairs."""


# --- knowledge --------------------------------------------------------------


class KnowledgeError(LLMOSError):
    """A knowledge base could not be opened, written or searched."""


class LoaderError(KnowledgeError):
    """A document cannot be read (corrupt, encrypted, binary, empty, too large); it is skipped."""


class EmbeddingError(KnowledgeError):
    """The embedding model cannot be loaded or does not match the knowledge base."""


# --- classifiers ------------------------------------------------------------


class ClassifierError(LLMOSError):
    """A text classifier cannot be trained, saved, found or loaded."""


class TrainingDataError(ClassifierError):
    """Labelled data cannot be used: a missing column, an empty file, a single class, labels the model does not know."""


class ClassifierNotFoundError(ClassifierError):
    """No saved classifier has this name or path."""


# --- fine-tuning (LoRA adapters) -------------------------------------------


class FinetuneError(LLMOSError):
    """A fine-tuning run cannot start, resume or finish."""


class DialogueDataError(FinetuneError):
    """Dialogues cannot be used: no such file, an empty file, a missing column, a chat without an assistant turn."""


class AdapterError(ModelError):
    """An adapter is missing, incomplete, or was trained on another base model than the one it is loaded on."""


# --- domain tools (the specialists' stores) ---------------------------------


class DomainError(LLMOSError):
    """A domain tool cannot act on its input; the message tells the model what to ask or try instead."""


class NotFoundError(DomainError):
    """A customer, order, ticket or catalog item that was named does not exist."""


class AccessDeniedError(DomainError):
    """The record exists but belongs to someone else (e.g. another customer's order)."""


class InvalidDataError(DomainError):
    """Input data cannot be used: a malformed CSV, an empty date range, a file outside the allowed folders."""


# --- memory (sessions) ------------------------------------------------------


class MemoryStoreError(LLMOSError):
    """The session store could not read or write a conversation."""


class DatabaseURLError(MemoryStoreError, ConfigError):
    """The session database URL cannot be used (malformed, unknown database, or a driver that is not async)."""


class DatabaseUnavailableError(MemoryStoreError):
    """The session database is down, unreachable, or locked for too long. The message names it (never its password)."""


class SchemaError(MemoryStoreError):
    """The session database's schema is newer than this llmos, or cannot be migrated."""


class UnknownTenantError(MemoryStoreError):
    """No session was ever stored for this tenant."""


class UnknownUserError(MemoryStoreError):
    """No session was ever stored for this user of the tenant."""


class UnknownSessionError(MemoryStoreError):
    """The session (or turn) does not exist for this tenant."""


class UnknownTurnError(UnknownSessionError):
    """The session has no turn of this number."""


class SessionExistsError(MemoryStoreError):
    """A session with this id already exists for this tenant."""


class SessionBusyError(MemoryStoreError):
    """Another turn of the session is running (in this or another process); turns of one session never interleave."""


class TurnStateError(MemoryStoreError):
    """A turn cannot be finished or retried: it is already answered, or its run lost the session's lock."""


class TurnAnsweredError(TurnStateError):
    """The turn is answered: only an unanswered or failed turn is retried."""


class SessionOwnerError(MemoryStoreError):
    """The session belongs to another user: a run may only continue its own user's sessions."""


class UnknownFactError(MemoryStoreError):
    """The user has no remembered fact with this id."""
