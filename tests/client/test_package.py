"""The client is ready to publish on its own: a wheel built from client/ carries its version,
its metadata, its one dependency, the tqdm extra, and py.typed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import progress_client

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_wheel_has_metadata_extra_and_py_typed(tmp_path):
    # From a copy of the tracked sources: a build/ left in client/ would leak old files in.
    source = tmp_path / "client"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("progress_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert "progress_client/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "progress_client/_tqdm.py" in names
    assert metadata["Name"] == "progress-client"
    assert metadata["Version"] == progress_client.__version__  # one place holds the version
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.8"
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("requests") for r in requires)
    assert any(r.startswith("urllib3") for r in requires)  # _http imports it
    assert any(r.startswith("tqdm") and 'extra == "tqdm"' in r for r in requires)
    assert metadata.get_all("Provides-Extra") == ["tqdm"]
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert "## Python" in metadata.get_payload()  # the README is the long description
