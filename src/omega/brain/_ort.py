"""onnxruntime, imported with its telemetry off: every import of it in Omega goes here.

onnxruntime 1.32's Linux build carries Microsoft's 1DS telemetry: importing the module
creates a device id and an event store under ``~/.cache/Microsoft/DeveloperTools/
.onnxruntime``, a session file in the temporary directory, queues events (the OS, the
executable's path, the network type, that id) for ``mobile.events.data.microsoft.com``
and looks that host up. A TV's brain must send nothing to anyone but its constellation,
so ``ORT_DISABLE_TELEMETRY`` is set before the first import (read at import: calling
``onnxruntime.disable_telemetry_events()`` afterwards stops none of it;
``tests/brain/test_ort_telemetry.py`` checks a real process). It is set for the whole
process, an embedding host's included, and not left to a setting: Omega has no use for
it on or off.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["onnxruntime"]


def onnxruntime() -> ModuleType:
    """The onnxruntime module, its telemetry off (ImportError when it is not installed)."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    module: ModuleType = ort
    return module
