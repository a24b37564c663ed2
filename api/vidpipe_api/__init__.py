"""vidpipe upload API: authenticated streaming uploads to S3, validated, recorded, submitted."""

from vidpipe import __version__

__all__ = ["NAME", "__version__"]
NAME = "vidpipe-api"
