"""What an assistant file may say, as pydantic models, and the check that reports every mistake in it.

    name = "Fjord Bank card support"
    company = "Fjord Bank"

    [knowledge.policies]
    folder = "policies"                       # relative to this file

    [[specialists]]
    name = "cards"
    kind = "support"                          # support | recommendation | analysis | custom
    tools = ["fjord_tools:card_status", "fjord_tools:freeze_card"]
    knowledge = "policies"

    [[escalation]]
    name = "customer asks for a person"
    customer_says_any = ["human", "a person"]

Data may come from the company's SQL database instead of a file: `catalog`, `history` and `texts`
take `{ sql = "SELECT ...", url = "sqlite:///shop.db" }` (a relative SQLite path is relative to
the file; `${NAME}` in a URL is read from the environment, so that passwords stay out of it).

`check_file(path)` returns (the spec or None, every problem found); each problem names the
file, the field, what is wrong and what to write instead.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from llmos.agents.guidelines import DEFAULT_THRESHOLD, Guideline
from llmos.agents.specialists.escalation import EscalationRule
from llmos.errors import ConfigError

Kind = Literal["support", "recommendation", "analysis", "custom"]
KINDS = ("support", "recommendation", "analysis", "custom")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnowledgeSource(_Strict):
    """Documents a specialist answers from: a folder (ingested, kept in sync), a Python callable returning a
    KnowledgeBase, or the documents each tenant uploads to the server."""

    folder: Path | None = Field(None, description="A folder of documents, relative to the assistant file.")
    python: str | None = Field(None, description="'module:function' returning a ready KnowledgeBase.")
    uploads: bool = Field(
        False, description="The documents the run's tenant uploaded (`llmos serve`: POST /v1/knowledge/documents)."
    )


class SQLSource(_Strict):
    """Rows from the company's SQL database: a query and the database's SQLAlchemy URL."""

    sql: str = Field(min_length=1, description="The query. A history query names the customer as :user.")
    url: str = Field(min_length=1, description="sqlite:///shop.db (relative to the assistant file) or "
                     "postgresql+psycopg://user:${SHOP_DB_PASSWORD}@host/db; ${NAME} is read from the environment.")


def _file_or_sql(value: Any) -> str:
    return "<sql>" if isinstance(value, (dict, SQLSource)) else "<file>"


def _python_or_sql(value: Any) -> str:
    return "<sql>" if isinstance(value, (dict, SQLSource)) else "<python>"


# A file path, or a table {sql, url}. The tags (in angle brackets) are left out of the field names `llmos check` shows.
FileOrSQL = Annotated[Union[Annotated[Path, Tag("<file>")], Annotated[SQLSource, Tag("<sql>")]], Discriminator(_file_or_sql)]
PythonOrSQL = Annotated[Union[Annotated[str, Tag("<python>")], Annotated[SQLSource, Tag("<sql>")]], Discriminator(_python_or_sql)]

_ENV = re.compile(r"\$\{(\w+)\}")


def expand_env(url: str) -> str:
    """`url` with each ${NAME} replaced by that environment variable. Raises ConfigError naming one that is unset."""
    unset = [name for name in _ENV.findall(url) if name not in os.environ]
    if unset:
        raise ConfigError(f"the environment variable {', '.join(unset)} is not set; set it, or write the value.")
    return _ENV.sub(lambda m: os.environ[m.group(1)], url)


class SearchSettings(_Strict):
    name: str = "search_policies"
    k: int = Field(3, ge=1, le=20)
    description: str | None = None


class TicketSettings(_Strict):
    """llmos's ticket tools for a support specialist, in the company's words."""

    enabled: bool = True
    reference: str = Field("reference", description="The name of the argument saying what a ticket is about, e.g. 'card_id'.")
    help: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Argument help per tool: {create_ticket = {subject = '...'}}."
    )
    check_reference: str | None = Field(None, description="'module:function' (ctx, reference) -> reference, or raises.")
    user_key: str | None = Field(None, description="'module:function' (user) -> user as the company stores it.")
    store: str | None = Field(None, description="'module:function' returning a TicketStore.")
    url: str | None = Field(None, description="The ticket database's SQLAlchemy URL (SQLite relative to the assistant file, or "
                            "PostgreSQL). Default: the session database (LLMOS_MEMORY_URL), else LLMOS_HOME/tickets.sqlite.")


class SpecialistSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: Kind
    description: str | None = None
    instructions: str | None = Field(None, description="The whole system prompt (default: the kind's, for the company).")
    tools: list[str] = Field(default_factory=list, description="'module:name' of a Tool, a typed function, or a list of Tools.")
    knowledge: str | None = Field(None, description="The name of a [knowledge.NAME] source.")
    search: SearchSettings = Field(default_factory=SearchSettings)
    tickets: TicketSettings = Field(default_factory=TicketSettings)
    max_steps: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)
    max_tokens_per_call: int | None = Field(256, ge=1)
    tool_choice: str | None = Field(None, description="'auto', 'required', 'none' or a tool's name (default: the kind's).")
    # recommendation
    catalog: FileOrSQL | None = Field(None, description="Items file (.csv, .jsonl, .json), relative to the assistant file, "
                                      "or {sql, url} returning the columns id, name[, category, price, description].")
    history: PythonOrSQL | None = Field(None, description="'module:function' (ctx) -> ids of the items the customer has, "
                                        "or {sql, url} returning them for the customer :user.")
    # analysis
    texts: FileOrSQL | None = Field(None, description="CSV of dated texts (columns id, date, text[, subject]), "
                                    "or {sql, url} returning those columns.")
    subject_column: str | None = None
    spike: dict[str, float] = Field(default_factory=dict, description="Spike thresholds (see SpikeSettings).")
    sentiment_classifier: str | None = Field(
        None, description="A trained classifier (labels negative, neutral, positive): a folder relative to this file, "
        "or a name under LLMOS_HOME/classifiers (NAME or NAME@vN). Default: the shipped sentiment model.")
    topic_classifier: str | None = Field(None, description="A trained topic classifier, named the same way. Default: "
                                         "the nearest of the shipped topic descriptions.")


class TeamSettings(_Strict):
    route: bool = True
    planner_instructions: str = ""
    planner_example: str | None = None
    max_steps: int = Field(40, ge=1)
    max_seconds: float | None = Field(None, gt=0)
    subtask_timeout: float | None = Field(300.0, gt=0)
    intent_classifier: str | None = Field(
        None, description="A trained intent classifier asked before the routing call (a folder relative to this file, "
        "or a name under LLMOS_HOME/classifiers); when confident, the model's routing call is skipped.")
    intent_threshold: float = Field(0.9, gt=0, le=1, description="The probability the intent classifier needs to route alone.")
    intent_routes: dict[str, str] = Field(
        default_factory=dict, description="Intent label -> specialist name, 'plan' or 'direct' (default: the label itself).")


class AssistantSpec(_Strict):
    name: str
    company: str | None = Field(None, description="How the specialists name the company (default: the name).")
    model: str | None = Field(None, description="A model name or folder (default: LLMOS_MODEL).")
    tenant: str | None = Field(None, description="The tenant of tickets and knowledge (default: from the name).")
    knowledge: dict[str, KnowledgeSource] = Field(default_factory=dict)
    specialists: list[SpecialistSpec] = Field(min_length=1)
    team: TeamSettings = Field(default_factory=TeamSettings)
    escalation: list[EscalationRule] = Field(default_factory=list)
    default_next_step: str = "No action required by policy."
    guidelines: list[Guideline] = Field(default_factory=list)
    guideline_threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1, description="Cosine similarity a guideline needs to match.")

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in (self.tenant or self.name).lower()).strip("-")[:60] or "assistant"


# --- the check ---------------------------------------------------------------------------------

_HINTS = {
    "extra_forbidden": "remove it, or check its spelling",
    "literal_error": "write one of the values listed",
    "missing": "add it",
    "int_parsing": "write a whole number without quotes",
    "int_type": "write a whole number without quotes",
    "float_parsing": "write a number without quotes",
    "float_type": "write a number without quotes",
    "bool_type": "write true or false without quotes",
    "bool_parsing": "write true or false without quotes",
    "string_type": "write text in quotes",
    "list_type": "write a list in brackets, e.g. [\"a\", \"b\"]",
    "too_short": "add at least one",
}


def check_file(path: str | Path) -> tuple[AssistantSpec | None, list[str]]:
    """Read and validate an assistant file: (spec, []) when it is right, (spec or None, problems) when not.

    Type errors and missing files, folders and imports are all reported, one line per mistake.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [f"{path}: cannot read the file ({exc.strerror or exc}); give the path of an assistant .toml file."]
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: not valid TOML: {exc}. Fix the syntax at that place."]
    spec, problems = None, []
    try:
        spec = AssistantSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'], data)}: {_message(e)}" for e in exc.errors(include_url=False)]
    problems += _semantic_problems(data, path.parent.resolve())
    return (None if problems else spec), [f"{path}: {problem}" for problem in problems]


