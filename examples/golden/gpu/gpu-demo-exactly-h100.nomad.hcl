job "gpu-demo-exactly-h100" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "gpu-demo"
    modalc_format   = "1"
    modalc_function = "exactly_h100"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "exactly_h100" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "gpu", "--qualname", "exactly_h100", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        destination     = "local/code/gpu.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""GPU requests, from a single card to an ordered fallback list.

Each function does a little CPU arithmetic so that it also runs on a machine
without a GPU (``modalc run --local``); on Nomad the jobs ask for the GPUs.

    modalc build examples/gpu.py -o deploy/
"""

import modal

app = modal.App("gpu-demo")
image = modal.Image.debian_slim(python_version="3.11")


def _dot(n: int) -> int:
    return sum(i * i for i in range(n))


@app.function(image=image, gpu="H100:2")
def two_h100(n: int = 100) -> int:
    """Two H100s (or an upgrade) on one node."""
    return _dot(n)


@app.function(image=image, gpu="a10g")
def one_a10g(n: int = 100) -> int:
    """GPU names are case-insensitive."""
    return _dot(n)


@app.function(image=image, gpu="H100!")
def exactly_h100(n: int = 100) -> int:
    """Exactly an H100, never upgraded to an H200."""
    return _dot(n)


@app.function(image=image, gpu="A100-80GB")
def big_a100(n: int = 100) -> int:
    """An A100 with 80 GB of memory."""
    return _dot(n)


@app.function(image=image, gpu=["h100", "a100", "any"])
def fallback(n: int = 100) -> int:
    """The first available of H100, A100, then any GPU."""
    return _dot(n)


@app.function(image=image, gpu="any")
def any_gpu(n: int = 100) -> int:
    """Whatever GPU the cluster has."""
    return _dot(n)


@app.local_entrypoint()
def main(n: int = 10):
    for f in (two_h100, one_a10g, exactly_h100, big_a100, fallback, any_gpu):
        print(f.remote(n))
EOT
      }

      resources {
        cpu    = 125
        memory = 128

        device "nvidia/gpu" {
          count = 1

          constraint {
            attribute = "${device.model}"
            operator  = "regexp"
            value     = "^(NVIDIA |Tesla )?H100( .*)?$"
          }
        }
      }
    }
  }
}
