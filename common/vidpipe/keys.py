"""S3 object keys, always derived from the server-chosen job id, never from a client filename."""


def source_key(job_id: str) -> str:
    return f"sources/{job_id}/source"


def output_prefix(job_id: str) -> str:
    return f"outputs/{job_id}/"


def output_key(job_id: str, name: str) -> str:
    if "/" in name or name in {"", ".", ".."}:
        raise ValueError(f"output name must be a plain file name: {name!r}")
    return output_prefix(job_id) + name


def rendition_file_name(rendition: str) -> str:
    """The file of one rendition (`720p` -> `720p.mp4`): the plan writes it, the operator
    presigns its upload URL."""
    return f"{rendition}.mp4"


# Version of the access document (the presigned URLs) the operator writes and the processor reads.
ACCESS_DOCUMENT_VERSION = 1

MANIFEST_NAME = "manifest.json"
METADATA_NAME = "metadata.json"
POSTER_NAME = "poster.jpg"
STORYBOARD_IMAGE_NAME = "storyboard.jpg"
STORYBOARD_VTT_NAME = "storyboard.vtt"
