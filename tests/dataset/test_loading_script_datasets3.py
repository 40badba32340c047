"""loading_scripts/attrprompt.py on a real datasets 3.x (``trust_remote_code=True``).

datasets 3.x and 5.x cannot share one environment, so `.ci/run` builds a second virtualenv with
datasets 3.6 and points ``ATTRPROMPT_DATASETS3_PYTHON`` at its interpreter; this test drives it in
a subprocess against the loopback server. Without that variable (a developer's machine) it is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

PYTHON = os.environ.get("ATTRPROMPT_DATASETS3_PYTHON")
SCRIPT = Path(__file__).resolve().parents[2] / "loading_scripts" / "attrprompt.py"

_RUN = """
import json, sys, datasets
url = sys.argv[1]
out = {"version": datasets.__version__}
ds = datasets.load_dataset(sys.argv[2], "sst2", endpoint=url, samples_per_class=2, dedup_threshold=None,
                           trust_remote_code=True, split="train")
out["rows"] = ds.num_rows
out["names"] = ds.features["label"].names
out["columns"] = ds.column_names
print("RESULT=" + json.dumps(out))
"""


@pytest.mark.skipif(not PYTHON, reason="set ATTRPROMPT_DATASETS3_PYTHON to a python with datasets 3.x (.ci/run does)")
def test_loading_script_builds_on_datasets_3(tgi, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_DATASETS_CACHE"] = str(tmp_path / "cache")
    result = subprocess.run(
        [PYTHON, "-c", _RUN, tgi.url, str(SCRIPT)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    line = next((row for row in result.stdout.splitlines() if row.startswith("RESULT=")), None)
    assert line, result.stderr[-3000:]
    out = json.loads(line[len("RESULT=") :])
    assert out["version"].startswith("3.")
    assert out["rows"] == 4 and out["names"] == ["negative", "positive"]
    assert out["columns"] == ["text", "label", "genre", "subtopics", "length", "style", "prompt"]
    assert tgi.served == 4
