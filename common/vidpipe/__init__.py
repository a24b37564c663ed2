"""The contract every component shares: resource names, phases, the VideoJob models, errors."""
