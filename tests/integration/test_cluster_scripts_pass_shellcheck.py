"""Shell scripts are strict (`set -euo pipefail`) and pass shellcheck (from `make tools`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import procs
from tests.support.procs import REPO, tools_bin

SCRIPTS = sorted((REPO / "scripts" / "clusters").glob("*.sh"))
STANDINS = [
    REPO / "tests" / "support" / "standins" / t for t in ("docker", "kind", "kubectl", "helm")
]
CHECKED = [*SCRIPTS, *STANDINS, REPO / "scripts" / "tools.sh"]


def _shellcheck() -> Path:
    linked = tools_bin() / "shellcheck"
    if linked.exists():
        return linked
    found = shutil.which("shellcheck")
    if found is None:
        raise procs.TestBedError("shellcheck not found: run `make tools` first (it installs it)")
    return Path(found)


def _run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_shellcheck()), "--external-sources", "--severity=style", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_every_script_passes_shellcheck() -> None:
    assert {p.name for p in SCRIPTS} >= {"kind-up.sh", "kind-down.sh", "status.sh", "image.sh"}
    done = _run(*CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_here_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/*\n")
    done = _run(bad)
    assert done.returncode != 0
    assert "SC2086" in done.stdout


def test_scripts_are_executable_and_strict() -> None:
    for script in SCRIPTS:
        if script.name == "lib.sh":  # sourced by the others, after their own `set`
            continue
        assert os.access(script, os.X_OK), script
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", script
        assert "set -euo pipefail" in lines[:20], script
