"""The distribution installs everything under ``closedloop.*`` and nothing generic.

``agents``, ``schemas`` or ``streams`` at top level would clash with other packages of those
names, so the wheel must hold only ``closedloop/`` (and its dist-info), with the data files
the code reads at run time.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every sub-package of streams/ (each a folder with an __init__.py) must be in the wheel.
SUBPACKAGES = sorted(p.parent.name for p in (ROOT / "streams").glob("*/__init__.py"))


def test_the_wheel_installs_only_the_closedloop_namespace(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    # A new user's `make demo` shows this output: no packaging warning may reach it.
    assert "Warning" not in built.stderr + built.stdout, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("closedloop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"closedloop"}
    for package in ("agents", "schemas", "streams", *(f"streams/{sub}" for sub in SUBPACKAGES)):
        assert f"closedloop/{package}/__init__.py" in names
    for data in ("closedloop/schemas/policy.default.toml", "closedloop/schemas/asyncapi.yaml",
                 "closedloop/schemas/jsonschema/alert.json", "closedloop/schemas/py.typed",
                 # the console serves these from the package: nothing from a CDN
                 "closedloop/streams/console/templates/base.html",
                 "closedloop/streams/console/static/console.css"):
        assert data in names
