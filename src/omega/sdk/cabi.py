"""The C ABI of libomega.so: the Python side of each function in omega.h.

The build declares each C function ``omega_x`` as a cffi ``extern "Python"`` function
``_omega_py_x`` and the library's init code calls :func:`install`, which binds each to
the method ``x`` of :class:`CApi`. A method turns the C arguments into a call on
:mod:`omega.sdk.device` (or the brain) and writes the answer into the caller's memory.

Every entry returns a status and never raises: an error becomes its code
(:func:`omega.sdk.status.status_for`) and a sentence naming the C function, kept per
thread for ``omega_last_error()`` by the C side. Handles are numbers in a table
(:class:`Handles`) cast to the opaque pointer types: a freed or closed handle is an
unknown number — an input error, never a dangling pointer.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from omega.brain import CatalogItem, Context, Filters
from omega.brain.catalog_file import catalog_item, read_catalog
from omega.brain.episodes import context_at
from omega.errors import InputError
from omega.sdk.device import Device, DeviceSettings
from omega.sdk.status import BufferTooSmall, Status, status_for

__all__ = ["CApi", "Handles", "install"]

log = logging.getLogger(__name__)
T = TypeVar("T")
#: The C side's buffer for a sentence (runtime.c: OMEGA_ERROR_SIZE), its NUL aside.
MAX_SENTENCE_BYTES = 1023
#: Bounds on counts a caller passes with an array: past them, the count is surely wrong
#: (and reading that far would read memory that is not the array).
MAX_RECORDS = 1_000_000
MAX_STRINGS = 100_000
#: The most recommendations one call gives (``Brain.recommend``'s bound).
MAX_K = 1000
#: OMEGA_UNKNOWN in omega.h.
UNKNOWN = -1.0
_TIME_BUCKETS = {1: "morning", 2: "afternoon", 3: "evening", 4: "night"}
_DAY_TYPES = {1: "weekday", 2: "weekend"}


class Handles:
    """Live objects by number. Numbers are never reused, so a stale handle is unknown."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[int, object] = {}
        self._numbers = itertools.count(1)

    def add(self, value: object) -> int:
        with self._lock:
            number = next(self._numbers)
            self._objects[number] = value
            return number

    def get(self, number: int, kind: type[T], what: str) -> T:
        value = self._objects.get(number)
        if number == 0:
            raise InputError(f"{what} is NULL")
        if not isinstance(value, kind):
            raise InputError(f"{what} is not an open handle (closed, freed, or never one)")
        return value

    def pop(self, number: int, kind: type[T], what: str) -> T:
        with self._lock:
            value = self.get(number, kind, what)
            del self._objects[number]
            return value

    def __len__(self) -> int:
        return len(self._objects)


def install(ffi: Any, lib: Any, names: Iterable[str]) -> CApi:
    """Bind each C function in ``names`` (``omega_x``) to its method (``x``)."""
    api = CApi(ffi, lib)
    for c_name in names:
        short = c_name.removeprefix("omega_")
        method = getattr(api, short, None)
        if method is None:
            raise InputError(f"this Omega package has no {c_name}: rebuild the library")
        entry = api.entry(c_name, method)
        ffi.def_extern(name=f"_omega_py_{short}", error=int(Status.ERROR))(entry)
    return api


