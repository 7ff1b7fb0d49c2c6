"""The wheel carries templates/, server/, Dockerfile and buildspec.yml, so llmctl works outside a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_data_files_and_finds_them(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(tmp_path.glob("llmctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "llmctl/_data/Dockerfile",
        "llmctl/_data/buildspec.yml",
        "llmctl/_data/.dockerignore",
        "llmctl/_data/server/__main__.py",
        "llmctl/_data/server/download_model.py",
        "llmctl/_data/templates/deploy/deployment.yaml.j2",
        "llmctl/_data/templates/cluster/clusterconfig.yaml.j2",
    ):
        assert required in names, required
    assert not any("__pycache__" in name for name in names)

    # Unpacked elsewhere (no checkout around it), resources point inside the package.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "from llmctl import resources; print(resources.templates_dir()); print(resources.dockerfile().is_file())"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    templates, dockerfile_found = done.stdout.split()
    assert Path(templates) == site / "llmctl" / "_data" / "templates"
    assert dockerfile_found == "True"
