"""The wire protocol: message types and the binary codec, with no I/O (sans-IO)."""

from __future__ import annotations

from omega.protocol.messages import *  # noqa: F403
from omega.protocol.messages import __all__ as _messages_all

__all__ = [*_messages_all]
