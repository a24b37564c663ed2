"""`vidpipe`: the terminal client of the public HTTP API (upload, list, watch).

It speaks only the documented API (docs/api.md) with an API key, like any other client; it
shares no code with the server packages, so it installs with httpx alone. The admin tool that
creates API keys is another program (vidpipe_api.cli, run inside the API's image).
"""
