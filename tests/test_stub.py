"""The hand-written `_core.pyi` matches the compiled module."""

import subprocess
import sys


def test_core_stub_matches_runtime():
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "mlmkit._core"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
