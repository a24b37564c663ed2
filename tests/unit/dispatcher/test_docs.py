"""docs/webhooks.md's plain-Python receiver really verifies what the dispatcher signs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.utils.servers import REPO
from vidpipe.webhooks import new_secret
from vidpipe_dispatcher.signing import headers

pytestmark = pytest.mark.unit
MARKER = "<!-- verified by tests/unit/dispatcher/test_docs.py -->"


def documented_verify() -> Callable[..., bool]:
    text = (REPO / "docs" / "webhooks.md").read_text()
    block = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert block, "the example is gone from docs/webhooks.md"
    assert len([line for line in block.group(1).splitlines() if line.strip()]) <= 11
    scope: dict[str, Any] = {}
    exec(compile(block.group(1), "docs/webhooks.md", "exec"), scope)
    verify: Callable[..., bool] = scope["verify"]
    return verify


def test_the_documented_receiver_verifies_our_signatures_and_rejects_forgeries() -> None:
    # Fails if the doc's example disagreed with what the dispatcher sends (a receiver copying
    # it would reject every delivery, or accept forged, altered or replayed ones).
    verify = documented_verify()
    old, new = new_secret(), new_secret()
    body = b'{"type":"job.running"}'
    sent = headers("evt_j_1000", int(time.time()), body, [new, old])
    assert verify(new, sent, body) and verify(old, sent, body)
    assert not verify(new_secret(), sent, body)
    assert not verify(new, sent, body + b" ")
    assert not verify(new, {**sent, "webhook-id": "evt_j_1"}, body)
    stale = headers("evt_j_1000", int(time.time()) - 600, body, [new])
    assert not verify(new, stale, body)