def _semantic_problems(data: dict[str, Any], base: Path) -> list[str]:
    """What pydantic cannot see: folders and files that are missing, tool paths that do not import, names that do not
    match. Reads the raw file, so that these are reported next to type errors; values of the wrong type are skipped
    (pydantic reports them)."""
    problems = []
    knowledge = data.get("knowledge") if isinstance(data.get("knowledge"), dict) else {}
    for name, source in knowledge.items():
        if not isinstance(source, dict):
            continue
        where = f"knowledge.{name}"
        folder, python, uploads = source.get("folder"), source.get("python"), source.get("uploads") is True
        if [folder is not None, python is not None, uploads].count(True) != 1:
            problems.append(
                f"{where}: give exactly one of folder = \"...\", python = \"module:function\" or uploads = true."
            )
        elif isinstance(folder, str) and not (base / folder).is_dir():
            problems.append(f"{where}.folder: no folder {base / folder}; write a folder path relative to the assistant file.")
        elif isinstance(python, str):
            problems += _import_problem(f"{where}.python", python, base)
    specialists = [s for s in data.get("specialists", []) if isinstance(s, dict)] if isinstance(data.get("specialists"), list) else []
    names = [s.get("name") for s in specialists]
    for n, s in enumerate(specialists):
        where = f"specialists[{n}]" + (f" ({s['name']})" if isinstance(s.get("name"), str) else "")
        if s.get("name") is not None and names.count(s.get("name")) > 1:
            problems.append(f"{where}.name: two specialists are named '{s['name']}'; give each its own name.")
        for m, tool_path in enumerate(s.get("tools") or []):
            if isinstance(tool_path, str):
                problems += _import_problem(f"{where}.tools[{m}]", tool_path, base)
        kb = s.get("knowledge")
        if isinstance(kb, str) and kb not in knowledge:
            declared = ", ".join(knowledge) or "none"
            problems.append(f"{where}.knowledge: no [knowledge.{kb}] in this file (declared: {declared}); add it or use a declared name.")
        for field in ("catalog", "texts"):
            value = s.get(field)
            if isinstance(value, str) and not (base / value).is_file():
                problems.append(f"{where}.{field}: no file {base / value}; write a path relative to the assistant file.")
        for field in ("catalog", "history", "texts"):
            if isinstance(s.get(field), dict):
                problems += _sql_problems(f"{where}.{field}", s[field], base, user=field == "history")
        tickets = s.get("tickets") if isinstance(s.get("tickets"), dict) else {}
        for field, value in (("history", s.get("history")), *((f"tickets.{k}", tickets.get(k)) for k in ("check_reference", "user_key", "store"))):
            if isinstance(value, str):
                problems += _import_problem(f"{where}.{field}", value, base)
        if isinstance(tickets.get("url"), str):
            if tickets.get("store") is not None:
                problems.append(f"{where}.tickets: give store = \"module:function\" or url = \"...\", not both.")
            else:
                problems += _url_problems(f"{where}.tickets.url", tickets["url"], base)
        if s.get("kind") == "recommendation" and s.get("catalog") is None and not s.get("tools"):
            problems.append(f"{where}: a recommendation specialist needs catalog = \"items.csv\" (or tools).")
        if s.get("history") is not None and s.get("catalog") is None:
            problems.append(f"{where}.history: a history is read with a catalog; add catalog = ..., or remove history.")
        if s.get("kind") == "analysis" and s.get("texts") is None and not s.get("tools"):
            problems.append(f"{where}: an analysis specialist needs texts = \"texts.csv\" (or tools).")
        for field in ("sentiment_classifier", "topic_classifier"):
            problems += _classifier_problem(f"{where}.{field}", s.get(field), base)
        if isinstance(s.get("spike"), dict):
            from llmos.agents.specialists.analysis import SpikeSettings

            try:
                SpikeSettings(**s["spike"])
            except (ValidationError, TypeError) as exc:
                errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc), "type": "", "input": None}]
                problems += [f"{where}.spike.{_where(e['loc'], None)}: {_message(e)}" for e in errors]
    team = data.get("team") if isinstance(data.get("team"), dict) else {}
    problems += _classifier_problem("team.intent_classifier", team.get("intent_classifier"), base)
    guidelines = data.get("guidelines") if isinstance(data.get("guidelines"), list) else []
    for n, g in enumerate(guidelines):
        unknown = [x for x in (g.get("specialists") or []) if x not in names] if isinstance(g, dict) else []
        if unknown:
            problems.append(f"guidelines[{n}].specialists: no specialist named {', '.join(map(str, unknown))}; "
                            f"use one of {', '.join(map(str, names))}.")
    return problems


