"""The HTTP surface, one router per concern."""

from __future__ import annotations

from omega.constellation.routes.consensus import router as consensus_router
from omega.constellation.routes.cowatch import router as cowatch_router
from omega.constellation.routes.dashboard import router as dashboard_router
from omega.constellation.routes.manage import router as manage_router
from omega.constellation.routes.manufacturers import router as manufacturers_router
from omega.constellation.routes.operator import router as operator_router
from omega.constellation.routes.ops import router as ops_router
from omega.constellation.routes.registry import router as registry_router
from omega.constellation.routes.stream import router as stream_router
from omega.constellation.routes.sync import router as sync_router
from omega.constellation.routes.viewers import router as viewers_router

__all__ = [
    "consensus_router",
    "cowatch_router",
    "dashboard_router",
    "manage_router",
    "manufacturers_router",
    "operator_router",
    "ops_router",
    "registry_router",
    "stream_router",
    "sync_router",
    "viewers_router",
]
