job "secrets-volumes-read-report" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "secrets-volumes"
    modalc_format   = "1"
    modalc_function = "read_report"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "read_report" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    volume "shared-data" {
      type      = "host"
      source    = "shared-data"
      read_only = false
    }

    task "main" {
      driver       = "docker"
      kill_timeout = "10s"

      config {
        image   = "modalc:22b0b6eec6d9433b"
        command = "python"
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "secrets_volumes", "--qualname", "read_report", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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

      volume_mount {
        volume      = "shared-data"
        destination = "/data"
        read_only   = false
      }

      template {
        destination     = "local/code/secrets_volumes.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""Named secrets and a shared volume.

The secret's values never appear in the job specs: Nomad reads them from a
Nomad Variable at run time. Both functions mount the same volume at /data.

    modalc secret create db-credentials DB_USER=me DB_PASSWORD=hunter2
    modalc run examples/secrets_volumes.py
"""

import os

import modal

app = modal.App("secrets-volumes")
db = modal.Secret.from_name("db-credentials", required_keys=["DB_USER", "DB_PASSWORD"])
data = modal.Volume.from_name("shared-data", create_if_missing=True)


@app.function(secrets=[db], volumes={"/data": data})
def write_report(name: str, rows: int) -> str:
    """Writes a small CSV report into the volume."""
    user = os.environ.get("DB_USER", "nobody")
    lines = [f"{i},{i * i}" for i in range(rows)]
    path = os.path.join("/data", f"{name}.csv")
    os.makedirs("/data", exist_ok=True)
    with open(path, "w") as fh:
        fh.write(f"# written by {user}\n" + "\n".join(lines) + "\n")
    data.commit()
    return path


@app.function(volumes={"/data": data})
def read_report(name: str) -> int:
    """Counts the rows of a report written by ``write_report``."""
    data.reload()
    with open(os.path.join("/data", f"{name}.csv")) as fh:
        return sum(1 for line in fh if not line.startswith("#"))


@app.local_entrypoint()
def main(rows: int = 5):
    path = write_report.remote("squares", rows)
    print(f"wrote {path}: {read_report.remote('squares')} rows")
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
