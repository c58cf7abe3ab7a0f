"""libomega.so through ctypes, as a Python host (or a test) loads it: the structs of
omega.h and the argument types of each function."""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_char_p, c_double, c_int, c_size_t, c_uint64, c_void_p
from pathlib import Path
from typing import Any

UNKNOWN = -1.0


class Item(Structure):
    _fields_ = [
        ("item_id", c_char_p),
        ("title", c_char_p),
        ("genres", c_char_p),
        ("year", c_int),
        ("runtime_min", c_int),
        ("description", c_char_p),
    ]


class Context(Structure):
    _fields_ = [("time_bucket", c_int), ("day_type", c_int)]


class Filters(Structure):
    _fields_ = [
        ("genres", c_char_p),
        ("max_runtime_min", c_int),
        ("exclude", POINTER(c_char_p)),
        ("exclude_count", c_size_t),
    ]


class Recommendation(Structure):
    _fields_ = [
        ("item_id", c_char_p),
        ("title", c_char_p),
        ("reason", c_char_p),
        ("score", c_double),
    ]


class Results(Structure):
    _fields_ = [
        ("items", POINTER(Recommendation)),
        ("capacity", c_size_t),
        ("text", c_void_p),
        ("text_size", c_size_t),
        ("count", c_size_t),
        ("text_needed", c_size_t),
    ]


class SyncResult(Structure):
    _fields_ = [
        (name, c_uint64)
        for name in (
            "pushed",
            "accepted",
            "pulled",
            "version",
            "push_bytes",
            "pull_bytes",
            "outbox_remaining",
        )
    ] + [("next_sync_after", c_double)]


_SIGNATURES: dict[str, list[Any]] = {
    "omega_config_new": [POINTER(c_void_p)],
    "omega_config_set_storage_path": [c_void_p, c_char_p],
    "omega_config_set_constellation_url": [c_void_p, c_char_p],
    "omega_config_set_sync_interval": [c_void_p, c_double],
    "omega_config_set_min_quality": [c_void_p, c_double],
    "omega_config_set_max_patterns": [c_void_p, c_size_t],
    "omega_config_set_manufacturer_certificate": [c_void_p, c_char_p, c_char_p],
    "omega_config_free": [c_void_p],
    "omega_brain_open": [c_void_p, POINTER(c_void_p)],
    "omega_brain_close": [c_void_p],
    "omega_import_catalog_file": [c_void_p, c_char_p, POINTER(c_size_t)],
    "omega_import_catalog": [c_void_p, POINTER(Item), c_size_t, POINTER(c_size_t)],
    "omega_track_view": [c_void_p, c_char_p, c_double, c_double, c_int],
    "omega_track_skip": [c_void_p, c_char_p, c_double],
    "omega_track_rating": [c_void_p, c_char_p, c_double],
    "omega_track_search": [c_void_p, c_char_p, POINTER(c_char_p), c_size_t, c_char_p],
    "omega_track_browse": [c_void_p, POINTER(c_char_p), c_size_t],
    "omega_recommend": [c_void_p, POINTER(Context), c_size_t, POINTER(Filters), POINTER(Results)],
    "omega_sync_now": [c_void_p, POINTER(SyncResult)],
    "omega_start_sync": [c_void_p],
    "omega_stop_sync": [c_void_p],
    "omega_stats": [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)],
}


def load(library: Path) -> ctypes.CDLL:
    """The library with every function's types set (status codes as ints)."""
    lib = ctypes.CDLL(str(library))
    for name, argtypes in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = c_int
    for name in ("omega_last_error", "omega_version"):
        getattr(lib, name).restype = c_char_p
        getattr(lib, name).argtypes = []
    lib.omega_status_name.restype = c_char_p
    lib.omega_status_name.argtypes = [c_int]
    return lib


def strings(values: list[bytes]) -> Any:
    return (c_char_p * len(values))(*values)
