"""Bad arguments through the C API (libomega.so loaded with ctypes): the right code and
a sentence naming the function, never a crash; caller-owned buffers that are too small
say the size they need."""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Iterator
from ctypes import byref, c_size_t, c_void_p
from pathlib import Path

import pytest
from _omega_ctypes import UNKNOWN, Context, Filters, Item, Recommendation, Results, strings
from _sdk_world import synthetic_brain

from omega.sdk import Status

NAN = math.nan


def error(lib: ctypes.CDLL) -> str:
    return lib.omega_last_error().decode()


def config_for(lib: ctypes.CDLL, directory: Path | None) -> c_void_p:
    config = c_void_p()
    assert lib.omega_config_new(byref(config)) == Status.OK
    if directory is not None:
        assert lib.omega_config_set_storage_path(config, str(directory).encode()) == Status.OK
    return config


def open_brain(lib: ctypes.CDLL, directory: Path) -> c_void_p:
    config, brain = config_for(lib, directory), c_void_p()
    assert lib.omega_brain_open(config, byref(brain)) == Status.OK, error(lib)
    assert lib.omega_config_free(config) == Status.OK
    return brain


@pytest.fixture
def brain(lib: ctypes.CDLL, tmp_path: Path) -> Iterator[c_void_p]:
    handle = open_brain(lib, synthetic_brain(tmp_path / "brain", 60))
    yield handle
    lib.omega_brain_close(handle)


def results_for(capacity: int, text_size: int) -> tuple[Results, ctypes.Array[ctypes.c_char]]:
    items = (Recommendation * max(capacity, 1))()
    text = ctypes.create_string_buffer(text_size)
    return Results(items, capacity, ctypes.cast(text, c_void_p), text_size, 0, 0), text


def test_null_handles_are_input_errors_that_name_the_function(lib: ctypes.CDLL) -> None:
    calls = {
        "omega_track_view": lambda: lib.omega_track_view(None, b"m1", 0.5, UNKNOWN, 0),
        "omega_recommend": lambda: lib.omega_recommend(None, None, 5, None, None),
        "omega_sync_now": lambda: lib.omega_sync_now(None, None),
        "omega_stats": lambda: lib.omega_stats(None, None, 0, None),
        "omega_config_set_storage_path": lambda: lib.omega_config_set_storage_path(None, b"x"),
        "omega_brain_open": lambda: lib.omega_brain_open(None, byref(c_void_p())),
        "omega_config_new": lambda: lib.omega_config_new(None),
    }
    for name, call in calls.items():
        assert call() == Status.INPUT, name
        assert error(lib).startswith(f"{name}: "), error(lib)
        assert "NULL" in error(lib)
    # Freeing or closing NULL is fine, as free(NULL) is.
    assert lib.omega_config_free(None) == Status.OK
    assert lib.omega_brain_close(None) == Status.OK
    assert error(lib) == ""


def test_a_closed_or_mistyped_handle_is_an_input_error(lib: ctypes.CDLL, tmp_path: Path) -> None:
    directory = synthetic_brain(tmp_path / "brain", 20)
    config = config_for(lib, directory)
    brain = c_void_p()
    assert lib.omega_brain_open(config, byref(brain)) == Status.OK
    assert lib.omega_track_view(config, b"m1", 0.5, UNKNOWN, 0) == Status.INPUT  # a config
    assert "brain is not an open handle" in error(lib)
    assert lib.omega_brain_close(brain) == Status.OK
    assert lib.omega_track_view(brain, b"m1", 0.5, UNKNOWN, 0) == Status.INPUT
    assert "not an open handle" in error(lib)
    assert lib.omega_brain_close(brain) == Status.INPUT  # twice
    assert lib.omega_config_free(config) == Status.OK
    assert lib.omega_config_set_min_quality(config, 0.5) == Status.INPUT


