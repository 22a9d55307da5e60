"""`dfdet app`: the Streamlit page (streamlit_app.py), the logic it calls (backend.py) and the server launcher here.

The launcher only builds and runs the `streamlit run` command line; it imports neither streamlit nor torch, so
`dfdet app --help` stays fast and a missing streamlit gives one clear error instead of an ImportError.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from dfdet.errors import DfdetError, UsageError

PAGE = Path(__file__).with_name("streamlit_app.py")
INSTALL_HINT = "pip install 'dfdet[app]' (or `make venv`, which installs the app extra)"


def streamlit_available() -> bool:
    """True when the optional `streamlit` dependency can be imported."""
    return importlib.util.find_spec("streamlit") is not None


def page_args(
    models: str | os.PathLike | None = None,
    detector: str | os.PathLike | None = None,
    max_upload_mb: int = 50,
    min_seconds: float | None = None,
) -> list[str]:
    """The arguments the page reads from its own argv (after `--`); paths made absolute for the server process."""
    if (models is None) == (detector is None):
        raise UsageError(
            "pass exactly one of --models DIR and --detector FILE",
            "e.g. dfdet app --models demo (a directory of models, calibration and ensemble JSONs)",
        )
    args = ["--models", os.path.abspath(models)] if models is not None else ["--detector", os.path.abspath(detector)]
    args += ["--max-upload-mb", str(int(max_upload_mb))]
    if min_seconds is not None:
        args += ["--min-seconds", repr(float(min_seconds))]
    return args


def server_command(
    port: int = 8501,
    max_upload_mb: int = 50,
    args: Sequence[str] = (),
    python: str | None = None,
) -> list[str]:
    """`python -m streamlit run PAGE` bound to localhost, headless, with the upload limit, then `-- args`."""
    return [
        python or sys.executable,
        "-m",
        "streamlit",
        "run",
        str(PAGE),
        "--server.address",
        "localhost",
        "--server.port",
        str(int(port)),
        "--server.maxUploadSize",
        str(int(max_upload_mb)),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--",
        *args,
    ]


def check_port(port: int, host: str = "localhost") -> None:
    """Refuse a port something already listens on, with a one-line fix (streamlit would print a traceback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise DfdetError(f"port {port} on {host} is not free ({e.strerror or e})", "pass --port N") from None


def _open_when_up(url: str, timeout: float = 60.0) -> None:
    """Open the browser once the server answers (a thread; never raises)."""
    import webbrowser

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "_stcore/health", timeout=2):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.5)


def serve(command: Sequence[str], url: str, open_browser: bool = True) -> int:
    """Run the streamlit server until it exits or Ctrl-C; returns its exit status."""
    if not streamlit_available():
        raise DfdetError("streamlit is not installed, so the web app cannot start", INSTALL_HINT)
    proc = subprocess.Popen(list(command))
    if open_browser:
        threading.Thread(target=_open_when_up, args=(url,), daemon=True).start()
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
