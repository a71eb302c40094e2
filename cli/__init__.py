"""The `roomc` command line. Importing the package registers every subcommand on `main`."""
from . import calls, db, explain, serve  # noqa: F401  (registration side effect)
from .main import main, run

__all__ = ["main", "run"]
