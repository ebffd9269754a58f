"""What a newcomer meets first: the Python version check, `--help` of every command-line entry
point, and the default thread count."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from restoration import check_python
from restoration.cpus import cgroup_cpu_quota, usable_cpus
from restoration.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ["train.superres", "train.classifier", "train.ship", "restoration.inference.evaluate", "restoration.arena.submit",
                "train.publish", "bench.speed", "bench.app_latency",
                "bench.abuse",
                "docs.make_figure"]


def help_text(module: str, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        importlib.import_module(module).main(["--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def options(text: str) -> dict:
    """{'--flag': its help, joined over lines} from the 'options:' section of a --help."""
    section = text.split("\noptions:\n", 1)[1]
    entries, current = {}, None
    for line in section.splitlines():
        m = re.match(r"^  (-\S+)", line)
        if m:
            current = m.group(1).rstrip(",")
            entries[current] = line
        elif current:
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_keeps_the_examples_names_the_command_and_shows_every_default(module, capsys):
    text = help_text(module, capsys)
    assert text.startswith(f"usage: python -m {module} ")
    doc = importlib.import_module(module).__doc__
    for line in doc.strip().splitlines():  # the module's usage examples, verbatim, not reflowed
        assert line.rstrip() in text, f"{module} --help lost the line {line!r}"
    entries = options(text)
    assert len(entries) > 3
    for flag, entry in entries.items():
        if flag != "-h" and "(required)" not in entry:
            assert "default" in entry, f"{module} --help shows no default for {flag}: {entry!r}"


def test_superres_help_as_a_user_runs_it():
    """The same through a real `python -m train.superres --help`, from the repository root."""
    run = subprocess.run([sys.executable, "-m", "train.superres", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage: python -m train.superres" in run.stdout
    assert "    python -m train.superres --variant crossconv --classifier runs/classifier --out runs/unet-crossconv\n" \
        in run.stdout
    entries = options(run.stdout)
    assert "(default: 5)" in entries["--epochs"] and "(default: 0.002)" in entries["--lr"]
    assert "(default: ../shared/data/tiny-imagenet-200)" in entries["--data"]
    assert "(default: off)" in entries["--no-classifier"] and "(default: on)" in entries["--erase"]


def test_python_version_check():
    check_python((3, 11, 0), "python3.11")
    check_python((3, 13, 1), "python3.13")
    with pytest.raises(SystemExit, match=r"needs Python 3\.11 or newer; /usr/bin/python3 is Python 3\.10"):
        check_python((3, 10, 12), "/usr/bin/python3")


# ------------------------------------------------------------------------------ threads


def cgroup_v2(tmp_path, cpu_max: dict) -> tuple[Path, Path]:
    """A fake cgroup v2 mount with `cpu.max` files at the given levels ("" is the root)."""
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for level, value in cpu_max.items():
        (root / level).mkdir(parents=True, exist_ok=True)
        (root / level / "cpu.max").write_text(value + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/kubepods/pod1/box\n")
    return root, proc


def test_cgroup_v2_quota(tmp_path):
    root, proc = cgroup_v2(tmp_path, {"kubepods/pod1/box": "150000 100000", "kubepods": "400000 100000"})
    assert cgroup_cpu_quota(root, proc) == pytest.approx(1.5)  # the tightest on the way up
    root, proc = cgroup_v2(tmp_path / "b", {"kubepods/pod1/box": "max 100000", "kubepods/pod1": "200000 100000"})
    assert cgroup_cpu_quota(root, proc) == pytest.approx(2.0)  # a parent's limit counts too
    root, proc = cgroup_v2(tmp_path / "c", {"kubepods/pod1/box": "max 100000"})
    assert cgroup_cpu_quota(root, proc) is None


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    (root / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    (root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("250000\n")
    (root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n")
    assert cgroup_cpu_quota(root, proc) == pytest.approx(2.5)
    (root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cgroup_cpu_quota(root, proc) is None
    assert cgroup_cpu_quota(tmp_path / "none", tmp_path / "missing") is None  # no cgroups (macOS)


def test_usable_cpus_is_the_smaller_of_affinity_and_quota():
    assert usable_cpus(affinity=64, quota=2.0) == 2  # docker --cpus 2 on a 64-core host
    assert usable_cpus(affinity=64, quota=1.5) == 2  # rounded up
    assert usable_cpus(affinity=4, quota=16.0) == 4  # taskset / cpuset
    assert usable_cpus(affinity=8, quota=None, read_quota=False) == 8
    assert usable_cpus(affinity=1, quota=0.2) == 1


def test_the_thread_setting_defaults_to_the_usable_cpus(monkeypatch):
    monkeypatch.delenv("RESTORATION_THREADS", raising=False)
    assert Settings.from_env().threads == usable_cpus()
    monkeypatch.setenv("RESTORATION_THREADS", "3")
    assert Settings.from_env().threads == 3


# ------------------------------------------------------------------------------ --help without torch


def commands() -> list[str]:
    """Every `python -m …` entry point: the modules of restoration/, train/, bench/ and docs/ that run
    as a script."""
    found = []
    for folder in ("restoration", "train", "bench", "docs"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if 'if __name__ == "__main__":' in path.read_text():
                found.append(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


HELP_WITHOUT_TORCH = """
import runpy, sys
sys.argv = ["{module}", "--help"]
try:
    runpy.run_module("{module}", run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), done.code
assert "torch" not in sys.modules, "{module} --help imported torch"
"""


@pytest.mark.parametrize("module", commands())
def test_help_answers_without_importing_torch(module):
    """torch takes seconds to import: --help must not wait for it (a newcomer's first command)."""
    run = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH.format(module=module)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def test_every_command_is_checked():
    assert {"restoration.arena.submit", "train.superres", "bench.speed", "docs.make_figure"} <= set(commands())
    assert {"restoration.inference.evaluate", "train.publish", "bench.delivery"} <= set(commands())


def test_submit_offers_the_default_family_submissions_uses():
    from restoration import choices
    from restoration.arena import submissions

    assert choices.DEFAULT_FAMILY == submissions.DEFAULT_FAMILY
