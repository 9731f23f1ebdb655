"""The served process's own log lines carry a time, a process and a level.

Without a logging configuration the application's warnings (an HSM outage, a
revocation responder skipped, a WAL checkpoint that failed) reach stderr as bare
messages: no time, so an operator cannot line them up with the access log. Each
worker configures logging when it boots and says so.
"""

from __future__ import annotations

import re
import time

import requests
from live_server import LiveServer

# gunicorn's own format for its lines, which the application's lines share:
# [2026-11-30 09:00:00 +0000] [1234] [INFO] app.serving: …
LINE = re.compile(
    r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[(\d+)\] \[(INFO|WARNING)\] "
    r"app\.serving\.gunicorn_conf: worker ready: dairi "
)


def test_each_worker_logs_that_it_is_ready_with_time_process_and_level(app_settings):
    with LiveServer(app_settings, workers=2) as server:
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        # The second worker may still be loading the application (a loaded machine).
        deadline = time.monotonic() + 90
        while True:
            log = server.log()
            ready = [m for line in log.splitlines() if (m := LINE.match(line))]
            if len(ready) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert len({m.group(1) for m in ready}) == 2, log[-3000:]
    assert "pin" not in "\n".join(m.string.lower() for m in ready)
