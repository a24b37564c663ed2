"""Write the CRDs generated from the models (VideoJob, VideoPreset, ClusterVideoPreset) to crds/
and the Helm chart (`make manifests`).

Both copies are byte-identical; tests/unit/common/test_crd.py fails when either is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "common"))

from vidpipe.crd import rendered_crds  # noqa: E402

FOLDERS = (REPO / "crds", REPO / "deploy" / "helm" / "vidpipe" / "crds")


def main() -> int:
    for name, text in rendered_crds().items():
        for folder in FOLDERS:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_text() != text:
                target.write_text(text)
                print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
