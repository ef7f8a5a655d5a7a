job "retries-timeouts-flaky-sum" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "retries-timeouts"
    modalc_format   = "1"
    modalc_function = "flaky_sum"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "flaky_sum" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "retries_timeouts", "--qualname", "flaky_sum", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "60", "--retries", "3", "--backoff", "1", "--initial-delay", "1", "--max-delay", "1", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        destination     = "local/code/retries_timeouts.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Retries and timeouts: a retry count, a backoff policy and per-attempt timeouts.

    modalc run examples/retries_timeouts.py
"""

import modal

app = modal.App("retries-timeouts")


@app.function(retries=3, timeout=60)
def flaky_sum(n: int) -> int:
    """Retried up to 3 times, 1 s apart; each attempt may take 60 s."""
    return sum(range(n))


@app.function(
    retries=modal.Retries(max_retries=2, backoff_coefficient=2.0, initial_delay=0.1),
    timeout=600,
)
def with_backoff(text: str) -> str:
    """Retried twice, waiting 0.1 s then 0.2 s."""
    return text[::-1]


@app.function(timeout=5)
def quick(x: float) -> float:
    """Must finish within 5 seconds."""
    return round(x**0.5, 6)


@app.local_entrypoint()
def main():
    print(flaky_sum.remote(100), with_backoff.remote("modalc"), quick.remote(2.0))
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