def _sql_problems(where: str, source: dict[str, Any], base: Path, *, user: bool) -> list[str]:
    """A {sql, url} source: a URL that works here, and a query naming exactly the parameters llmos gives (:user for a
    history, none otherwise). The query itself runs when the assistant loads, not here."""
    from llmos.agents.specialists.sql import bound_names

    problems = []
    url, sql = source.get("url"), source.get("sql")
    if isinstance(url, str) and url:
        problems += _url_problems(f"{where}.url", url, base, must_exist=True)
    if isinstance(sql, str) and sql.strip():
        names = bound_names(sql)
        if user and "user" not in names:
            problems.append(f"{where}.sql: the query must name the customer as :user, e.g. "
                            "SELECT item_id FROM orders WHERE customer_id = :user.")
        extra = sorted(names - ({"user"} if user else set()))
        if extra:
            given = "only :user" if user else "none"
            problems.append(f"{where}.sql: the query names :{', :'.join(extra)}, but llmos gives {given}; "
                            "write the value into the query (or write \\: for a colon).")
    return problems


def _url_problems(where: str, url: str, base: Path, *, must_exist: bool = False) -> list[str]:
    """A database URL: it expands, parses, its driver is installed, and (for data read from it) its SQLite file exists."""
    from sqlalchemy.exc import NoSuchModuleError

    from llmos.agents.specialists.sql import URL_HELP, sync_url

    try:
        parsed = sync_url(expand_env(url), base)
        parsed.get_dialect().import_dbapi()
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    except NoSuchModuleError:
        return [f"{where}: SQLAlchemy knows no database '{url.split(':', 1)[0]}'. {URL_HELP}"]
    except ImportError as exc:
        return [f"{where}: the driver for this URL is not installed ({exc.name}); pip install 'llmos[memory]'."]
    if must_exist and parsed.get_backend_name() == "sqlite" and not Path(parsed.database).is_file():
        return [f"{where}: no SQLite file {parsed.database}; write a path relative to the assistant file "
                "(sqlite:///shop.db) or an absolute one (sqlite:////data/shop.db)."]
    return []


