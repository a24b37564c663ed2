"""S3 object keys, always derived from the server-chosen job id, never from a client filename."""


def source_key(job_id: str) -> str:
    return f"sources/{job_id}/source"


def output_prefix(job_id: str) -> str:
    return f"outputs/{job_id}/"


def output_key(job_id: str, name: str) -> str:
    if "/" in name or name in {"", ".", ".."}:
        raise ValueError(f"output name must be a plain file name: {name!r}")
    return output_prefix(job_id) + name


MANIFEST_NAME = "manifest.json"
METADATA_NAME = "metadata.json"
POSTER_NAME = "poster.jpg"
STORYBOARD_IMAGE_NAME = "storyboard.jpg"
STORYBOARD_VTT_NAME = "storyboard.vtt"
