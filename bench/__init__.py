"""Benchmarks run by hand (not tests): each prints its figures and the goals they are held to."""
