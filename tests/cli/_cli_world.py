"""``omega`` as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

OMEGA = [sys.executable, "-m", "omega.cli"]


def omega(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """``omega ARGS`` in a terminal ``columns`` wide (what Rich wraps tables to)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([*OMEGA, *args], capture_output=True, text=True, timeout=300, env=env)
