import os
import signal
import subprocess
import sys
import time

SCRIPT = """
import time
from pmsr_chain import AnvilNode
node = AnvilNode()
node.start()
print(node._process.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_anvil_stops_when_parent_killed():
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        anvil_pid = int(parent.stdout.readline())
        assert _alive(anvil_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(anvil_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(anvil_pid)
    finally:
        parent.kill()
