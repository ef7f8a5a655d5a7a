job "etl-pipeline-extract" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "etl-pipeline"
    modalc_format   = "1"
    modalc_function = "extract"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "extract" {
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
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "pipeline", "--qualname", "extract", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        destination     = "local/code/pipeline.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""A small ETL pipeline: extract → transform → load, fanned out with ``.map``.

    modalc run examples/pipeline.py --n 20
"""

import modal

app = modal.App("etl-pipeline")
image = modal.Image.debian_slim(python_version="3.11")


@app.function(image=image)
def extract(n: int) -> list[dict]:
    """Produces ``n`` raw records."""
    return [{"id": i, "name": f"item-{i}", "price_cents": 100 + 37 * i} for i in range(n)]


@app.function(image=image, cpu=0.5, memory=256)
def transform(record: dict) -> dict:
    """Cleans one record; runs once per record through ``.map``."""
    return {"id": record["id"], "name": record["name"].upper(), "price": record["price_cents"] / 100}


@app.function(image=image, memory=(256, 512))
def load(records: list[dict]) -> dict:
    """Aggregates the transformed records."""
    total = sum(r["price"] for r in records)
    return {"count": len(records), "total": round(total, 2)}


@app.local_entrypoint()
def main(n: int = 10):
    raw = extract.remote(n)
    clean = list(transform.map(raw))
    print(load.remote(clean))
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
