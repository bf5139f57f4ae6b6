"""Rule 2 of ARCHITECTURE.md, enforced: import-linter contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path


def test_apps_depend_downward_only():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
