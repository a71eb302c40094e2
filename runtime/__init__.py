"""The webhook server: `create_app(route_table, store=..., settings=...)` and its small parts."""
from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
