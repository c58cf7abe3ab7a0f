"""The device's sync reaches the brain only through its public API and ``brain.sync``."""

from __future__ import annotations

import ast
from pathlib import Path

import omega.sync

#: The brain's parts that are not the sync seam: the sync must not reach into them.
PRIVATE_PARTS = {"store", "learner", "titles"}


def _reaches(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_PARTS:
            found.append((node.lineno, ast.unparse(node)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.upper()
            if any(verb in text for verb in ("DELETE FROM", "INSERT INTO", "SELECT ")):
                found.append((node.lineno, node.value[:40]))
    return found


def test_the_sync_package_uses_only_the_seam() -> None:
    package = Path(omega.sync.__file__).parent
    offenders = [
        f"{path.name}:{line}: {text}"
        for path in sorted(package.glob("*.py"))
        for line, text in _reaches(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_check_finds_a_reach_past_the_seam() -> None:
    assert _reaches("n = brain.store.get_cursor('x')") == [(1, "brain.store")]
    assert _reaches("conn.execute('DELETE FROM outbox')") == [(1, "DELETE FROM outbox")]
