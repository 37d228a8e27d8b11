"""Start and stop the dashboard's Streamlit server (what `finbi dashboard` runs)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")
# The directory that holds the `finbi_pipeline` package. `streamlit run` puts only the
# script's own folder on sys.path, so the app could not import its package otherwise when
# the project is not installed.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Debian's Chromium, as Playwright drives it headless to look at the dashboard (the browser
# tests and scripts/dashboard_screenshot.py).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ServerStartError(RuntimeError):
    """A server could not be started: its port is taken, or it exited or never answered."""


def serve(
    host: str = "127.0.0.1",
    port: int = 8501,
    home: Path | None = None,
    *,
    ready_timeout: float | None = 60.0,
) -> subprocess.Popen:
    """Start `streamlit run app.py` in a child process and return it.

    `home` is the FINBI_HOME the dashboard reads (default: $FINBI_HOME, else `.finbi`), made
    absolute so the child does not depend on its working directory. With `ready_timeout`
    set, waits until the server answers its health check; raises ServerStartError if the
    port is taken, or (after stopping the child) if it exits or does not answer in time.
    """
    check_port_free(host, port)
    home = Path(home or os.environ.get("FINBI_HOME") or ".finbi").resolve()
    env = dict(os.environ, FINBI_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # The app watches its data file itself; watching source files is a dev feature.
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
        "--theme.primaryColor", "#4C78A8",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    if ready_timeout is not None:
        try:
            wait_until_ready(process, host, port, ready_timeout)
        except BaseException:
            stop(process)
            raise
    return process


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Raise ServerStartError when something already listens on `host:port`: a health check
    there would be answered by that server, not by the one about to start."""
    with socket.socket() as sock:
        # As servers bind (Streamlit's Tornado does): only a live listener refuses it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServerStartError(
                f"port {port} on {host} is in use ({exc.strerror}): stop what serves there, "
                "or pick another port"
            ) from None


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP (a `kill`, a closed terminal) interrupt as Ctrl-C does,
    so the cleanup that stops the servers started there runs for them too."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


def wait_until_ready(process: subprocess.Popen, host: str, port: int, timeout: float) -> None:
    """Poll Streamlit's health endpoint until it answers, the process dies, or time is up."""
    deadline = time.monotonic() + timeout
    health = url(host, port) + "_stcore/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"dashboard server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise ServerStartError(f"dashboard server did not answer {health} within {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_forever(host: str = "127.0.0.1", port: int = 8501, home: Path | None = None) -> int:
    """Serve the dashboard until the server exits, Ctrl-C, SIGTERM or SIGHUP; returns the
    exit code."""
    with stop_signals_interrupt():
        process = serve(host, port, home)
        print(f"FinBI dashboard on {url(host, port)} (Ctrl-C to stop)", flush=True)
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop(process)
            return 0
