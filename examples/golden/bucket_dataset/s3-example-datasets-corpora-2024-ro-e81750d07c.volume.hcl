# The S3 bucket "example-datasets" as a CSI volume of the Mountpoint for Amazon S3 CSI driver.
# Register it before the jobs that claim it run: nomad volume register s3-example-datasets-corpora-2024-ro-e81750d07c.volume.hcl
# Credentials: the keys of modalc secret "aws-readonly" (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
# given to the plugin's node task (driver-level credentials), never written here.
id          = "s3-example-datasets-corpora-2024-ro-e81750d07c"
name        = "s3-example-datasets-corpora-2024-ro-e81750d07c"
type        = "csi"
plugin_id   = "s3-csi"
external_id = "s3-example-datasets-corpora-2024-ro-e81750d07c"

capability {
  access_mode     = "multi-node-reader-only"
  attachment_mode = "file-system"
}

mount_options {
  mount_flags = ["prefix corpora/2024/", "read-only"]
}

context {
  bucketName = "example-datasets"
}
