"""Write the VideoJob CRD generated from the models to crds/ and the Helm chart (`make manifests`).

Both copies are byte-identical; tests/unit/common/test_crd.py fails when either is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "common"))

from vidpipe.constants import CRD_NAME  # noqa: E402
from vidpipe.crd import render_crd  # noqa: E402

TARGETS = (
    REPO / "crds" / f"{CRD_NAME}.yaml",
    REPO / "deploy" / "helm" / "vidpipe" / "crds" / f"{CRD_NAME}.yaml",
)


def main() -> int:
    text = render_crd()
    for target in TARGETS:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
