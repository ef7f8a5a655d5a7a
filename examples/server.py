"""A Modal 1.6 Server: a class whose ``@modal.enter()`` starts an HTTP server on ``port``.

``modalc build examples/server.py`` makes one Nomad service job, ``server-example-FileServer``:
two allocations (``min_containers``), each with a dynamic port mapped to 8000, a Nomad-native service
with a TCP check that may restart the task after ``startup_timeout``, and ``shutdown_delay`` for the
``exit_grace_period``. ``max_containers`` is printed as a build note (Nomad does not autoscale).
"""

import subprocess
import sys

import modal

app = modal.App("server-example")


@app.server(port=8000, min_containers=2, max_containers=4, startup_timeout=60, exit_grace_period=5,
            unauthenticated=True)
class FileServer:
    """Serves the container's working directory with Python's own http.server."""

    @modal.enter()
    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", "8000"])

    @modal.exit()
    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
