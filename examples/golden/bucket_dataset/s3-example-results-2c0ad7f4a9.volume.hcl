# The S3 bucket "example-results" as a CSI volume of the Mountpoint for Amazon S3 CSI driver.
# Register it before the jobs that claim it run: nomad volume register s3-example-results-2c0ad7f4a9.volume.hcl
# Credentials: the keys of modalc secret "aws-readonly" (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
# given to the plugin's node task (driver-level credentials), never written here.
id          = "s3-example-results-2c0ad7f4a9"
name        = "s3-example-results-2c0ad7f4a9"
type        = "csi"
plugin_id   = "s3-csi"
external_id = "s3-example-results-2c0ad7f4a9"

capability {
  access_mode     = "multi-node-multi-writer"
  attachment_mode = "file-system"
}

mount_options {
  mount_flags = ["endpoint-url https://minio.internal:9000", "force-path-style", "allow-delete", "allow-overwrite"]
}

context {
  bucketName = "example-results"
}
