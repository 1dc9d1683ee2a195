"""The runnable examples in examples/ keep running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_custom_step_example() -> None:
    r = subprocess.run([sys.executable, str(EXAMPLES / "custom_step.py")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "own loop: [('list_files', {})] retried_ok" in r.stdout
    assert "proxy: ['list_files']" in r.stdout
