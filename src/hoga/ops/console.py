"""What command bodies say to the operator: one line, and a non-zero exit when it is a failure.

The ``hoga`` command's bodies (``ops/serving.py``, ``ops/admin_commands.py``) and its
declarations (``cli.py``) share these so that every fixable failure reads the same way.
"""

from __future__ import annotations

import typer


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` in red to stderr; raise the returned ``Exit``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def warn(message: str, *, err: bool = False) -> None:
    """Print a line the operator should not miss (yellow)."""
    typer.secho(message, fg=typer.colors.YELLOW, err=err)
