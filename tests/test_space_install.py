"""A Space's install: pre-requirements.txt, then requirements.txt, must give CPU-only torch.

The real CPU index (download.pytorch.org) is out of reach here and in CI, so the check is in two
parts: the files agree (the pins match, the CPU index is named only in pre-requirements.txt, which
local and CI installs never read), and pip's own resolver, given an index laid out like the two real
ones (PyPI's torch 2.14.1 needing nvidia-* and triton; the CPU index's 2.14.1+cpu needing neither)
as stand-in wheels, selects no nvidia-* or triton package from the Space's files (`pip install
--dry-run --report`)."""

import json
import re
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from restoration.settings import REPO

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pins(file) -> dict[str, str]:
    out = {}
    for line in (REPO / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            out[req.name] = str(req.specifier)
    return out


def index_lines(file) -> list[str]:
    return [line for line in (REPO / file).read_text().splitlines() if line.startswith("-")]


def test_the_files_agree():
    space, local = pins("pre-requirements.txt"), pins("requirements.txt")
    assert set(space) == {"torch", "torchvision"} and all(local[name] == spec for name, spec in space.items())
    assert index_lines("pre-requirements.txt") == [f"--extra-index-url {CPU_INDEX}"]
    assert index_lines("requirements.txt") == []
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text()
    assert "pre-requirements" not in (REPO / ".ci" / "run").read_text()  # CI needs PyPI only
    torch_pin = local["torch"]
    assert SpecifierSet(torch_pin).contains(re.sub(r"^==", "", torch_pin) + "+cpu")  # the CPU build meets the pin


def wheel(folder, name, version, requires=()):
    dist = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)))
        z.writestr(f"{dist}.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")


def dry_run(tmp_path, files) -> list[str]:
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--no-index",
           "--quiet", "--report", str(report), "--find-links", str(tmp_path / "pypi"), "--find-links",
           str(tmp_path / "cpu")]
    for file in files:
        cmd += ["-r", str(file)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    installs = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs)


@pytest.fixture
def indexes(tmp_path):
    """Stand-ins for the two indexes, and the Space's files with only their torch lines (the rest of
    requirements.txt is not torch's business, and these indexes do not hold it)."""
    torch_v, vision_v = (re.sub(r"^==", "", pins("requirements.txt")[n]) for n in ("torch", "torchvision"))
    (tmp_path / "pypi").mkdir()
    (tmp_path / "cpu").mkdir()
    cuda = ["nvidia-cublas", "nvidia-cudnn-cu13", "triton"]
    for name in cuda:
        wheel(tmp_path / "pypi", name, "1.0")
    wheel(tmp_path / "pypi", "torch", torch_v, cuda)
    wheel(tmp_path / "pypi", "torchvision", vision_v, [f"torch=={torch_v}"])
    wheel(tmp_path / "cpu", "torch", torch_v + "+cpu")
    wheel(tmp_path / "cpu", "torchvision", vision_v + "+cpu", [f"torch=={torch_v}"])
    for file in ("pre-requirements.txt", "requirements.txt"):
        lines = [line for line in (REPO / file).read_text().splitlines()
                 if line.startswith(("torch==", "torchvision=="))]
        (tmp_path / file).write_text("\n".join(lines) + "\n")
    return tmp_path, torch_v, vision_v


def test_a_space_install_selects_no_nvidia_or_triton(indexes):
    tmp_path, torch_v, vision_v = indexes
    chosen = dry_run(tmp_path, [tmp_path / "pre-requirements.txt", tmp_path / "requirements.txt"])
    assert chosen == [f"torch=={torch_v}+cpu", f"torchvision=={vision_v}+cpu"]
    # and the stand-ins do reproduce the problem: PyPI alone, as before, brings the CUDA stack
    (tmp_path / "cpu" / f"torch-{torch_v}+cpu-py3-none-any.whl").unlink()
    (tmp_path / "cpu" / f"torchvision-{vision_v}+cpu-py3-none-any.whl").unlink()
    chosen = dry_run(tmp_path, [tmp_path / "requirements.txt"])
    assert "triton==1.0" in chosen and any(c.startswith("nvidia-") for c in chosen)
