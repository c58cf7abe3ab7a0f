"""A scheduled federation round in a child process of the server.

``RoundRunner.run_scheduled`` (``omega.constellation.rounds``) starts
``python -m omega.constellation._round_child`` for each scheduled round. The job
(storage URL, time, worker id, helper settings) comes as JSON on stdin, so a database
password never shows in a process list; the result goes to stdout as one JSON line.

How the round shares the box with the server: contributions applied per transaction and
the pause after each (~40 ms of work, then 80 ms left to the server: the minute's
~600,000 rows at 500 syncs/s take ~15 s instead of bursting a core), LDP reports folded
per transaction (in the main file, whose lock pushes need), and a lower CPU priority for
the round's own thread (its storage writer threads keep the server's, so the main file's
lock is never held by a descheduled thread). With batches of 500 and 10 ms pauses, one
``omega bench server`` run failed at 500 syncs/s while the round ran (p95 121 ms); with
these, four runs in five held 500 or 600 across it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from omega.constellation.helper_client import HelperSettings, connect_cowatch, connect_helper
from omega.constellation.rounds import plain

__all__ = ["main"]

CHILD_APPLY_BATCH = 5000
CHILD_APPLY_PAUSE_S = 0.08
CHILD_REPORT_BATCH = 500
CHILD_NICE = 10


def main() -> None:
    """Run the round the job on stdin describes; print its result as one JSON line."""
    from omega.federation import FederationConfig, run_round
    from omega.storage.factory import open_storage

    job = json.loads(sys.stdin.read())
    storage = open_storage(job["storage_url"])  # its writer threads start here, un-niced
    if hasattr(os, "nice"):  # Linux: per thread, so this one only
        os.nice(CHILD_NICE)
    try:
        config = FederationConfig(
            apply_batch=CHILD_APPLY_BATCH,
            apply_pause_s=CHILD_APPLY_PAUSE_S,
            report_batch=CHILD_REPORT_BATCH,
        )
        helper = job.get("helper") or {}
        if helper.get("secret_file"):
            helper["secret_file"] = Path(helper["secret_file"])
        settings = HelperSettings(**helper)
        shares = connect_helper(settings)
        result = run_round(
            storage,
            config,
            now=job["now"],
            worker_id=job["worker_id"],
            shares=shares,
            cowatch=connect_cowatch(settings, shares),
        )
        if shares is not None:
            shares.close()
    finally:
        storage.close()
    sys.stdout.write(json.dumps(plain(result)) + "\n")


if __name__ == "__main__":
    main()
