"""The demo stores, built once per test session in a temporary LLMOS_HOME (about 15 s with MiniLM)."""

from __future__ import annotations

import pytest

from llmos.demo import DemoStores, prepare_demo


@pytest.fixture(scope="session")
def stores(tmp_path_factory) -> DemoStores:
    return prepare_demo(tmp_path_factory.mktemp("home"))


@pytest.fixture
def tools(stores):
    """Tool lookup by name across the three specialists."""
    from llmos.demo.specialists import analysis_tools, recommendation_tools
    from llmos.demo.support import support_tools

    return {t.name: t for t in [*support_tools(stores), *recommendation_tools(stores), *analysis_tools(stores)]}
