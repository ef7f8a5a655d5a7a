job "hello-square" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "hello"
    modalc_format   = "1"
    modalc_function = "square"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "square" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "hello", "--qualname", "square", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        destination     = "local/code/hello.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Hello, modalc: a remote call, a parallel map and a local entrypoint.

    modalc run examples/hello.py
"""

import modal

app = modal.App("hello")


@app.function()
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@app.local_entrypoint()
def main(n: int = 10):
    print("square(7) =", square.remote(7))
    total = sum(square.map(range(n)))
    print(f"sum of squares below {n} = {total}")
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
