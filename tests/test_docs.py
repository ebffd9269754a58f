"""The README and docs/: the README stays short (the Space page is built from it), every link in
them leads somewhere, every setting is documented, and the layout names files that exist."""

import dataclasses
import re
from pathlib import Path

from restoration.settings import Settings, env_name

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
# Written on other branches (community submissions; the inference engine and precision): linked
# ahead of their merge. Drop a name here once its file exists.
PENDING: set[str] = set()


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in md.read_text().splitlines() if line.startswith("#")}


def test_the_readme_is_short_and_links_every_document():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for name in ("architecture", "configuration", "arena", "training", "deploy", "results", "benchmarks", "glossary", "speed",
                 "submitting"):
        assert f"(docs/{name}.md)" in readme, name
    assert "(CHANGELOG.md)" in readme


def test_every_link_leads_somewhere():
    broken = []
    for doc in DOCS:
        for link in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if link.startswith(("http://", "https://")):
                continue
            path, _, anchor = link.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            if str(target.relative_to(REPO)) in PENDING:
                continue
            if not target.exists() or (anchor and anchor not in _anchors(target)):
                broken.append(f"{doc.relative_to(REPO)}: {link}")
    assert not broken


def test_every_setting_is_in_the_configuration_table():
    table = (REPO / "docs" / "configuration.md").read_text()
    names = [env_name(f.name) for f in dataclasses.fields(Settings)]
    # A row may name a second variable by its tail: `RESTORATION_VOTES_PER_MINUTE` / `_VOTES_PER_DAY`.
    missing = [n for n in names if f"`{n}`" not in table and f"`_{n.removeprefix('RESTORATION_')}`" not in table]
    assert not missing


def test_the_layout_names_files_that_exist():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("```")[1]
    folder, missing = "", []
    for line in layout.strip().splitlines():
        if line.startswith("   "):  # a description's continuation line
            continue
        name = line.split()[0]
        path = REPO / (folder + name if line.startswith(" ") else name)
        if not line.startswith(" "):
            folder = name if name.endswith("/") else ""
        if not path.exists():
            missing.append(name)
    assert not missing
    for package in ("restoration", "train", "bench"):
        for file in (REPO / package).rglob("*.py"):
            assert file.name == "__init__.py" or file.name in layout, file


# Each documented command's `--help`, run in one child process (runpy, one import of torch for all):
# prints "<module> <exit code> <first line of output>" a line.
HELP_ALL = """
import contextlib, io, runpy, sys
for name in sys.argv[1:]:
    out, sys.argv = io.StringIO(), [name, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        code = "ran"  # it did not stop at --help
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code = type(e).__name__
    print(name, code, out.getvalue().strip().splitlines()[0] if out.getvalue().strip() else "", flush=True)
"""


def documented_commands() -> set[str]:
    """Every `python -m <module>` the README and docs/ name (`python -m bench.<name>` is not one)."""
    return {name for doc in DOCS if doc.name != "CHANGELOG.md"
            for name in re.findall(r"python3? -m ([A-Za-z_][\w.]*\w)(?![\w.])", doc.read_text())}


def test_every_documented_command_exists_and_answers_help():
    import importlib.util
    import subprocess
    import sys

    ours = sorted(n for n in documented_commands() if n.split(".")[0] in ("restoration", "train", "bench", "docs"))
    assert "restoration.inference.evaluate" in ours and "train.superres" in ours  # the search finds them
    others = sorted(documented_commands() - set(ours))  # pytest, venv: installed, not ours to run
    assert [n for n in others if importlib.util.find_spec(n) is None] == []
    run = subprocess.run([sys.executable, "-c", HELP_ALL, *ours], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    answers = {line.split()[0]: line.split(maxsplit=2)[1:] for line in run.stdout.splitlines()}
    bad = {n: answers.get(n, ["no answer", run.stderr[-300:]]) for n in ours
           if answers.get(n, [None])[0] != "0" or "usage:" not in " ".join(answers[n][1:])}
    assert not bad, bad
