"""The recording SIGINT/SIGTERM handler: in the CLI's own process it raises, in a forked child it never unwinds."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A child forked after install() (as a pool worker is, before its initializer resets the handlers) and signalled at
# once: it must die of the signal, not raise KeyboardInterrupt into the copy of the parent's stack it runs on.
FORKED = """
import os, signal, sys, time
from dfdet import interrupts
interrupts.install()
pid = os.fork()
if pid == 0:
    try:
        time.sleep(30)
    except KeyboardInterrupt:
        print("child unwound", flush=True)
        os._exit(7)
    os._exit(0)
time.sleep(0.3)
os.kill(pid, signal.SIGTERM)
_, status = os.waitpid(pid, 0)
print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, interrupts.requested())
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except KeyboardInterrupt:
    print("parent interrupted", interrupts.requested())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_dies_of_the_signal_and_the_parent_raises():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", FORKED], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.splitlines() == ["True False", "parent interrupted True"]
