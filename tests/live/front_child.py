"""A process that serves the control API the way a live session does (uvicorn behind the front door).

Run as ``python tests/live/front_child.py <state_dir>`` with the token in ``KPREMIA_API_TOKEN``: prints
``<public port> <front door pid>`` and serves until killed.  Used by test_front_door.py to kill it with
SIGKILL (no ``on_stop``, no cleanup) and watch the front door go too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kpremia.run.live_config import ApiConfig  # noqa: E402
from kpremia.live.http.api import create_app  # noqa: E402
from kpremia.live.http.front_process import FrontedApi  # noqa: E402
from kpremia.live.http.status import StatusSource  # noqa: E402
from kpremia.live.learning.challenger import ChallengerConfig  # noqa: E402
from kpremia.live.learning.host import ModelHost  # noqa: E402
from kpremia.live.loop.storage import StorageAlarm  # noqa: E402
from kpremia.run.live_config import OnlineLearnConfig  # noqa: E402
from tests.live.online_fixtures import tiny_module  # noqa: E402

if __name__ == "__main__":
    state_dir = Path(sys.argv[1])
    token = os.environ["KPREMIA_API_TOKEN"]
    module, _, _ = tiny_module()
    host = ModelHost(module, state_dir, learn=OnlineLearnConfig(), challenger=ChallengerConfig(enabled=False))
    alarm = StorageAlarm()
    api = FrontedApi(create_app(host, StatusSource(state_dir), token, alarm=alarm), ApiConfig(port=0), token, alarm)
    api.start()
    print(api.port, api.front.pid, flush=True)
    while True:
        time.sleep(1)