def test_nan_and_out_of_range_numbers(lib: ctypes.CDLL, brain: c_void_p) -> None:
    assert lib.omega_track_view(brain, b"m1", NAN, UNKNOWN, 0) == Status.INPUT
    assert error(lib) == "omega_track_view: watch_fraction must be finite, got nan"
    assert lib.omega_track_view(brain, b"m1", 1.5, UNKNOWN, 0) == Status.INPUT
    assert lib.omega_track_view(brain, b"m1", UNKNOWN, NAN, 0) == Status.INPUT
    assert lib.omega_track_view(brain, b"m1", UNKNOWN, UNKNOWN, 0) == Status.INPUT
    assert "needs watch_fraction, duration_s or completed" in error(lib)
    assert lib.omega_track_skip(brain, b"m1", NAN) == Status.INPUT
    assert lib.omega_track_rating(brain, b"m1", NAN) == Status.INPUT
    assert lib.omega_track_rating(brain, b"m1", 7.0) == Status.INPUT
    assert lib.omega_track_view(brain, b"m1", UNKNOWN, UNKNOWN, 1) == Status.OK  # completed
    assert error(lib) == ""
    config = config_for(lib, None)
    for setter, value in [
        (lib.omega_config_set_sync_interval, NAN),
        (lib.omega_config_set_sync_interval, 0.0),
        (lib.omega_config_set_min_quality, NAN),
        (lib.omega_config_set_min_quality, 1.5),
        (lib.omega_config_set_max_patterns, 0),
    ]:
        assert setter(config, value) == Status.CONFIG
    assert lib.omega_config_set_constellation_url(config, b"ftp://x") == Status.CONFIG
    assert "must start with http:// or https://" in error(lib)
    lib.omega_config_free(config)


def test_unknown_items_and_bad_strings(lib: ctypes.CDLL, brain: c_void_p) -> None:
    assert lib.omega_track_view(brain, b"no-such", 0.5, UNKNOWN, 0) == Status.INPUT
    assert "unknown item 'no-such'" in error(lib)
    assert lib.omega_track_skip(brain, b"\xff\xfe", 3.0) == Status.INPUT
    assert error(lib) == "omega_track_skip: item_id is not UTF-8"
    assert lib.omega_track_browse(brain, strings([b"m1", b"nope"]), 2) == Status.INPUT
    assert lib.omega_track_browse(brain, None, 3) == Status.INPUT
    assert "items is NULL with a count of 3" in error(lib)
    assert lib.omega_track_search(brain, b"", strings([b"m1"]), 1, None) == Status.INPUT
    assert lib.omega_track_search(brain, b"heat", strings([b"m1", b"m2"]), 2, b"m2") == Status.OK
    assert lib.omega_track_browse(brain, strings([b"m3", b"m4"]), 2) == Status.OK


def test_too_small_buffers_say_the_size_they_need(lib: ctypes.CDLL, brain: c_void_p) -> None:
    assert lib.omega_track_view(brain, b"m1", 0.9, UNKNOWN, 0) == Status.OK
    results, _ = results_for(3, 4096)
    assert lib.omega_recommend(brain, None, 5, None, byref(results)) == Status.BUFFER
    assert results.count == 5  # entries needed
    assert "results.items (its capacity) needs 5, got 3" in error(lib)
    results, text = results_for(5, 8)
    assert lib.omega_recommend(brain, None, 5, None, byref(results)) == Status.BUFFER
    needed = results.text_needed
    assert needed > 8 and results.count == 5
    assert text.raw == bytes(8)  # nothing written
    results, text = results_for(5, needed)
    assert lib.omega_recommend(brain, None, 5, None, byref(results)) == Status.OK
    assert results.count == 5 and results.text_needed == needed
    titles = [results.items[i].title.decode() for i in range(5)]
    assert all(t.startswith("Title ") for t in titles)
    assert all(results.items[i].reason for i in range(5))
    size = c_size_t()
    assert lib.omega_stats(brain, None, 0, byref(size)) == Status.BUFFER
    small = ctypes.create_string_buffer(16)
    assert lib.omega_stats(brain, small, 16, None) == Status.BUFFER
    assert small.raw == bytes(16)
    full = ctypes.create_string_buffer(size.value)
    assert lib.omega_stats(brain, full, size.value, None) == Status.OK
    assert len(full.value) + 1 == size.value
    assert b'"items": 60' in full.value and b'"sync": {"state": "off"}' in full.value


