"""A control API over a real ModelHost in a process whose files may not grow past a limit (a full disk).

Run as ``python tests/live/storage_child.py <state_dir> <fsize_limit_bytes>``: serves the API on a
free port, prints it, then lowers ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so a write past the limit fails
with EFBIG as on a full disk) and serves until killed.  Used by test_storage_errors.py.
"""

from __future__ import annotations

import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kpremia.run.live_config import ApiConfig  # noqa: E402
from kpremia.live.http.api import ApiServer, create_app  # noqa: E402
from kpremia.live.http.status import StatusSource  # noqa: E402
from kpremia.live.learning.challenger import ChallengerConfig  # noqa: E402
from kpremia.live.learning.host import ModelHost  # noqa: E402
from kpremia.run.live_config import OnlineLearnConfig  # noqa: E402
from kpremia.live.loop.storage import StorageAlarm  # noqa: E402
from tests.live.online_fixtures import tiny_module  # noqa: E402

TOKEN = "storage-test-token-0123456789abcdef"

if __name__ == "__main__":
    state_dir, limit = Path(sys.argv[1]), int(sys.argv[2])
    module, _, _ = tiny_module()
    host = ModelHost(module, state_dir, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    alarm = StorageAlarm()
    server = ApiServer(create_app(host, StatusSource(state_dir), TOKEN, alarm=alarm), ApiConfig(port=0))
    server.start()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    print(server.port, flush=True)
    while True:
        time.sleep(0.2)
        if alarm.tripped:
            print(f"alarm: {alarm.message}", flush=True)
            alarm = None  # print once
            while True:
                time.sleep(1)
