"""The packages list in pyproject.toml matches the folders on disk.

setuptools prints "Package ... is absent from the `packages` configuration" for every folder that
ships files but is not listed (the install log the issue asked to keep clean), and a listed folder
that was moved away breaks the build. A restructure that adds or moves a stage package should fail
here, in well under a second, rather than in somebody's install log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _folder_of(package: str, package_dir: dict[str, str]) -> Path:
    """The repository folder of a dotted package name under setuptools' ``package-dir`` mapping."""
    prefix = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len)
    rest = package[len(prefix):].lstrip(".")
    return ROOT / package_dir[prefix] / Path(*rest.split(".")) if rest else ROOT / package_dir[prefix]


def test_every_listed_package_exists():
    cfg = _setuptools()
    missing = [p for p in cfg["packages"] if not _folder_of(p, cfg["package-dir"]).is_dir()]
    assert not missing


def test_every_folder_with_files_is_listed():
    cfg = _setuptools()
    listed = set(cfg["packages"])
    unlisted = []
    for top, folder in cfg["package-dir"].items():
        for d in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if not d.is_dir() or d.name == "__pycache__" or d.name.endswith(".egg-info"):
                continue
            if not any(f.is_file() for f in d.iterdir()):
                continue
            rel = d.relative_to(ROOT / folder).parts
            name = ".".join((top, *rel))
            if name not in listed:
                unlisted.append(name)
    assert not unlisted, f"add to pyproject.toml [tool.setuptools] packages: {unlisted}"


def test_data_folders_ship_their_files():
    cfg = _setuptools()
    for package in cfg["packages"]:
        folder = _folder_of(package, cfg["package-dir"])
        data = [f for f in folder.iterdir() if f.is_file() and f.suffix != ".py"]
        if data and not (folder / "__init__.py").exists():
            assert package in cfg["package-data"], f"{package} holds {data[0].name} but has no package-data entry"
