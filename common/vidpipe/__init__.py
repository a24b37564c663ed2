"""The contract every component shares: resource names, phases, the VideoJob models, errors."""

# The one version of the code: the API reports it, and tests/unit/common/test_version.py holds
# the chart (version, appVersion) and pyproject.toml to it.
__version__ = "0.3.0"
