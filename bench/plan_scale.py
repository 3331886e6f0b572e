"""Wall time of `python -m planner plan --json` on a generated stack: 1,000 models, 50 self-hosted servers.

Prints figures; passes or fails nothing. Run: .venv/bin/python bench/plan_scale.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import generated_models  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
def generated_stack(models: int, servers: int) -> dict:
    entries = generated_models(models, servers, "l40s")
    entries[servers]["flags"] = ["DEFAULT_WORKFLOW_STEP_MODEL", "LOCAL_STORAGE_CHAT_ACTIONS_MODELS"]
    config = {
        "cluster": {"name": "bench"}, "kindo": {"apiUrl": "https://k.example.com", "orgId": "o", "userId": "u"},
        "unleash": {"url": "https://u.example.com", "environment": "development"},
        # One node per server, and one more for a rollout's next generation (planner/pools.py rollout_headroom).
        "gpuPools": [{"name": "l40s", "instanceType": "g6e.xlarge", "maxSize": servers + 1}],
        "models": entries,
    }
    return {"config": {f"kindo-models:{k}": v for k, v in config.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Pulumi.bench.yaml"
        path.write_text(yaml.safe_dump(generated_stack(args.models, args.servers)))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "planner", "plan", "--config-file", str(path), "--json"]
        times, out = [], ""
        for _ in range(args.runs):
            start = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
            out = result.stdout
        plan = json.loads(out)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pydantic, yaml"], check=True)
        floor = time.perf_counter() - start
    print(json.dumps({
        "benchmark": "plan --json, process start included",
        "models": args.models, "servers": len(plan["servers"]), "findings": len(plan["findings"]),
        "runs": args.runs, "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
        "max_s": round(max(times), 3), "python_import_floor_s": round(floor, 3), "goal_s": 1.0,
        "cores": os.cpu_count(), "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
