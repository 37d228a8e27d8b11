"""`finbi dashboard` as a user starts and stops it: a taken port is refused before anything
starts, and a `kill` (SIGTERM) or a closed terminal (SIGHUP) stops the Streamlit server too."""

import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress

import psutil
import pytest

from finbi_pipeline.dashboard.server import free_port


def _finbi_dashboard(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "finbi_pipeline.cli", "dashboard", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_taken_port_is_refused_before_anything_starts():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        process = _finbi_dashboard(port)
        out, err = process.communicate(timeout=60)

    assert process.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert "Traceback" not in err
    assert "FinBI dashboard on" not in out  # no URL that another server answers


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["kill", "hangup"])
def test_a_stop_signal_stops_the_dashboard_server_too(stop_signal):
    port = free_port()
    process = _finbi_dashboard(port)
    children = []
    try:
        # Printed once the server answers (after Streamlit's own lines); "" at exit.
        while (line := process.stdout.readline()) and "FinBI dashboard on" not in line:
            pass
        assert "FinBI dashboard on" in line
        (streamlit,) = children = psutil.Process(process.pid).children()
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        streamlit.wait(timeout=15)  # raises if it outlives the command
        deadline = time.monotonic() + 10
        while _answers(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _answers(port)
    finally:
        if not children and process.poll() is None:
            children = psutil.Process(process.pid).children(recursive=True)
        for child in children:
            with suppress(psutil.NoSuchProcess):
                child.kill()
        process.kill()
        process.wait()
