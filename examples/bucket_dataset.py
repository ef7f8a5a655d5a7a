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
