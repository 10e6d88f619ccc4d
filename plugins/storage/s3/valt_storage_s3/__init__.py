"""Valt's ``s3`` storage plugin: recordings in an S3-compatible bucket, through a local spool."""