def _classifier_problem(where: str, value: Any, base: Path) -> list[str]:
    """A classifier given as a folder must hold a saved one; a name is looked up when the assistant loads (under its
    LLMOS_HOME)."""
    if not isinstance(value, str) or not ("/" in value or value.startswith(".")):
        return []
    folder = base / value
    if (folder / "manifest.json").is_file() or any(folder.glob("v*/manifest.json")):
        return []
    return [f"{where}: no saved classifier in {folder}; write the folder of one (`llmos train classifier --out`) "
            "relative to the assistant file, or a classifier's name."]


def _import_problem(where: str, target: str, base: Path) -> list[str]:
    try:
        resolve(target, base)
    except ImportError as exc:
        return [f"{where}: {exc}"]
    return []


@contextmanager
def importable_from(base: Path):
    """Modules next to the assistant file import by their names (`fjord_tools:card_status`)."""
    added = str(base) not in sys.path
    if added:
        sys.path.insert(0, str(base))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(base))


def resolve(target: str, base: Path) -> Any:
    """The object at 'module:name' (the module found next to the assistant file or installed). Raises ImportError."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ImportError(f"'{target}' is not an import path; write 'module:name', e.g. 'mycompany.tools:order_status'.")
    with importable_from(base):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"cannot import module '{module_name}' ({exc}); put {module_name.replace('.', '/')}.py next to "
                              "the assistant file or install it.") from None
        except Exception as exc:  # the module itself is broken
            raise ImportError(f"importing '{module_name}' failed: {type(exc).__name__}: {exc}.") from None
    try:
        obj = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        public = ", ".join(n for n in dir(module) if not n.startswith("_"))[:300]
        raise ImportError(f"module '{module_name}' has no '{attribute}'; it has: {public}.") from None
    return obj


def _where(loc: tuple, data: Any) -> str:
    """'specialists[0] (cards).kind': list indexes in brackets, with the specialist's name when there is one."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, str) and part.startswith("<"):
            continue  # a union's tag, e.g. <sql>: the field is the same whichever form it takes
        if isinstance(part, int):
            name = node[part].get("name") if isinstance(node, list) and part < len(node) and isinstance(node[part], dict) else None
            out += f"[{part}]" + (f" ({name})" if name else "")
        else:
            out += ("." if out else "") + str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "(top level)"


def _message(error: dict[str, Any]) -> str:
    text = error["msg"]
    if error["type"] == "extra_forbidden":
        text = "unknown field"
    elif error["type"] not in ("missing",):
        text += f" (got {error['input']!r})"
    hint = _HINTS.get(error["type"])
    if error["type"] == "literal_error" and error["loc"][-1] == "kind":
        hint = f"write one of {', '.join(KINDS)}"
    return f"{text}; {hint}." if hint else f"{text}."
