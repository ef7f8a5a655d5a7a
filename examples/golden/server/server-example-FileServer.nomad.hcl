job "server-example-FileServer" {
  type        = "service"
  datacenters = ["*"]

  meta {
    modalc_app            = "server-example"
    modalc_format         = "1"
    modalc_function       = "FileServer"
    modalc_max_containers = "4"
    modalc_web            = "server"
  }

  group "FileServer" {
    count = 2

    restart {
      attempts = 3
      mode     = "delay"
    }

    network {
      port "http" {
        to = 8000
      }
    }

    service {
      name     = "server-example-FileServer"
      port     = "http"
      provider = "nomad"
      tags     = ["modalc", "modalc-app=server-example", "modalc-function=FileServer", "modalc-web=server"]

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "60s"
        }
      }
    }

    task "main" {
      driver         = "docker"
      kill_timeout   = "10s"
      shutdown_delay = "5s"

      config {
        image   = "modalc:c005c3b52cde4835"
        command = "python"
        args    = ["-m", "agent_runtime", "--serve", "web", "--code", "${NOMAD_TASK_DIR}/code", "--module", "server", "--qualname", "FileServer", "--port", "${NOMAD_PORT_http}", "--timeout", "300"]
        ports   = ["http"]
      }

      identity {
        file = true
      }

      env {
        MODALC_IMAGE        = "0257b6940541c842"
        MODALC_IN_CONTAINER = "1"
        PYTHONUNBUFFERED    = "1"
      }

      template {
        destination     = "local/code/server.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
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
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
