"""The library's argument names, reworded as the command's flags.

The library validates its own arguments and says which one is wrong by its Python name
(``watch_fraction must be within [0, 1]``); someone at the command line typed
``--fraction``. A command maps the names it passes on to its flags::

    with flag_names({"watch_fraction": "--fraction", "at_seconds": "--at"}):
        brain.track_view(item, watch_fraction=fraction)

and an :class:`InputError` about one of them (its ``param``) leaves as a usage error
(:class:`ConfigError`, exit code 2) whose sentence names the flag.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from omega.errors import ConfigError, InputError

__all__ = ["flag_names", "reworded"]


@contextmanager
def flag_names(flags: Mapping[str, str]) -> Iterator[None]:
    """Reword an :class:`InputError` about one of ``flags``' parameters to name its flag."""
    try:
        yield
    except InputError as exc:
        flag = flags.get(exc.param or "")
        if flag is None or exc.param is None:
            raise
        raise ConfigError(reworded(str(exc), exc.param, flag)) from exc


def reworded(sentence: str, param: str, flag: str) -> str:
    """``sentence`` naming ``flag`` where it named ``param`` (or led by the flag)."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(param)}(?![\w-])")
    if pattern.search(sentence) is None:
        return f"{flag}: {sentence}"
    return pattern.sub(flag, sentence, count=1)
