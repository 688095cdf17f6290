"""The original ``api``: the FastAPI router under ``/api/v1/analytics`` and the application around it."""

from edgefinder.esports.api import create_app, router

__all__ = ["create_app", "router"]
