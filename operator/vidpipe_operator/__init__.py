"""The vidpipe operator: one Kubernetes Job per VideoJob, status mirrored to MongoDB.

The package is deliberately not called `operator`: that name would shadow the standard library.
"""
