"""Build a Team from an assistant file.

    assistant = load_assistant("fjord.toml")             # raises ConfigError listing every mistake
    result = await assistant.team.run("Freeze my card", context=assistant.context(user="u-17"))

Knowledge folders are ingested (kept in sync: later loads only re-embed what changed) under
LLMOS_HOME/assistants/<tenant>/; tickets go to llmos's ticket store under the assistant's tenant:
the file's `tickets.url`, else the session database (LLMOS_MEMORY_URL), else LLMOS_HOME/tickets.sqlite.
A catalog or texts given as SQL are read when the assistant loads; a history query runs per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos.agents.agent import Agent, Budget
from llmos.agents.team import Team
from llmos.assistants.spec import AssistantSpec, SpecialistSpec, SQLSource, check_file, expand_env, resolve
from llmos.errors import ConfigError, InvalidDataError
from llmos.llm.model import ChatModel
from llmos.tools import RunContext, Tool, as_tool


def toolset(fn: Callable[[], list[Tool]]) -> Callable[[], list[Tool]]:
    """Mark a function that builds several tools (e.g. over a database opened once): an assistant
    file naming it gets the tools it returns, in order."""
    fn.__llmos_toolset__ = True  # type: ignore[attr-defined]
    return fn


@dataclass
class Assistant:
    spec: AssistantSpec
    path: Path
    team: Team
    model: ChatModel

    @property
    def tenant(self) -> str:
        return self.spec.slug

    def context(self, user: str | None = None, **fields: Any) -> RunContext:
        """A run context for this assistant's tenant (tickets and records are kept per tenant)."""
        return RunContext(user=user, tenant=self.tenant, **fields)


def load_assistant(
    path: str | Path, model: ChatModel | str | None = None, *, home: str | Path | None = None, embedder: Any = None
) -> Assistant:
    """Check the file, then build its knowledge bases, specialists and team. `model` overrides the file's."""
    path = Path(path)
    spec, problems = check_file(path)
    if problems or spec is None:
        raise ConfigError(f"{len(problems)} problem(s) in the assistant file:\n" + "\n".join(f"- {p}" for p in problems))
    if not isinstance(model, ChatModel):
        from llmos.llm.registry import get_model

        model = get_model(model or spec.model)
    return Assistant(spec, path, _Builder(spec, path, model, home, embedder).team(), model)