class CApi:
    """The C functions' Python halves; arguments are cffi's C data."""

    def __init__(self, ffi: Any, lib: Any) -> None:
        self.ffi, self.lib = ffi, lib
        self.handles = Handles()

    def entry(self, c_name: str, method: Callable[..., None]) -> Callable[..., int]:
        """``method`` as an entry point: OMEGA_OK, or the error's code and sentence."""

        def call(*args: Any) -> int:
            try:
                method(*args)
            except BaseException as exc:  # nothing may unwind into C
                return int(self._failed(c_name, exc))
            return int(Status.OK)

        return call

    def _failed(self, c_name: str, error: BaseException) -> Status:
        status = status_for(error)
        if status is Status.ERROR:
            log.error("%s failed unexpectedly", c_name, exc_info=error)
            sentence = f"{c_name}: unexpected {type(error).__name__}: {error}"
        else:
            sentence = f"{c_name}: {error}"
        encoded = sentence.encode("utf-8")[:MAX_SENTENCE_BYTES]
        self.lib._omega_set_error(encoded.decode("utf-8", "ignore").encode("utf-8"))
        return status

    # -- reading the caller's C data -----------------------------------------------------
    def _number(self, handle: Any) -> int:
        return int(self.ffi.cast("uintptr_t", handle))

    def _text(self, pointer: Any, what: str) -> str:
        if pointer == self.ffi.NULL:
            raise InputError(f"{what} is NULL")
        try:
            text: str = self.ffi.string(pointer).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what} is not UTF-8") from None
        return text

    def _optional_text(self, pointer: Any, what: str) -> str:
        return "" if pointer == self.ffi.NULL else self._text(pointer, what)

    def _texts(self, array: Any, count: int, what: str) -> list[str]:
        if count > MAX_STRINGS:
            raise InputError(f"{what}: a count of {count} is past {MAX_STRINGS}")
        if count and array == self.ffi.NULL:
            raise InputError(f"{what} is NULL with a count of {count}")
        return [self._text(array[i], f"{what}[{i}]") for i in range(count)]

    def _out(self, pointer: Any, what: str) -> Any:
        if pointer == self.ffi.NULL:
            raise InputError(f"{what} (where the answer goes) is NULL")
        return pointer

    def _settings(self, handle: Any) -> DeviceSettings:
        return self.handles.get(self._number(handle), DeviceSettings, "config")

    def _device(self, handle: Any) -> Device:
        return self.handles.get(self._number(handle), Device, "brain")

    # -- configuration -------------------------------------------------------------------
    def config_new(self, out: Any) -> None:
        self._out(out, "config")[0] = self.ffi.cast("omega_config *", 0)
        out[0] = self.ffi.cast("omega_config *", self.handles.add(DeviceSettings()))

    def config_set_storage_path(self, config: Any, path: Any) -> None:
        self._settings(config).set_storage_path(self._text(path, "path"))

    def config_set_constellation_url(self, config: Any, url: Any) -> None:
        self._settings(config).set_constellation_url(self._text(url, "url"))

    def config_set_sync_interval(self, config: Any, seconds: float) -> None:
        self._settings(config).set_sync_interval(seconds)

    def config_set_min_quality(self, config: Any, quality: float) -> None:
        self._settings(config).set_min_quality(quality)

    def config_set_max_patterns(self, config: Any, count: int) -> None:
        self._settings(config).set_max_patterns(count)

    def config_set_manufacturer_certificate(
        self, config: Any, certificate: Any, device_key: Any
    ) -> None:
        settings = self._settings(config)
        certificate_path = Path(self._text(certificate, "certificate_path"))
        settings.set_identity(certificate_path, Path(self._text(device_key, "device_key_path")))

    def config_free(self, config: Any) -> None:
        if config != self.ffi.NULL:
            self.handles.pop(self._number(config), DeviceSettings, "config")

    # -- the brain -----------------------------------------------------------------------
    def brain_open(self, config: Any, out: Any) -> None:
        self._out(out, "brain")[0] = self.ffi.cast("omega_brain *", 0)
        device = Device(self._settings(config))
        out[0] = self.ffi.cast("omega_brain *", self.handles.add(device))

    def brain_close(self, brain: Any) -> None:
        if brain != self.ffi.NULL:
            self.handles.pop(self._number(brain), Device, "brain").close()

    def import_catalog_file(self, brain: Any, path: Any, imported: Any) -> None:
        device = self._device(brain)
        count = device.brain.upsert_items(read_catalog(Path(self._text(path, "path"))))
        if imported != self.ffi.NULL:
            imported[0] = count

    def import_catalog(self, brain: Any, items: Any, count: int, imported: Any) -> None:
        device = self._device(brain)
        if count > MAX_RECORDS:
            raise InputError(f"a count of {count} titles is past {MAX_RECORDS}")
        if count and items == self.ffi.NULL:
            raise InputError(f"items is NULL with a count of {count}")
        done = device.brain.upsert_items([self._item(items[i], i) for i in range(count)])
        if imported != self.ffi.NULL:
            imported[0] = done

    def _item(self, record: Any, n: int) -> CatalogItem:
        fields: dict[str, object] = {
            name: self._optional_text(getattr(record, name), f"items[{n}].{name}")
            for name in ("item_id", "title", "genres", "description")
        }
        fields |= {"year": record.year or None, "runtime_min": record.runtime_min or None}
        return catalog_item(fields, f"items[{n}]")

    # -- tracking ------------------------------------------------------------------------
    def track_view(
        self, brain: Any, item_id: Any, fraction: float, duration_s: float, completed: int
    ) -> None:
        self._device(brain).brain.track_view(
            self._text(item_id, "item_id"),
            watch_fraction=None if fraction == UNKNOWN else fraction,
            duration_s=None if duration_s == UNKNOWN else duration_s,
            completed=bool(completed),
        )

    def track_skip(self, brain: Any, item_id: Any, at_seconds: float) -> None:
        self._device(brain).brain.track_skip(self._text(item_id, "item_id"), at_seconds=at_seconds)

    def track_rating(self, brain: Any, item_id: Any, stars: float) -> None:
        self._device(brain).brain.track_rating(self._text(item_id, "item_id"), stars)

    def track_search(self, brain: Any, query: Any, results: Any, count: int, selected: Any) -> None:
        device = self._device(brain)
        chosen = None if selected == self.ffi.NULL else self._text(selected, "selected")
        shown = self._texts(results, count, "results")
        device.brain.track_search(self._text(query, "query"), shown, chosen)

    def track_browse(self, brain: Any, items: Any, count: int) -> None:
        device = self._device(brain)
        device.brain.track_browse(self._texts(items, count, "items"))

    # -- recommending --------------------------------------------------------------------
    def recommend(self, brain: Any, context: Any, k: int, filters: Any, results: Any) -> None:
        device = self._device(brain)
        out = self._out(results, "results")
        out.count = out.text_needed = 0
        if not 1 <= k <= MAX_K:
            raise InputError(f"k must be within [1, {MAX_K}], got {k}")
        if out.capacity < k:
            out.count = k
            raise BufferTooSmall("results.items (its capacity)", k, out.capacity)
        if out.items == self.ffi.NULL:
            raise InputError("results->items is NULL")
        recs = device.brain.recommend(
            k, context=self._context(device, context), filters=self._filters(filters)
        )
        fields = [
            (r.item_id.encode() + b"\0", r.title.encode() + b"\0", r.reason.encode() + b"\0")
            for r in recs
        ]
        blob = b"".join(b"".join(three) for three in fields)
        out.text_needed = len(blob)
        if len(blob) > out.text_size or (blob and out.text == self.ffi.NULL):
            out.count = len(recs)
            raise BufferTooSmall("results.text (its text_size)", len(blob), out.text_size)
        self.ffi.memmove(out.text, blob, len(blob))
        at = 0
        for n, (rec, (item_id, title, reason)) in enumerate(zip(recs, fields, strict=True)):
            entry = out.items[n]
            entry.item_id = out.text + at
            entry.title = out.text + at + len(item_id)
            entry.reason = out.text + at + len(item_id) + len(title)
            entry.score = rec.score
            at += len(item_id) + len(title) + len(reason)
        out.count = len(recs)

    def _context(self, device: Device, context: Any) -> Context | None:
        if context == self.ffi.NULL:
            return None
        bucket, day = int(context.time_bucket), int(context.day_type)
        if bucket not in (0, *_TIME_BUCKETS) or day not in (0, *_DAY_TYPES):
            raise InputError(f"context has no such time_bucket {bucket} or day_type {day}")
        now = context_at(device.brain.clock.now())
        return Context(
            time_bucket=_TIME_BUCKETS.get(bucket, now.time_bucket),  # type: ignore[arg-type]
            day_type=_DAY_TYPES.get(day, now.day_type),  # type: ignore[arg-type]
        )

    def _filters(self, filters: Any) -> Filters | None:
        if filters == self.ffi.NULL:
            return None
        genres = self._optional_text(filters.genres, "filters->genres")
        if filters.max_runtime_min < 0:
            raise InputError(f"filters->max_runtime_min must be ≥ 0, got {filters.max_runtime_min}")
        return Filters(
            genres=tuple(g for g in genres.split("|") if g),
            max_runtime_min=filters.max_runtime_min or None,
            exclude=frozenset(self._texts(filters.exclude, filters.exclude_count, "exclude")),
        )

    # -- sync ----------------------------------------------------------------------------
    def sync_now(self, brain: Any, result: Any) -> None:
        done = self._device(brain).sync_now()
        if result != self.ffi.NULL:
            result.pushed, result.accepted, result.pulled = done.pushed, done.accepted, done.pulled
            result.version = done.version
            result.push_bytes, result.pull_bytes = done.push_bytes, done.pull_bytes
            result.outbox_remaining = done.outbox_remaining
            result.next_sync_after = done.next_sync_after

    def start_sync(self, brain: Any) -> None:
        self._device(brain).start_sync()

    def stop_sync(self, brain: Any) -> None:
        self._device(brain).stop_sync()

    # -- introspection -------------------------------------------------------------------
    def stats(self, brain: Any, json_out: Any, size: int, needed: Any) -> None:
        device = self._device(brain)
        data = json.dumps(_plain(device.stats())).encode() + b"\0"
        if needed != self.ffi.NULL:
            needed[0] = len(data)
        if len(data) > size:
            raise BufferTooSmall("the JSON", len(data), size)
        self.ffi.memmove(self._out(json_out, "json"), data, len(data))


def _plain(value: object) -> object:
    """JSON-ready: non-finite floats as null, numpy scalars as numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    return item() if callable(item) else value
