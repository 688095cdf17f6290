"""The original ``api``: the FastAPI router under ``/api/v1/analytics`` and the application around it."""

from edgefinder.app import create_app
from edgefinder.esports.api import router

__all__ = ["create_app", "router"]
