job "schedule-demo-hourly-cleanup" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "schedule-demo"
    modalc_format   = "1"
    modalc_function = "hourly_cleanup"
  }

  periodic {
    crons            = ["0 * * * *"]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  group "hourly_cleanup" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "schedule", "--qualname", "hourly_cleanup", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--no-input"]
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
        destination     = "local/code/schedule.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Scheduled functions: a cron expression in a time zone, and a fixed period.

``modalc build`` (deploy mode) turns each schedule into a periodic Nomad job.

    modalc build examples/schedule.py -o deploy/
"""

import datetime

import modal

app = modal.App("schedule-demo")


@app.function(schedule=modal.Cron("30 9 * * 1-5", timezone="America/New_York"))
def morning_report() -> str:
    """Every weekday at 9:30 in New York."""
    today = datetime.date(2024, 1, 1)
    return f"report for {today.isoformat()}: {sum(range(100))}"


@app.function(schedule=modal.Period(hours=1))
def hourly_cleanup() -> int:
    """Every hour, on the hour."""
    removed = [n for n in range(50) if n % 7 == 0]
    print(f"removed {len(removed)} stale entries")
    return len(removed)


@app.local_entrypoint()
def main():
    print(morning_report.remote())
    print(hourly_cleanup.remote())
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
