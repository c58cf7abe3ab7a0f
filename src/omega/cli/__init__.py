"""The ``omega`` command line (Typer + Rich)."""

from __future__ import annotations

__all__: list[str] = []
