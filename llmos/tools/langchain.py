"""Use a LangChain tool as an llmos `Tool`. langchain-core is imported only when this is used."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from llmos.errors import ToolDefinitionError
from llmos.tools.base import Tool, clean_schema


def from_langchain(lc_tool: Any, *, timeout: float | None = 30.0, max_retries: int = 2) -> Tool:
    """Wrap a LangChain `BaseTool`: same name, description and argument schema; runs with `ainvoke`."""
    try:
        from langchain_core.tools import BaseTool
    except ImportError as exc:
        raise ToolDefinitionError("LangChain tools need langchain-core: pip install 'llmos[langchain]'.") from exc
    if not isinstance(lc_tool, BaseTool):
        raise ToolDefinitionError(f"from_langchain expects a LangChain BaseTool, not {type(lc_tool).__name__}.")

    # tool_call_schema is what the model should fill: the args schema minus arguments LangChain injects.
    schema = lc_tool.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        args_model, parameters = schema, clean_schema(schema.model_json_schema())
    else:  # a JSON schema dict, or a pydantic v1 model: take LangChain's own JSON view of it
        from langchain_core.utils.function_calling import convert_to_openai_tool

        parameters = clean_schema(convert_to_openai_tool(lc_tool)["function"]["parameters"])
        args_model = _model_checking(parameters)

    async def call(args: BaseModel) -> Any:
        # exclude_unset: let LangChain apply its own defaults; a ToolException raised here becomes a tool error.
        return await lc_tool.ainvoke(args.model_dump(exclude_unset=True))

    return Tool(
        name=re.sub(r"[^A-Za-z0-9_-]", "_", lc_tool.name)[:64],  # LangChain allows names servers refuse
        description=lc_tool.description or lc_tool.name,
        args_model=args_model,
        call=call,
        timeout_s=timeout,
        max_retries=max_retries,
        parameters=parameters,
    )


def _model_checking(parameters: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model that accepts what a JSON schema accepts, so `Tool.run` reports errors the usual way."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(parameters)  # built once, not per call

    class JsonSchemaArgs(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _check(cls, data: Any) -> Any:
            problems = [
                f"{'.'.join(map(str, error.path)) or 'arguments'}: {error.message}"
                for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
            ]
            if problems:
                raise ValueError("; ".join(problems))
            return data

    return JsonSchemaArgs
