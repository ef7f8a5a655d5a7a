job "built-image-greet" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "built-image"
    modalc_format   = "1"
    modalc_function = "greet"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "greet" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "main" {
      driver       = "docker"
      kill_timeout = "10s"

      config {
        image   = "modalc:84cc120ac7ea0cc7"
        command = "python"
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "built_image", "--qualname", "greet", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
      }

      dispatch_payload {
        file = "call.pkl"
      }

      identity {
        file = true
      }

      env {
        MODALC_IMAGE        = "45974d83cbd34410"
        MODALC_IN_CONTAINER = "1"
        PYTHONUNBUFFERED    = "1"
      }

      template {
        destination     = "local/code/built_image.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""A built image: apt and pip packages, environment, commands and local files.

modalc writes a content-addressed Dockerfile for the image next to the job
specs (``images/<hash>/Dockerfile``); the jobs reference it by tag.

    modalc build examples/built_image.py -o deploy/
"""

import json
import os

import modal

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("curl", "jq")
    .pip_install("requests==2.32.3", "pyyaml>=6")
    .env({"APP_MODE": "production", "LOG_LEVEL": "info"})
    .run_commands("mkdir -p /opt/app", "echo built > /opt/app/stamp")
    .add_local_file("assets/greeting.txt", "/opt/app/greeting.txt")
    .add_local_dir("assets/config", "/opt/app/config")
)

app = modal.App("built-image", image=image)


def _read(path: str, fallback: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return fallback


@app.function()
def greet(name: str) -> str:
    """Reads the greeting and settings that the image carries."""
    settings = json.loads(_read("/opt/app/config/settings.json", '{"greeting": "hello", "repeat": 1}'))
    mode = os.environ.get("APP_MODE", "local")
    return " ".join([settings["greeting"]] * settings["repeat"]) + f", {name} ({mode})"


@app.local_entrypoint()
def main(name: str = "world"):
    print(greet.remote(name))
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
