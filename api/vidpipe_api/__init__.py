"""vidpipe upload API: authenticated streaming uploads to S3, validated, recorded, submitted."""

__version__ = "0.1.0"
NAME = "vidpipe-api"
