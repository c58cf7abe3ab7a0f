"""``omega serve`` runs the constellation on uvicorn: start it, use it, stop it."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def test_omega_serve_starts_answers_and_stops(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "from omega.cli.main import run; run()",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path / "data"),
        "--federation-interval",
        "0",
        "--json",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, "".join(seen)
                continue
            seen.append(line)
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(seen)
        summary = json.loads("".join(seen[: seen.index("}\n") + 1]))
        assert summary["data_dir"] == str(tmp_path / "data")
        assert summary["federation_interval"] == 0

        assert httpx.get(url + "/healthz").json()["status"] == "ok"
        # Out of the box, a device without a manufacturer's certificate is refused.
        refused = httpx.post(url + "/api/omega/viewers")
        assert refused.status_code == 403
        assert refused.json()["type"].endswith("/attestation-required")
        assert (tmp_path / "data" / "constellation.db").exists()
        assert (tmp_path / "data" / "admin-token").exists()
        assert any((tmp_path / "data" / "jwt-keys").glob("*.pem"))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == 0
