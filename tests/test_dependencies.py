"""Every third-party import of the library, benchmarks, scripts, tests and chapters is declared (deptry)."""

from __future__ import annotations

import subprocess
import sys

from layercollapse.chapters import parse_qmd, project_chapters
from layercollapse.profiles import project_root


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