def test_context_and_filters(lib: ctypes.CDLL, brain: c_void_p) -> None:
    results, _ = results_for(10, 8192)
    only = Filters(b"Comedy", 120, strings([b"m3", b"m5"]), 2)
    evening = Context(3, 2)
    assert lib.omega_recommend(brain, byref(evening), 10, byref(only), byref(results)) == Status.OK
    chosen = [results.items[i].item_id.decode() for i in range(results.count)]
    assert chosen and "m3" not in chosen and "m5" not in chosen
    assert all(int(c[1:]) % 2 == 1 for c in chosen)  # odd ids are the comedies (m1, m3, …)
    assert (
        lib.omega_recommend(brain, byref(Context(9, 0)), 10, None, byref(results)) == Status.INPUT
    )
    assert "no such time_bucket 9" in error(lib)
    assert lib.omega_recommend(brain, None, 0, None, byref(results)) == Status.INPUT
    negative = Filters(None, -5, None, 0)
    assert lib.omega_recommend(brain, None, 5, byref(negative), byref(results)) == Status.INPUT


def test_configuration_errors(lib: ctypes.CDLL, tmp_path: Path) -> None:
    config, brain = config_for(lib, None), c_void_p()
    assert lib.omega_brain_open(config, byref(brain)) == Status.CONFIG
    assert "no storage path" in error(lib) and brain.value is None
    directory = synthetic_brain(tmp_path / "brain", 10)
    assert lib.omega_config_set_storage_path(config, str(directory).encode()) == Status.OK
    assert lib.omega_brain_open(config, byref(brain)) == Status.OK
    again = c_void_p()
    assert lib.omega_brain_open(config, byref(again)) == Status.CONFIG
    assert "is open already in this process" in error(lib)
    assert lib.omega_sync_now(brain, None) == Status.CONFIG
    assert "no constellation URL" in error(lib)
    missing = str(tmp_path / "missing.cert").encode()
    assert lib.omega_config_set_manufacturer_certificate(config, missing, missing) == Status.CONFIG
    assert "cannot read the device certificate" in error(lib)
    lib.omega_brain_close(brain)
    lib.omega_config_free(config)


def test_an_unreachable_constellation_is_a_network_error(lib: ctypes.CDLL, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}".encode()
        config = config_for(lib, synthetic_brain(tmp_path / "brain", 10))
        assert lib.omega_config_set_constellation_url(config, url) == Status.OK
        brain = c_void_p()
        assert lib.omega_brain_open(config, byref(brain)) == Status.OK
        assert lib.omega_sync_now(brain, None) == Status.NETWORK
        assert error(lib).startswith("omega_sync_now: ")
        lib.omega_brain_close(brain)
        lib.omega_config_free(config)


def test_import_records_and_their_errors(lib: ctypes.CDLL, tmp_path: Path) -> None:
    brain = open_brain(lib, tmp_path / "fresh")
    try:
        records = (Item * 2)(
            Item(b"a1", b"Heat", b"Crime|Thriller", 1995, 170, None),
            Item(b"a2", None, None, 0, 0, None),
        )
        count = c_size_t(99)
        assert lib.omega_import_catalog(brain, records, 2, byref(count)) == Status.INPUT
        assert (
            error(lib) == "omega_import_catalog: items[1] needs an item_id (or movieId) and a title"
        )
        assert count.value == 99  # nothing imported
        records[1] = Item(b"a2", b"Casino", b"Crime|Drama", 1995, 178, b"Las Vegas, the mob.")
        assert lib.omega_import_catalog(brain, records, 2, byref(count)) == Status.OK
        assert count.value == 2
        assert lib.omega_import_catalog(brain, None, 1, None) == Status.INPUT
        assert lib.omega_track_view(brain, b"a1", 0.95, UNKNOWN, 1) == Status.OK
    finally:
        lib.omega_brain_close(brain)


def test_the_last_error_is_per_thread(lib: ctypes.CDLL, brain: c_void_p) -> None:
    seen: dict[str, str] = {}

    def other() -> None:
        seen["before"] = error(lib)
        lib.omega_track_rating(brain, b"m1", 9.0)
        seen["after"] = error(lib)

    assert lib.omega_track_view(brain, b"nope", 0.5, UNKNOWN, 0) == Status.INPUT
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["before"] == ""
    assert "stars must be within" in seen["after"]
    assert "unknown item 'nope'" in error(lib)