class _Builder:
    def __init__(self, spec: AssistantSpec, path: Path, model: ChatModel, home: str | Path | None, embedder: Any) -> None:
        from llmos.config import get_settings

        self.spec, self.path, self.base, self.model, self.embedder = spec, path, path.parent.resolve(), model, embedder
        self.home = Path(home).expanduser() if home is not None else get_settings().home
        self.root = self.home / "assistants" / spec.slug
        self._kbs: dict[str, Any] = {}

    def team(self) -> Team:
        from llmos.agents.guidelines import GuidelineMatcher

        agents = [self.specialist(n, s) for n, s in enumerate(self.spec.specialists)]
        if self.spec.guidelines:
            for agent in agents:
                mine = [g for g in self.spec.guidelines if not g.specialists or agent.name in g.specialists]
                if mine:
                    agent.turn_notes.append(GuidelineMatcher(mine, self.embedder_(), self.spec.guideline_threshold))
        t = self.spec.team
        return Team(agents, model=self.model, planner_instructions=t.planner_instructions, planner_example=t.planner_example,
                    budget=Budget(max_steps=t.max_steps, max_seconds=t.max_seconds), route=t.route,
                    subtask_timeout=t.subtask_timeout, router=self.router())

    def router(self):
        """The team's IntentRouter when the file names an intent classifier, else None (the model routes)."""
        t = self.spec.team
        if t.intent_classifier is None:
            return None
        from llmos.agents.intent_router import IntentRouter
        from llmos.classifiers import load_classifier

        return IntentRouter(load_classifier(t.intent_classifier, self.home, self.base), threshold=t.intent_threshold,
                            routes=t.intent_routes)

    # --- pieces ---

    def embedder_(self):
        if self.embedder is None:
            from llmos.knowledge import SentenceTransformerEmbedder
            from llmos.knowledge.settings import KnowledgeSettings

            self.embedder = SentenceTransformerEmbedder(KnowledgeSettings().embedding_model)
        return self.embedder

    def knowledge(self, name: str):
        if name not in self._kbs:
            source = self.spec.knowledge[name]
            if source.uploads:
                # The server's library of tenants' uploads: its search tool reads the tenant from the run.
                from llmos.server.knowledge_api import served_library

                self._kbs[name] = served_library(embedder=self.embedder_())
            elif source.python is not None:
                self._kbs[name] = resolve(source.python, self.base)()
            else:
                from llmos.knowledge import KnowledgeBase

                kb = KnowledgeBase(self.root / "knowledge", tenant=f"{self.spec.slug}-{name}"[:60], embedder=self.embedder_())
                kb.ingest(self.base / source.folder)
                self._kbs[name] = kb
        return self._kbs[name]

    def tools(self, s: SpecialistSpec) -> list[Tool]:
        out: list[Tool] = []
        for target in s.tools:
            obj = resolve(target, self.base)
            if getattr(obj, "__llmos_toolset__", False):
                obj = obj()
            out += [as_tool(o) for o in obj] if isinstance(obj, (list, tuple)) else [as_tool(obj)]
        return out

    def search(self, s: SpecialistSpec) -> Tool | None:
        if s.knowledge is None:
            return None
        return self.knowledge(s.knowledge).as_tool(name=s.search.name, k=s.search.k, description=s.search.description)

    def common(self, s: SpecialistSpec) -> dict[str, Any]:
        budget = None if s.max_steps is None and s.max_seconds is None else Budget(
            **{k: v for k, v in (("max_steps", s.max_steps), ("max_seconds", s.max_seconds)) if v is not None})
        return {"name": s.name, "instructions": s.instructions, "model": self.model, "budget": budget,
                **({"description": s.description} if s.description else {})}

    def specialist(self, n: int, s: SpecialistSpec) -> Agent:
        company = self.spec.company or self.spec.name
        builder = {"support": self.support, "recommendation": self.recommendation, "analysis": self.analysis,
                   "custom": self.custom}[s.kind]
        try:
            agent = builder(s, company)
        except InvalidDataError as exc:
            # A catalog or texts query that fails, or returns what they cannot use: named like `llmos check` names fields.
            raise ConfigError(f"{self.path}: specialists[{n}] ({s.name}): {exc}") from None
        agent.max_tokens_per_call = s.max_tokens_per_call
        if s.tool_choice is not None:
            agent.tool_choice = s.tool_choice
        return agent

    def support(self, s: SpecialistSpec, company: str) -> Agent:
        from llmos.agents.specialists.escalation import EscalationPolicy
        from llmos.agents.specialists.support import support_agent

        policy = EscalationPolicy(rules=self.spec.escalation, default_next_step=self.spec.default_next_step)
        return support_agent(knowledge=self.search(s), tools=self.tools(s), tickets=self.tickets(s), escalation=policy,
                             company=company, **self.common(s))

    def tickets(self, s: SpecialistSpec) -> list[Tool]:
        from llmos.agents.specialists.tickets import TicketDesk, TicketStore
        from llmos.tools.wording import reworded

        settings = s.tickets
        if not settings.enabled:
            return []
        store = resolve(settings.store, self.base)() if settings.store else TicketStore(self.ticket_url(settings.url))
        desk = TicketDesk(
            store,
            check_reference=resolve(settings.check_reference, self.base) if settings.check_reference else None,
            **({"user_key": resolve(settings.user_key, self.base)} if settings.user_key else {}),
        )
        out = []
        for t in desk.tools():
            rename = {"reference": settings.reference} if "reference" in t.args_model.model_fields and settings.reference != "reference" else {}
            out.append(reworded(t, rename=rename, arguments=settings.help.get(t.name, {})))
        return out

    def ticket_url(self, url: str | None):
        """The file's ticket database, else the session database (None: TicketStore's default), else a SQLite file
        in this assistant's home."""
        from llmos.agents.specialists.sql import sync_url
        from llmos.config import get_settings

        if url is not None:
            return sync_url(expand_env(url), self.base)
        return None if get_settings().memory_url else self.home / "tickets.sqlite"

    def recommendation(self, s: SpecialistSpec, company: str) -> Agent:
        from llmos.agents.specialists.catalog import ItemCatalog
        from llmos.agents.specialists.recommendation import Recommender, SQLHistory, recommendation_agent, recommendation_tools

        tools = self.tools(s)
        if s.catalog is not None:
            from llmos.knowledge import KnowledgeBase

            kb = KnowledgeBase(self.root / "knowledge", tenant=f"{self.spec.slug}-catalog"[:60], embedder=self.embedder_())
            if isinstance(s.catalog, SQLSource):
                catalog = ItemCatalog.from_sql(expand_env(s.catalog.url), s.catalog.sql, kb, base=self.base)
            else:
                catalog = ItemCatalog.from_file(self.base / s.catalog, kb)
            if isinstance(s.history, SQLSource):
                history = SQLHistory(expand_env(s.history.url), s.history.sql, base=self.base)
            else:
                history = resolve(s.history, self.base) if s.history else None
            tools = [*recommendation_tools(Recommender(catalog, history)), *tools]
        return recommendation_agent(tools=tools, company=company, **self.common(s))

    def analysis(self, s: SpecialistSpec, company: str) -> Agent:
        from llmos.agents.specialists.analysis import (
            SpikeSettings,
            TextAnalyst,
            analysis_agent,
            analysis_tools,
            load_texts,
            texts_from_sql,
        )
        from llmos.classifiers import load_classifier

        tools = self.tools(s)
        if s.texts is not None:
            if isinstance(s.texts, SQLSource):
                texts = texts_from_sql(expand_env(s.texts.url), s.texts.sql, subject_column=s.subject_column, base=self.base)
            else:
                texts = load_texts(self.base / s.texts, subject_column=s.subject_column)
            trained = {field: load_classifier(ref, self.home, self.base)
                       for field, ref in (("sentiment", s.sentiment_classifier), ("topic", s.topic_classifier)) if ref}
            analyst = TextAnalyst(texts, self.embedder_(), charts_dir=self.root / "charts", spike=SpikeSettings(**s.spike), **trained)
            tools = [*analysis_tools(analyst), *tools]
        return analysis_agent(tools=tools, company=company, **self.common(s))

    def custom(self, s: SpecialistSpec, company: str) -> Agent:
        search = self.search(s)
        tools = [*([search] if search else []), *self.tools(s)]
        common = self.common(s)
        return Agent(common.pop("name"), tools=tools, budget=common.pop("budget") or Budget(max_steps=4),
                     description=common.pop("description", f"Answers for {company}."), **common)
