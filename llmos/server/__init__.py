"""Serving llmos teams and agents over HTTP: an OpenAI-compatible API, API keys, metrics.

Install with `pip install 'llmos[server]'`; run with `llmos serve`.
"""

from llmos.server.app import Servable, create_app
from llmos.server.keys import ApiKey, KeyStore
from llmos.server.settings import ServerSettings

__all__ = ["ApiKey", "KeyStore", "Servable", "ServerSettings", "create_app"]
