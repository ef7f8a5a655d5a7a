job "bucket-dataset-count-files" {
  type        = "batch"
  datacenters = ["*"]

  meta {
    modalc_app      = "bucket-dataset"
    modalc_format   = "1"
    modalc_function = "count_files"
  }

  parameterized {
    payload       = "required"
    meta_optional = ["modalc_call"]
  }

  group "count_files" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    volume "s3-example-datasets-corpora-2024-ro-e81750d07c" {
      type            = "csi"
      source          = "s3-example-datasets-corpora-2024-ro-e81750d07c"
      read_only       = true
      access_mode     = "multi-node-reader-only"
      attachment_mode = "file-system"
      per_alloc       = false
    }

    volume "s3-example-results-2c0ad7f4a9" {
      type            = "csi"
      source          = "s3-example-results-2c0ad7f4a9"
      read_only       = false
      access_mode     = "multi-node-multi-writer"
      attachment_mode = "file-system"
      per_alloc       = false
    }

    task "main" {
      driver       = "docker"
      kill_timeout = "10s"

      config {
        image   = "modalc:22b0b6eec6d9433b"
        command = "python"
        args    = ["-m", "agent_runtime", "--code", "${NOMAD_TASK_DIR}/code", "--module", "bucket_dataset", "--qualname", "count_files", "--result-dir", "${NOMAD_ALLOC_DIR}/data", "--timeout", "300", "--call", "${NOMAD_TASK_DIR}/call.pkl"]
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
        volume      = "s3-example-datasets-corpora-2024-ro-e81750d07c"
        destination = "/dataset"
        read_only   = true
      }

      volume_mount {
        volume      = "s3-example-results-2c0ad7f4a9"
        destination = "/results"
        read_only   = false
      }

      template {
        destination     = "local/code/bucket_dataset.py"
        left_delimiter  = "[[modalc"
        right_delimiter = "modalc]]"
        change_mode     = "noop"
        perms           = "0644"
        data            = <<EOT
"""S3 buckets mounted in a function: a read-only dataset prefix and a writable results bucket.

Each mount becomes a Nomad CSI volume of the Mountpoint for Amazon S3 CSI
driver (plugin ID ``--s3-csi-plugin`` / ``MODALC_S3_CSI_PLUGIN``, default
``s3-csi``): ``modalc build -o DIR`` writes its volume specification
(``DIR/<id>.volume.hcl``) beside the job, ``modalc deploy`` registers it. The
bucket credentials are never in a spec: the plugin's node task holds them.

    modalc build examples/bucket_dataset.py -o deploy/
    nomad volume register deploy/<id>.volume.hcl   # or let modalc deploy do it
"""

import os

import modal

app = modal.App("bucket-dataset")
aws = modal.Secret.from_name("aws-readonly", required_keys=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])

dataset = modal.CloudBucketMount("example-datasets", key_prefix="corpora/2024/", secret=aws, read_only=True)
results = modal.CloudBucketMount("example-results", bucket_endpoint_url="https://minio.internal:9000",
                                 secret=aws, force_path_style=True)


@app.function(volumes={"/dataset": dataset, "/results": results})
def count_files(run: str) -> int:
    """Counts the objects under the mounted prefix and writes the count to the results bucket."""
    count = sum(len(files) for _, _, files in os.walk("/dataset"))
    with open(f"/results/{run}.txt", "w") as fh:
        fh.write(f"{count}\n")
    return count


@app.local_entrypoint()
def main(run: str = "manual"):
    print(count_files.remote(run))
EOT
      }

      resources {
        cpu    = 125
        memory = 128
      }
    }
  }
}
