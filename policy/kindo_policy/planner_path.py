"""Make `planner` importable from the policy pack.

Pulumi runs a Python policy pack with `runpy.run_path(<pack dir>)` (pulumi/policy/__main__.py in the SDK), so
the pack directory is on sys.path. The planner is found, in order:
1. already importable (installed, or the tests' repository root on sys.path);
2. a copy inside the pack directory (`policy/planner/` with `policy/checker/`, whose argument format the plan
   uses), which is how a published pack carries it:
   `pulumi policy publish` uploads only the pack directory (README "Policy pack");
3. the repository this pack lives in (`policy/..`), for `pulumi preview --policy-pack policy` in a checkout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent.parent


def ensure_planner() -> None:
    if importlib.util.find_spec("planner") is not None:
        return
    for root in (PACK_DIR, PACK_DIR.parent):
        if (root / "planner" / "plan.py").is_file() and (root / "checker" / "endpoint_checker.py").is_file():
            sys.path.insert(0, str(root))
            return
    raise ImportError(
        f"the kindo-models planner is neither installed nor next to the policy pack ({PACK_DIR}); copy planner/ and "
        "checker/ into the pack directory before `pulumi policy publish` (README, Policy pack)")
