"""Storage: SQLAlchemy tables, the engine factory and the Alembic environment."""

from edgefinder.store.engine import check_connection, make_engine, normalize_url
from edgefinder.store.tables import metadata

__all__ = ["check_connection", "make_engine", "metadata", "normalize_url"]
