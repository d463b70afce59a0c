"""A PEP 517 / PEP 660 build backend for the pure-Python obspam package.

It uses the standard library only, so that ``pip install bindings/python``
needs no network: pip installs a backend's requirements into an isolated
build environment before it builds, and this backend has none (setuptools
would have to be downloaded). It builds exactly what the package is: a
``py3-none-any`` wheel of the packages listed under ``[tool.obspam-backend]``
in pyproject.toml, an editable wheel (a ``.pth`` file) and an sdist, with the
metadata of the ``[project]`` table (name, version, description, readme,
requires-python, keywords, classifiers).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile
from typing import Any, Dict, Iterator, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = "obspam_backend 1.0"


# ---- pyproject.toml ----------------------------------------------------------


def _parse_toml_subset(text: str) -> Dict[str, Any]:
    """Reads the TOML this project's pyproject.toml uses, for Pythons < 3.11.

    Tables, dotted table names, basic strings, integers, booleans and arrays
    of strings (on one or more lines). That is enough for our own file.
    """
    data: Dict[str, Any] = {}
    table = data
    lines = iter(text.splitlines())
    for raw in lines:
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("["):
            table = data
            for part in line.strip("[]").split("."):
                table = table.setdefault(part.strip().strip('"'), {})
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value.startswith("[") and not value.rstrip().endswith("]"):
            for more in lines:
                value += " " + _strip_comment(more)
                if value.rstrip().endswith("]"):
                    break
        table[key.strip().strip('"')] = _toml_value(value)
    return data


def _strip_comment(line: str) -> str:
    """The line without its comment (a '#' outside a string) and blanks."""
    in_string = False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            in_string = not in_string
        elif ch == "#" and not in_string:
            return line[:i].strip()
    return line.strip()


def _toml_value(value: str) -> Any:
    value = value.strip()
    if value.startswith("["):
        return re.findall(r'"((?:[^"\\]|\\.)*)"', value)
    if value.startswith('"'):
        return re.match(r'"((?:[^"\\]|\\.)*)"', value).group(1)  # type: ignore[union-attr]
    if value in ("true", "false"):
        return value == "true"
    return int(value)


def _pyproject() -> Dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        raw = f.read()
    try:
        import tomllib  # Python 3.11+

        return tomllib.loads(raw.decode("utf-8"))
    except ImportError:
        return _parse_toml_subset(raw.decode("utf-8"))


class _Project:
    """The [project] metadata and the files of the distribution."""

    def __init__(self) -> None:
        conf = _pyproject()
        project = conf["project"]
        self.name: str = project["name"]
        self.version: str = project["version"]
        self.project = project
        self.packages: List[str] = conf.get("tool", {}).get("obspam-backend", {}).get(
            "packages", [self.name]
        )
        self.dist = re.sub(r"[-_.]+", "_", self.name).lower()
        self.dist_info = f"{self.dist}-{self.version}.dist-info"

    def metadata(self) -> str:
        p = self.project
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {self.name}",
            f"Version: {self.version}",
        ]
        if "description" in p:
            lines.append(f"Summary: {p['description']}")
        if p.get("keywords"):
            lines.append("Keywords: " + ",".join(p["keywords"]))
        for classifier in p.get("classifiers", []):
            lines.append(f"Classifier: {classifier}")
        if "requires-python" in p:
            lines.append(f"Requires-Python: {p['requires-python']}")
        body = ""
        readme = p.get("readme")
        if isinstance(readme, str):
            with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
                body = f.read()
            kind = "text/markdown" if readme.endswith(".md") else "text/plain"
            lines.append(f"Description-Content-Type: {kind}")
        return "\n".join(lines) + "\n\n" + body

    def package_files(self) -> Iterator[Tuple[str, str]]:
        """(archive name, file path) of every file of the packages."""
        for package in self.packages:
            top = os.path.join(ROOT, package)
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for filename in sorted(filenames):
                    if filename.endswith((".pyc", ".pyo")):
                        continue
                    path = os.path.join(dirpath, filename)
                    yield os.path.relpath(path, ROOT).replace(os.sep, "/"), path


# ---- Archives ------------------------------------------------------------------


def _epoch() -> int:
    """A fixed time for archive members, so that builds are reproducible:
    $SOURCE_DATE_EPOCH, else 1980-01-01 (the oldest time a zip can hold)."""
    return max(int(os.environ.get("SOURCE_DATE_EPOCH", "0")), 315532800)


def _timestamp() -> Tuple[int, int, int, int, int, int]:
    return time.gmtime(_epoch())[:6]  # type: ignore[return-value]


class _Wheel:
    """Writes a wheel and its RECORD."""

    def __init__(self, path: str, dist_info: str) -> None:
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self.dist_info = dist_info
        self.records: List[str] = []

    def add(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = zipfile.ZipInfo(name, _timestamp())
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
        self.records.append(f"{name},sha256={digest.rstrip(b'=').decode()},{len(data)}")

    def close(self) -> None:
        record = f"{self.dist_info}/RECORD"
        self.records.append(f"{record},,")
        info = zipfile.ZipInfo(record, _timestamp())
        info.external_attr = (0o100644) << 16
        self.zip.writestr(info, "\n".join(self.records) + "\n")
        self.zip.close()


def _wheel_file() -> str:
    return (
        "Wheel-Version: 1.0\n"
        f"Generator: {GENERATOR}\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )


def _write_metadata(project: _Project, directory: str) -> str:
    target = os.path.join(directory, project.dist_info)
    os.makedirs(target, exist_ok=True)
    for name, text in _dist_info_files(project).items():
        with open(os.path.join(target, name), "w", encoding="utf-8") as f:
            f.write(text)
    return project.dist_info


def _dist_info_files(project: _Project) -> Dict[str, str]:
    return {
        "METADATA": project.metadata(),
        "WHEEL": _wheel_file(),
        "top_level.txt": "".join(p + "\n" for p in project.packages),
    }


def _build(wheel_directory: str, editable: bool) -> str:
    project = _Project()
    filename = f"{project.dist}-{project.version}-py3-none-any.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    wheel = _Wheel(os.path.join(wheel_directory, filename), project.dist_info)
    try:
        if editable:
            # The source directory goes on sys.path: edits show at once.
            wheel.add(f"{project.dist}.pth", (ROOT + "\n").encode())
        else:
            for name, path in project.package_files():
                with open(path, "rb") as f:
                    wheel.add(name, f.read())
        for name, text in _dist_info_files(project).items():
            wheel.add(f"{project.dist_info}/{name}", text.encode("utf-8"))
    finally:
        wheel.close()
    return filename


# ---- PEP 517 hooks ---------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    """Nothing to install before a build."""
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    """Nothing to install before a build."""
    return []


def get_requires_for_build_editable(
    config_settings: Optional[dict] = None,
) -> List[str]:
    """Nothing to install before a build."""
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[dict] = None
) -> str:
    """Writes the .dist-info directory; returns its name."""
    return _write_metadata(_Project(), metadata_directory)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Optional[dict] = None
) -> str:
    """Writes the .dist-info directory; returns its name."""
    return _write_metadata(_Project(), metadata_directory)


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[dict] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """Builds the py3-none-any wheel; returns its file name."""
    return _build(wheel_directory, editable=False)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[dict] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    """Builds an editable wheel (a .pth file naming this directory)."""
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    """Builds NAME-VERSION.tar.gz from pyproject.toml, README.md, the backend
    and the packages; returns its file name."""
    project = _Project()
    base = f"{project.dist}-{project.version}"
    filename = f"{base}.tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    members: List[Tuple[str, bytes]] = []
    for name in ("pyproject.toml", "README.md", "_backend/obspam_backend.py"):
        with open(os.path.join(ROOT, name), "rb") as f:
            members.append((name, f.read()))
    for name, path in project.package_files():
        with open(path, "rb") as f:
            members.append((name, f.read()))
    members.append(("PKG-INFO", project.metadata().encode("utf-8")))
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{base}/{name}")
            info.size = len(data)
            info.mtime = _epoch()
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return filename
