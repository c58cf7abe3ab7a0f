"""The helper: the second server of two-server popularity counting (``omega helper``).

``HelperService`` does the work (open shares, answer the sketch check, aggregate each
report once, add noise); ``create_helper_app`` serves it over HTTP; ``HelperThread``
runs that app on a loopback port inside this process (simulator, tests, benchmarks).
``CowatchDesk`` is the co-watch shuffler (``docs/cowatch.md``).
See ``docs/popularity.md``.
"""

from __future__ import annotations

from omega.helper.app import create_helper_app
from omega.helper.cowatch import CowatchConfig, CowatchDesk
from omega.helper.service import HelperConfig, HelperService
from omega.helper.thread import HelperThread

__all__ = [
    "CowatchConfig",
    "CowatchDesk",
    "HelperConfig",
    "HelperService",
    "HelperThread",
    "create_helper_app",
]
