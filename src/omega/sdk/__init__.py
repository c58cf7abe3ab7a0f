"""The SDK for TV makers: ``libomega.so`` and ``omega.h``, a C99 API over the brain and
its sync (docs/sdk.md).

- ``c/omega.h`` is the API; ``c/runtime.c`` the library's C half (starting the embedded
  interpreter, the per-thread error sentence);
- :func:`build_sdk` (``omega sdk build``) makes the library with cffi's embedding mode,
  and :func:`compile_program` compiles a C program against it;
- :mod:`omega.sdk.cabi` is the Python half of each C function, over
  :class:`Device` (an open brain and its periodic sync) and :class:`DeviceSettings`
  (a configuration); :class:`Status` holds the status codes.
"""

from __future__ import annotations

from omega.sdk.build import HEADER, LIBRARY, SdkBuild, api_functions, build_sdk, compile_program
from omega.sdk.device import Device, DeviceSettings, read_identity
from omega.sdk.status import BufferTooSmall, Status, status_for

__all__ = [
    "HEADER",
    "LIBRARY",
    "BufferTooSmall",
    "Device",
    "DeviceSettings",
    "SdkBuild",
    "Status",
    "api_functions",
    "build_sdk",
    "compile_program",
    "read_identity",
    "status_for",
]
