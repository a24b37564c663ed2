"""One router per resource: videos (uploads through the API), uploads (presigned), jobs, system."""
