job "imports-guard-plain-sum" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "imports-guard"
    modalc_format   = "1"
    modalc_function = "plain_sum"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "plain_sum" {
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
        image   = "modalc:22b0b6eec6d9433b"
        command = "python"
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "imports_guard", "--qualname", "plain_sum", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
      }

      dispatch_payload {
        file = "call.pkl"
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
        destination     = "local/code/imports_guard.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Packages that exist only inside the image: ``with image.imports():``.

``torch`` need not be installed where modalc runs: the import fails quietly
on the client, and in containers of other images; it happens for real inside
a container of ``torch_image``. ``main`` only calls ``plain_sum``, so the app
runs here without torch.

    modalc build examples/imports_guard.py -o deploy/
"""

import modal

image = modal.Image.debian_slim(python_version="3.11")
torch_image = image.pip_install("torch==2.4.0")

with torch_image.imports():
    import torch

app = modal.App("imports-guard")


@app.function(image=torch_image)
def tensor_sum(values: list[float]) -> float:
    """Sums with torch; only callable where torch is installed."""
    return float(torch.tensor(values).sum())


@app.function(image=image)
def plain_sum(values: list[float]) -> float:
    """Needs nothing but Python, so it also runs without torch."""
    return float(sum(values))


@app.local_entrypoint()
def main():
    print(plain_sum.remote([1.0, 2.0, 3.5]))
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
