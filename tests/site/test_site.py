"""The Quarto site's configuration, the chapters' conventions, and the machinery that runs them.

Quarto is not needed: the configuration is checked against an allow-list of the
documented Quarto keys this project uses, and chapters are executed through a
Jupyter kernel the way Quarto's Jupyter engine does (layercollapse.site.chapters).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from layercollapse.claims import verdicts
from layercollapse.paths import project_root
from layercollapse.site import chapters, ledger
from layercollapse.site.chapters import (
    ChapterError,
    execute_chapter,
    parse_qmd,
    project_chapters,
    to_notebook,
)
from layercollapse.study import profiles
from layercollapse.study.profiles import ProfileError, load_profile

ROOT = project_root()
CHAPTERS = project_chapters()
CLAIM_CHAPTER = re.compile(r"^chapters/\d\d-[a-z0-9-]+\.qmd$")  # chapters that must end with a verdict

# Documented Quarto keys (quarto.org/docs/reference/projects/websites.html, .../formats/html.html,
# .../projects/profiles.html, .../cells/cells-jupyter.html) that this project may use.
# A key outside these lists is a typo or needs checking against the Quarto docs first.
TOP_LEVEL_KEYS = {"project", "profile", "website", "format", "execute", "jupyter", "engine", "bibliography",
                  "lang", "filters", "metadata-files"}
PROJECT_KEYS = {"type", "output-dir", "execute-dir", "render", "pre-render", "post-render", "resources",
                "lib-dir", "preview"}
PROFILE_KEYS = {"default", "group"}
WEBSITE_KEYS = {"title", "description", "site-url", "repo-url", "repo-actions", "page-navigation", "navbar",
                "sidebar", "page-footer", "search", "favicon", "open-graph", "reader-mode", "bread-crumbs"}
NAVBAR_KEYS = {"title", "left", "right", "background", "search", "logo"}
NAV_ITEM_KEYS = {"href", "text", "icon", "menu"}
SIDEBAR_KEYS = {"style", "search", "contents", "title", "collapse-level", "logo"}
SIDEBAR_SECTION_KEYS = {"section", "contents", "href", "text"}
PAGE_FOOTER_KEYS = {"left", "center", "right", "border", "background"}
FORMAT_KEYS = {"html"}
HTML_KEYS = {"theme", "toc", "toc-depth", "toc-location", "code-fold", "code-summary", "code-tools",
             "code-overflow", "fig-align", "fig-width", "fig-height", "number-sections", "css",
             "embed-resources", "smooth-scroll", "link-external-newwindow"}
EXECUTE_KEYS = {"freeze", "echo", "warning", "error", "eval", "output", "include", "cache", "enabled"}
FRONT_MATTER_KEYS = {"title", "subtitle", "description", "author", "date", "abstract", "execute", "format",
                     "jupyter", "bibliography", "categories", "keywords", "toc", "code-fold", "number-sections",
                     "lang"}
CELL_OPTION_KEYS = {"label", "fig-cap", "fig-alt", "fig-subcap", "fig-width", "fig-height", "tbl-cap",
                    "echo", "output", "include", "eval", "warning", "error", "tags", "code-fold",
                    "code-summary", "column"}


def _unknown(mapping: dict, allowed: set[str], where: str) -> list[str]:
    return [f"{where}: '{key}'" for key in mapping if key not in allowed]


def _config_problems(config: dict, where: str) -> list[str]:
    """Every key of a _quarto*.yml that is not in the allow-lists."""
    problems = _unknown(config, TOP_LEVEL_KEYS, where)
    problems += _unknown(config.get("project", {}), PROJECT_KEYS, f"{where} project")
    problems += _unknown(config.get("profile", {}), PROFILE_KEYS, f"{where} profile")
    problems += _unknown(config.get("execute", {}), EXECUTE_KEYS, f"{where} execute")
    problems += _unknown(config.get("format", {}), FORMAT_KEYS, f"{where} format")
    problems += _unknown(config.get("format", {}).get("html", {}), HTML_KEYS, f"{where} format.html")
    website = config.get("website", {})
    problems += _unknown(website, WEBSITE_KEYS, f"{where} website")
    problems += _unknown(website.get("page-footer", {}), PAGE_FOOTER_KEYS, f"{where} website.page-footer")
    navbar = website.get("navbar", {})
    problems += _unknown(navbar, NAVBAR_KEYS, f"{where} website.navbar")
    for item in navbar.get("left", []) + navbar.get("right", []):
        problems += _unknown(item if isinstance(item, dict) else {}, NAV_ITEM_KEYS, f"{where} navbar item")
    sidebar = website.get("sidebar", {})
    problems += _unknown(sidebar, SIDEBAR_KEYS, f"{where} website.sidebar")
    stack = list(sidebar.get("contents", []))
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            problems += _unknown(item, SIDEBAR_SECTION_KEYS, f"{where} sidebar item")
            stack += item.get("contents", [])
    return problems


def _nav_files(config: dict) -> list[str]:
    """Every file the navbar and sidebar link to."""
    website = config.get("website", {})
    files = [item["href"] for item in website.get("navbar", {}).get("left", []) if "href" in item]
    stack = list(website.get("sidebar", {}).get("contents", []))
    while stack:
        item = stack.pop(0)
        if isinstance(item, str):
            files.append(item)
        else:
            files += [item["href"]] if "href" in item else []
            stack = list(item.get("contents", [])) + stack
    return files


def _quarto_files() -> list[Path]:
    return [ROOT / "_quarto.yml", *sorted(ROOT.glob("_quarto-*.yml"))]


# --- configuration ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", _quarto_files(), ids=lambda p: p.name)
def test_quarto_config_uses_only_documented_keys(path):
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict), f"{path.name} is not a YAML mapping"
    assert _config_problems(config, path.name) == []


def test_project_is_a_website_whose_render_list_and_navigation_exist():
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert config["project"]["type"] == "website"
    render = config["project"]["render"]
    missing = [name for name in render if not (ROOT / name).is_file()]
    assert not missing, f"files in project.render that do not exist: {missing}"
    assert len(set(render)) == len(render), "a file is listed twice in project.render"
    numbered = [name for name in render if CLAIM_CHAPTER.match(name)]
    assert numbered == sorted(numbered), "numbered chapters must be rendered in order"
    navigation = _nav_files(config)
    assert [name for name in navigation if name not in render] == [], "navigation links to unrendered files"
    assert set(render) <= set(navigation), f"rendered but not in the navigation: {set(render) - set(navigation)}"
    assert [name for name in navigation if CLAIM_CHAPTER.match(name)] == numbered


def test_the_site_has_a_small_favicon_that_every_profile_renders_with():
    """Without ``website: favicon`` a browser asks for /favicon.ico on the first page it opens and logs a 404."""
    favicon = (yaml.safe_load((ROOT / "_quarto.yml").read_text()).get("website") or {}).get("favicon")
    assert isinstance(favicon, str) and favicon, "_quarto.yml sets no `website: favicon:`"
    path = ROOT / favicon
    assert path.is_file(), f"website.favicon names {favicon}, which does not exist"
    assert path.suffix in {".svg", ".png", ".ico"} and path.stat().st_size < 4096, (
        f"{favicon}: {path.stat().st_size} bytes; a favicon is a small .svg, .png or .ico")
    if path.suffix == ".svg":
        assert path.read_text().lstrip().startswith("<svg") and "http://www.w3.org/2000/svg" in path.read_text()
    for overlay in ROOT.glob("_quarto-*.yml"):
        assert "favicon" not in ((yaml.safe_load(overlay.read_text()) or {}).get("website") or {}), overlay.name
    assert Path(favicon) in chapters.site_sources(ROOT), "profiles rendered in a copy (_render/<profile>/) need it"


def test_every_quarto_profile_has_an_experiment_spec_and_vice_versa():
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    groups = config["profile"]["group"]
    group = groups[0] if isinstance(groups[0], list) else groups
    overlays = {path.stem.removeprefix("_quarto-") for path in ROOT.glob("_quarto-*.yml")}
    specs = set(profiles.available_profiles())
    assert config["profile"]["default"] == group[0] == "default"
    assert set(group) == overlays == specs, (group, overlays, specs)
    for name in specs:
        assert load_profile(name).name == name


def test_profiles_match_the_brief():
    default, paper, test = load_profile("default"), load_profile("paper"), load_profile("test")
    assert default.main_run.name == "qwen2.5-coder-1.5b" and default.main_run.format == "letter"
    assert {run.name for run in default.models} >= {"smollm2-135m", "gemma3-270m"}
    assert {run.name for run in paper.models} == {"llama2-7b", "llama3-8b", "qwen3-4b"} and paper.n_items is None
    assert (test.main_run.name, test.main_run.format, test.tasks, test.n_items, len(test.seeds)) == (
        "smollm2-135m", "letter", ("arc_easy",), 8, 2)
    assert default.pruning_model == "smollm2-135m" and paper.pruning_model == paper.main_model


# --- chapter conventions ---------------------------------------------------------------------

@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_front_matter_and_cells_follow_conventions(path):
    chapter = parse_qmd(path)
    assert chapter.front_matter.get("title"), f"{path.name}: front matter needs a title"
    assert _unknown(chapter.front_matter, FRONT_MATTER_KEYS, path.name) == []
    for cell in chapter.code_cells:
        where = f"{path.name}:{cell.line}"
        assert _unknown(cell.options, CELL_OPTION_KEYS, where) == []
        label = str(cell.options.get("label", ""))
        if label.startswith("fig-") or "fig-cap" in cell.options or "fig-alt" in cell.options:
            assert label.startswith("fig-"), f"{where}: a figure cell's label must start with 'fig-'"
            assert cell.options.get("fig-cap"), f"{where}: figure cell {label} needs fig-cap"
            assert cell.options.get("fig-alt"), f"{where}: figure cell {label} needs fig-alt"
        assert not re.search(r"^\s*(async\s+def|def|class)\s", cell.source, re.M), (
            f"{where}: chapters hold no algorithm; move the function or class into lib/")
    labels = [cell.label for cell in chapter.code_cells if cell.label]
    assert len(labels) == len(set(labels)), f"{path.name}: duplicate cell labels"
    parameter_cells = [cell for cell in chapter.code_cells if "parameters" in cell.tags]
    assert len(parameter_cells) == 1, f"{path.name}: needs exactly one cell tagged parameters"
    assert "profile = None" in parameter_cells[0].source, f"{path.name}: the parameters cell sets profile = None"
    if CLAIM_CHAPTER.match(str(path.relative_to(ROOT))):
        assert any(str(cell.label).startswith("fig-") for cell in chapter.code_cells), f"{path.name}: no figure"
        # by a rule: verdict_<claim>(...), or on every setting: SettingVerdicts.decide(verdict_<claim>, ...) /
        # SettingVerdicts(<rules applied per setting>)
        assert any(re.search(r"\b(Verdict|verdict_\w+|SettingVerdicts)\(|SettingVerdicts\.decide\([\w.]*verdict_\w+",
                             cell.source) for cell in chapter.code_cells), (
            f"{path.name}: a claim chapter computes its verdict by a rule: verdict_<claim>(...)")
        shown = next((i for i, cell in enumerate(chapter.cells) if cell.label == "verdict"), None)
        assert shown is not None and ".show(" in chapter.cells[shown].source, (
            f"{path.name}: a claim chapter shows its verdict in the cell labelled 'verdict' (verdict.show(spec.name))")
        before = chapter.cells[:shown]
        assert [cell.kind for cell in before].count("markdown") == 1 and before[0].kind == "markdown", (
            f"{path.name}: the verdict comes right under the claim paragraph, before the method")
        assert all(cell.options.get("include") is False or "parameters" in cell.tags
                   for cell in before if cell.kind == "code"), (
            f"{path.name}: cells before the verdict load and decide without output (#| include: false)")
        prose = " ".join(cell.source for cell in chapter.cells if cell.kind == "markdown")
        assert "{python}" in prose, f"{path.name}: the prose states this build's numbers as inline expressions"
        assert "verdict below" not in prose and "verdicts below" not in prose, f"{path.name}: the verdict is above"


# --- executing a .qmd like Quarto --------------------------------------------------------------

def _write_qmd(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tiny.qmd"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def _stdout(executed) -> str:
    return "".join(out.get("text", "") for out in executed.outputs if out.get("output_type") == "stream")


def test_parse_qmd_reads_front_matter_options_and_leaves_other_fences(tmp_path):
    path = _write_qmd(tmp_path, '''
        ---
        title: "Tiny"
        ---

        Some *prose*.

        ```{python}
        #| label: fig-x
        #| fig-cap: "A caption: with a colon"
        x = 1
        ```

        ```{mermaid}
        graph LR; A-->B
        ```

        ````python
        not executed
        ````
        ''')
    chapter = parse_qmd(path)
    assert chapter.front_matter == {"title": "Tiny"}
    assert [cell.kind for cell in chapter.cells] == ["markdown", "code", "markdown"]
    code = chapter.code_cells[0]
    assert code.options == {"label": "fig-x", "fig-cap": "A caption: with a colon"} and code.source == "x = 1"
    assert code.line == 7
    assert "graph LR" in chapter.cells[2].source and "not executed" in chapter.cells[2].source


def test_injected_parameters_override_the_parameters_cell(tmp_path):
    path = _write_qmd(tmp_path, '''
        ---
        title: "Parameters"
        ---

        ```{python}
        #| tags: [parameters]
        n_items = 3
        name = "default"
        ```

        ```{python}
        import os
        from layercollapse.study.profiles import active_profile
        print(n_items * 10, name, os.environ["QUARTO_PROFILE"], active_profile(), os.getcwd())
        ```
        ''')
    executed = execute_chapter(path, profile="test", parameters={"n_items": 7, "name": "over"}, timeout=60)
    tags = [cell.metadata.get("tags", []) for cell in executed.notebook.cells]
    assert tags.index(["injected-parameters"]) == tags.index(["parameters"]) + 1
    assert _stdout(executed).split() == ["70", "over", "test", "test", str(tmp_path.resolve())]
    plain = execute_chapter(path, profile="default", timeout=60)
    assert _stdout(plain).split()[:2] == ["30", "default"]


@pytest.mark.slow
def test_inline_expressions_resolve_like_quarto_where_their_paragraph_stands(tmp_path):
    path = _write_qmd(tmp_path, '''
        ---
        title: "Inline"
        ---

        ```{python}
        accuracy = 0.7712
        from IPython.display import Markdown
        ```

        Accuracy is `{python} f"{accuracy:.2f}"` on `{python} 200` items, *`{python} Markdown("**bold**")`*;
        code stays code: ``{python} x``.

        ```{python}
        accuracy = 0.1
        ```

        Later it is `{python} accuracy`.
        ''')
    executed = execute_chapter(path, timeout=60)
    assert executed.markdown == [
        "Accuracy is 0\\.77 on 200 items, ***bold***;\ncode stays code: ``{python} x``.",
        "Later it is 0.1.",
    ]
    assert chapters.inline_expressions("a `{python} x` b `{python}  y + 1 ` c") == ["x", "y + 1"]
    assert chapters.resolve_inline("`{python} s`", {"s": {"data": {"text/plain": "'a_b, c'"}}}) == "a\\_b\\, c"
    broken = _write_qmd(tmp_path, '''
        ---
        title: "Broken"
        ---

        Fine text.

        A number: `{python} undefined_name`.
        ''')
    with pytest.raises(ChapterError, match=r"inline expression `\{python\} undefined_name` at tiny.qmd line 7: "
                                           r"NameError"):
        execute_chapter(broken, timeout=60)


def test_a_failing_cell_names_the_chapter_the_cell_and_the_traceback(tmp_path):
    path = _write_qmd(tmp_path, '''
        ---
        title: "Failing"
        ---

        ```{python}
        #| error: true
        raise KeyError("tolerated")
        ```

        ```{python}
        #| eval: false
        raise RuntimeError("never run")
        ```

        ```{python}
        #| label: boom
        value = 1
        raise ValueError("kaput")
        ```
        ''')
    with pytest.raises(ChapterError) as caught:
        execute_chapter(path, profile="test", timeout=60)
    message = str(caught.value)
    assert "tiny.qmd" in message and "label 'boom'" in message and "line 15" in message
    assert "ValueError: kaput" in message and "Traceback (most recent call last)" in message
    assert "never run" not in message.split("--- traceback ---")[1] and "tolerated" not in message


def _kernel_signals(monkeypatch) -> list[str]:
    """Record every signal, terminate and kill that jupyter_client's local provisioner sends a kernel."""
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    sent: list[str] = []
    for name in ("send_signal", "terminate", "kill"):
        original = getattr(LocalProvisioner, name)

        async def spy(self, *args, _name=name, _original=original, **kwargs):
            sent.append(f"{_name}{args}")
            return await _original(self, *args, **kwargs)

        monkeypatch.setattr(LocalProvisioner, name, spy)
    return sent


KERNEL_NOISE = re.compile(r"ERROR|KeyboardInterrupt|without encryption")


def test_a_healthy_chapter_prints_nothing_but_its_own_output(tmp_path, capfd, monkeypatch):
    """The kernel inherits the runner's stdout and stderr: a clean run leaves no kernel log line there (no warning
    about TCP without encryption, no ``ERROR | KeyboardInterrupt caught in kernel`` from an interrupting shutdown)."""
    path = _write_qmd(tmp_path, '''
        ---
        title: "Quiet"
        ---

        ```{python}
        print("hello from the kernel")
        ```
        ''')
    sent = _kernel_signals(monkeypatch)
    executed = execute_chapter(path, profile="test", timeout=60)
    captured = capfd.readouterr()
    assert _stdout(executed) == "hello from the kernel\n"
    noise = [line for line in (captured.out + captured.err).splitlines() if KERNEL_NOISE.search(line)]
    assert noise == [], f"a clean execution printed kernel log lines: {noise}"
    assert sent == [], f"a healthy kernel was shut down with signals, not a shutdown request: {sent}"


def test_a_kernel_that_takes_seconds_to_exit_is_waited_for_not_terminated(tmp_path, monkeypatch):
    """On a loaded CI machine a healthy kernel once took longer than jupyter_client's 2.5 s to exit and was sent
    SIGTERM. An exit made 4 s long on purpose (an atexit handler) stands in for that load: it is waited for."""
    path = _write_qmd(tmp_path, '''
        ---
        title: "Slow exit"
        ---

        ```{python}
        import atexit, time
        atexit.register(time.sleep, 4)
        ```
        ''')
    sent = _kernel_signals(monkeypatch)
    execute_chapter(path, profile="test", timeout=60)
    assert sent == [], f"a kernel that was exiting was shut down with signals: {sent}"


def test_a_raising_cell_is_still_reported_in_full_and_its_kernel_shut_down_quietly(tmp_path, capfd, monkeypatch):
    path = _write_qmd(tmp_path, '''
        ---
        title: "Raising"
        ---

        ```{python}
        def inner():
            raise LookupError("deep inside")

        def outer():
            inner()
        ```

        ```{python}
        #| label: calls
        outer()
        ```
        ''')
    sent = _kernel_signals(monkeypatch)
    with pytest.raises(ChapterError) as caught:
        execute_chapter(path, profile="test", timeout=60)
    captured = capfd.readouterr()
    message = str(caught.value)
    assert "tiny.qmd" in message and "label 'calls'" in message and "LookupError: deep inside" in message
    traceback = message.split("--- traceback ---")[1]
    assert "Traceback (most recent call last)" in traceback
    assert traceback.index("outer()") < traceback.index("inner()") < traceback.index('raise LookupError("deep inside")')
    noise = [line for line in (captured.out + captured.err).splitlines() if KERNEL_NOISE.search(line)]
    assert noise == [] and sent == [], (noise, sent)


def test_notebook_keeps_cell_options_and_marks_eval_false_cells_raw(tmp_path):
    path = _write_qmd(tmp_path, '''
        ```{python}
        #| eval: false
        1 / 0
        ```
        ''')
    notebook = to_notebook(parse_qmd(path), {"x": 1})
    assert [cell.cell_type for cell in notebook.cells] == ["code", "raw"]  # no parameters cell: injected on top
    assert notebook.cells[1].source.startswith("#| eval: false")


# --- profiles --------------------------------------------------------------------------------

VALID_SPEC = {"description": "d", "models": [{"name": "smollm2-135m", "format": "letter"}], "tasks": ["arc_easy"]}


@pytest.fixture
def spec_dir(tmp_path, monkeypatch):
    from layercollapse import settings

    monkeypatch.setattr(profiles, "profiles_dir", lambda: tmp_path)
    monkeypatch.setattr(settings, "profiles_dir", lambda: tmp_path)

    def write(data, name="x"):
        (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
        return tmp_path / f"{name}.yml"
    return write


def test_a_minimal_profile_gets_defaults(spec_dir):
    spec_dir(VALID_SPEC)
    spec = load_profile("x")
    assert spec.name == "x" and spec.main_model == "smollm2-135m" and spec.seeds == (0, 1, 2)
    assert json.loads(json.dumps(spec.to_dict()))["models"][0]["format"] == "letter"


@pytest.mark.parametrize("change, expected", [
    ({"n_itmes": 5}, r"unknown key\(s\) \['n_itmes'\]; allowed keys: \[.*'n_items'"),
    ({"n_items": "many"}, r"key 'n_items': expected int \| null, got str 'many'"),
    ({"n_items": True}, r"key 'n_items': expected int \| null, got bool"),
    ({"seeds": 3}, r"key 'seeds': expected list of int, got int 3"),
    ({"models": [{"name": "smollm2-135m", "format": "mc"}]}, r"key 'models'\[0\].*'mc' is not allowed; allowed: 'letter' \| 'cloze'"),
    ({"noise": {"sigma": [0.1]}}, r"key 'noise': unknown key\(s\) \['sigma'\]; allowed keys: \['sigma2', 'n_draws', 'layers_per_phase'\]"),
    ({"main_model": "llama3-8b"}, r"main_model 'llama3-8b' is not one of the models"),
    ({"seeds": [1, 1]}, r"'seeds' must be a non-empty list of distinct ints"),
    ({"models": [{"name": "smollm2-135m", "format": "letter"}, {"name": "./no/such", "format": "letter"}]}, r"model folder './no/such' does not exist"),
    ({"models": [{"name": "smollm2-135m", "format": "letter"}, {"name": "smolm", "format": "letter"}]}, r"unknown model 'smolm'; short names: smollm2-135m, "),
    ({"tasks": ["arc_eesy"]}, r"unknown task 'arc_eesy'; known tasks: .*arc_easy"),
    ({"shots": -1}, r"'shots' must be >= 0 \(0 = zero-shot\), got -1"),
    ({"shots": "3"}, r"key 'shots': expected int, got str '3'"),
    ({"finetune_main": {"method": "lora"}}, r"'finetune_main' applies only where main_model is not the pruning_model"),
])
def test_invalid_profiles_raise_errors_naming_file_key_and_allowed_values(spec_dir, change, expected):
    path = spec_dir({**VALID_SPEC, **change})
    with pytest.raises(ProfileError, match=expected) as caught:
        load_profile("x")
    assert str(caught.value).startswith(f"{path}: ")


def test_missing_keys_files_and_bad_yaml_are_reported(spec_dir):
    spec_dir({"description": "d", "tasks": ["arc_easy"]})
    with pytest.raises(ProfileError, match=r"x.yml: missing required key\(s\) \['models'\]"):
        load_profile("x")
    with pytest.raises(ProfileError, match=r"no experiment spec for profile 'nope'.*available profiles: \['x'\]"):
        load_profile("nope")
    spec_dir("models: [unclosed", name="broken")
    with pytest.raises(ProfileError, match="broken.yml: not valid YAML"):
        load_profile("broken")


def test_active_profile_reads_quarto_profile_then_our_variable(monkeypatch):
    monkeypatch.delenv("QUARTO_PROFILE", raising=False)
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    assert profiles.active_profile() == "default"
    monkeypatch.setenv(profiles.PROFILE_ENV, "paper")
    assert profiles.active_profile() == "paper"
    monkeypatch.setenv("QUARTO_PROFILE", "test")
    assert profiles.active_profile() == "test"
    monkeypatch.setenv("QUARTO_PROFILE", "ci,test")  # first entry that has a spec wins
    assert profiles.active_profile() == "test"
    monkeypatch.setenv("QUARTO_PROFILE", "ci")
    assert profiles.active_profile() == "ci"


# --- verdicts --------------------------------------------------------------------------------

def test_verdicts_validate_render_with_a_marker_and_round_trip_through_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv(verdicts.DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="not one of"):
        verdicts.Verdict("C1", "probably", "s", 1.0, "t")
    with pytest.raises(ValueError, match="unknown claim id 'C9'"):
        verdicts.Verdict("C9", "supported", "s", 1.0, "t")
    verdict = verdicts.Verdict("C3b", "supported", "accuracy gap", 0.25, "Because.", ci=(0.1, 0.4), n=300, p=0.001)
    assert verdict._repr_markdown_() == (
        '<!-- verdict:C3b -->\n\n::: {.callout-tip title="Verdict on C3b: supported"}\n'
        "**accuracy gap = 0.25, 95% CI [0.1, 0.4], n = 300, p = 0.001.**\n\nBecause.\n:::\n")
    assert not hasattr(verdict, "_repr_html_")  # Quarto would show an HTML version instead of the callout
    assert ".callout-important" in dataclasses.replace(verdict, status="not supported")._repr_markdown_()
    path = verdict.record("unit")
    assert path == tmp_path / "verdicts" / "unit" / "C3b.json" and not list(path.parent.glob(".*"))
    assert verdicts.load_verdicts("unit") == {"C3b": verdict}
    rows = ledger.ledger_rows("unit")
    assert [row.claim for row in rows] == ["C1", "C2", "C3b", "C4", "C5", "C6", "C7", "R1", "R2", "R3", "P1"]
    assert rows[2].status == "supported" and rows[0].status == "not computed"
    assert rows[2].number == "accuracy gap: 0.250 [0.100, 0.400]" and rows[2].models == [] and rows[2].agreement() == ""
    assert rows[2].chapter == ("Option frequency", "chapters/03-option-frequency.qmd")
    # the link text is the chapter's own title (its front matter), not a second copy of it
    assert rows[1].chapter == ("Representation similarity and the collapse", "chapters/05-representation-similarity.qmd")
    markdown = ledger.ledger_table("unit", link_prefix="../").to_markdown().splitlines()
    assert markdown[0] == ("| Claim | In short | Verdict | Across settings | Deciding number, main setting (95% CI) | "
                           "Chapter |")
    assert markdown[4] == ('| C3b | Option Frequency collapses before it | [supported]{.badge .text-bg-success .verdict-badge '
                           'data-claim="C3b"} | — | accuracy gap: 0.250 [0.100, 0.400] | '
                           '[Option frequency](../chapters/03-option-frequency.qmd) |')
    assert '[not computed]{.badge .text-bg-secondary .verdict-badge data-claim="C1"}' in markdown[2]
    assert ledger.status_counts(rows) == {"supported": 1, "not supported": 0, "inconclusive": 0, "mixed": 0,
                                          "not computed": 10}


def test_a_claim_decided_once_supersedes_its_per_setting_verdicts_and_back(tmp_path, monkeypatch):
    monkeypatch.setenv(verdicts.DATA_ENV, str(tmp_path))
    spec = profiles.load_profile("test")
    folder = tmp_path / "verdicts" / "test"
    shown = verdicts.Verdict("C1", "supported", "excess", 0.3, "Main.", ci=(0.1, 0.5)).on(spec.main_setting)
    other = verdicts.Verdict("C1", "inconclusive", "excess", 0.1, "Other.", ci=(-0.1, 0.3)).on(
        profiles.Setting("other-model", "arc_easy", "cloze", 0))
    for verdict in (other, shown):  # the other setting's first: the ledger still quotes the main setting's number
        verdict.record("test")
    assert sorted(path.name for path in folder.glob("*.json")) == sorted([f"C1@{other.setting_key}.json",
                                                                           f"C1@{shown.setting_key}.json"])
    row = ledger.ledger_rows("test")[0]
    assert (row.claim, row.status, row.number) == ("C1", "mixed", "excess: 0.300 [0.100, 0.500]")
    assert row.models == [shown.setting, other.setting] and row.agreement() == "supported in 1 of 2 settings " \
                                                                                 "(inconclusive 1)"
    verdicts.Verdict("C1", "not supported", "excess", -0.1, "Once again.").record("test")  # supersedes both
    assert [path.name for path in folder.glob("*.json")] == ["C1.json"]
    assert ledger.ledger_rows("test")[0].agreement() == ""
    shown.record("test")  # and a per-setting verdict supersedes the one decided once
    assert [path.name for path in folder.glob("*.json")] == [f"C1@{shown.setting_key}.json"]
    table = ledger.ledger_table("test").to_markdown()
    assert "| one setting |" in table


def test_the_first_registered_rule_is_shown_beside_its_amendment_and_never_recorded(tmp_path, monkeypatch):
    from layercollapse.site.tables import FirstRule

    monkeypatch.setenv(verdicts.DATA_ENV, str(tmp_path))
    first = verdicts.Verdict("C5b", "supported", "share", 0.2, "Registered rule.", ci=(0.0, 0.5), n=10, model="m",
                             task="arc_easy")
    text = FirstRule(first, verdicts.AMENDED["C5b"])._repr_markdown_()
    assert text.startswith('::: {.callout-note title="C5b (m, arc_easy) by the first registered rule: supported"}')
    assert verdicts.MARKER_PREFIX not in text and "re-tests C5" in text
    assert not (tmp_path / "verdicts").exists()


@pytest.mark.slow
def test_ledger_of_the_committed_default_verdicts_names_the_settings_each_rests_on():
    """Each ledger row agrees with the recorded verdicts of its claim part: one status where every setting agrees,
    *mixed* where they disagree, the settings counted per status, the main setting named and quoted first."""
    rows = {row.claim: row for row in ledger.ledger_rows("default")}
    recorded = verdicts.load_verdicts("default")
    main = load_profile("default").main_setting
    parts: dict[str, list] = {}
    for verdict in recorded.values():
        parts.setdefault(verdict.claim, []).append(verdict)
    assert set(parts) <= set(rows)
    for part, decided in parts.items():
        row = rows[part]
        statuses = {verdict.status for verdict in decided}
        assert row.status == (statuses.pop() if len(statuses) == 1 else ledger.MIXED), part
        quoted = next((v for v in decided if v.setting_key in ("", main.key)), decided[0])
        assert row.number.split(":")[0] and quoted.statistic.startswith(row.number.split(":")[0]), part
        if quoted.setting_key:
            assert sum(row.counts.values()) == len(decided), part
            assert all(row.counts[status] == sum(v.status == status for v in decided) for status in row.counts)
            assert sorted(row.models) == sorted(verdict.setting for verdict in decided), part
            assert row.models[0] == quoted.setting, part
    assert rows["C5b"].models[0] == recorded[f"C5b@{main.key}"].setting  # the main setting is quoted first
    assert len(rows["C5b"].models) >= 5  # decided on every studied setting
    assert len(rows["R1"].models) == 3  # decided once, across the three embedded models
    assert rows["R1"].number == "smallest evaluation set (items): 100"  # the settings' dose-response reads 100  # whole numbers stay whole
    assert rows["C1"].number.endswith("to the collapse step: 0.139 [0.065, 0.217]")  # the method note is in the chapter


def test_other_profiles_render_in_a_copy_and_never_touch_the_default_freeze(tmp_path, monkeypatch):
    """With Quarto (a stand-in that records where it ran), `test` renders in _render/test/ and its site is moved
    back; `default` renders in place. The default profile's _freeze/ is left as it was."""
    root = tmp_path / "project"
    for source in chapters.site_sources(ROOT):
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, root / source)
    (root / "_freeze" / "chapters").mkdir(parents=True)
    (root / "_freeze" / "chapters" / "frozen.json").write_text("default results")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    quarto = bin_dir / "quarto"
    quarto.write_text('#!/bin/sh\necho "$PWD $*" >> "$QUARTO_LOG"\n'
                      'out=_site; [ "$3" = test ] && out=_site-test\nmkdir -p "$out" && echo page > "$out/index.html"\n')
    quarto.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("QUARTO_LOG", str(tmp_path / "quarto.log"))
    assert chapters.render_all("test", root=root) == []
    assert chapters.render_all("default", root=root) == []
    ran = (tmp_path / "quarto.log").read_text().splitlines()
    assert ran == [f"{root / '_render' / 'test'} render --profile test", f"{root} render --profile default"]
    assert (root / "_site-test" / "index.html").read_text() == "page\n" and (root / "_site" / "index.html").is_file()
    assert not (root / "_render" / "test" / "_site-test").exists()
    assert (root / "_render" / "test" / "chapters" / "01-cliff-edge.qmd").is_file()
    assert (root / "_render" / "test" / "scripts" / "site_assets.py").is_file()
    assert (root / "_freeze" / "chapters" / "frozen.json").read_text() == "default results"


@pytest.mark.parametrize("ci, supported, status", [
    ((0.85, 0.95), "above", "supported"), ((0.8, 0.9), "above", "supported"),  # at the threshold counts
    ((0.5, 0.79), "above", "not supported"), ((0.7, 0.9), "above", "inconclusive"),
    ((0.01, 0.05), "below", "supported"), ((0.02, 0.05), "below", "supported"),
    ((0.06, 0.2), "below", "not supported"), ((0.0, 0.1), "below", "inconclusive"),
])
def test_interval_status_is_the_three_way_ladder_against_a_threshold(ci, supported, status):
    threshold = 0.8 if supported == "above" else 0.05
    assert verdicts.interval_status(ci, threshold, supported=supported) == status


@pytest.mark.parametrize("ci, above, above_or_at, below, below_or_at", [
    ((0.1, 0.3), True, True, False, False), ((0.0, 0.3), False, True, False, False),
    ((-0.2, 0.0), False, False, False, True), ((-0.2, -0.1), False, False, True, True),
    ((-0.1, 0.1), False, False, False, False),
])
def test_the_one_sided_interval_tests_every_verdict_rule_makes_against_zero(ci, above, above_or_at, below, below_or_at):
    assert verdicts.lies_above(ci, 0) is above and verdicts.lies_above(ci, 0, strict=False) is above_or_at
    assert verdicts.lies_below(ci, 0) is below and verdicts.lies_below(ci, 0, strict=False) is below_or_at


def test_one_interval_format_for_verdict_texts():
    from layercollapse.measures.stats import Interval, interval_text

    assert interval_text((0.1234, -0.05, 0.3)) == "0.12 [-0.05, 0.30]"
    assert interval_text((float("nan"), 0, 0)) == interval_text((None, 0, 0)) == "–"
    assert Interval(0.08, 0.028, 0.128, 0.95, "BCa", 200).text() == "0.080 [0.028, 0.128]"
    assert Interval(0.08, 0.028, 0.128, 0.95, "BCa", 200).ci == (0.028, 0.128)


def test_a_verdict_that_needs_every_condition():
    assert verdicts.all_of("supported", "supported") == "supported"
    assert verdicts.all_of("supported", "inconclusive") == "inconclusive"
    assert verdicts.all_of("inconclusive", "not supported") == "not supported"
    with pytest.raises(ValueError, match="supported='sideways'"):
        verdicts.interval_status((0, 1), 0.5, supported="sideways")


def test_each_cliff_model_has_the_fine_tuning_spec_the_profile_gives_it():
    from golden import GOLDEN_PROFILE

    main, pruning = GOLDEN_PROFILE.main_model, GOLDEN_PROFILE.pruning_model
    assert GOLDEN_PROFILE.finetune_models == (main, pruning)
    assert GOLDEN_PROFILE.finetune_of(main).method == "lora" and GOLDEN_PROFILE.finetune_of(pruning).method == "full"
    assert GOLDEN_PROFILE.finetune_of("other") is None
    only_pruning = dataclasses.replace(GOLDEN_PROFILE, finetune_main=None)
    assert only_pruning.finetune_models == (pruning,)


# --- what a render with Quarto found: the theme, .gitignore, the ledger's words, folded setup --------
# Quarto-free twins of the checks tests/site/test_rendered_site.py makes on a rendered site (Quarto and Chromium).

#: What `quarto render` makes sure the project's .gitignore holds, comparing whole trimmed lines
#: (``ensureGitignore``, src/project/project-gitignore.ts): "/.quarto/" (1.7; 1.8 adds "**/*.quarto_ipynb"), and
#: "/_*.local" once a file such as _environment.local exists. A missing line is appended: a tracked file changes.
QUARTO_GITIGNORE_LINES = ("/.quarto/", "**/*.quarto_ipynb", "/_*.local")
#: The rule Quarto gives links inside tables (``.table a``, formats/html/bootstrap/_bootstrap-rules.scss) that lets a
#: chapter title break anywhere in a narrow ledger column ("Representati on").
QUARTO_TABLE_LINK_RULE = ".table a { word-break: break-word; }"


def site_scss_layers() -> list[Path]:
    """The project's own SCSS layers of the HTML theme (``_quarto.yml``)."""
    from rendered_site import theme_layers

    return [ROOT / layer for layer in theme_layers(chapters.project_config()) if layer.endswith(".scss")]


def test_the_theme_imports_no_web_font():
    """cosmo imports Source Sans Pro from Google Fonts unless ``$web-font-path`` is false (Bootswatch's switch, read
    in cosmo's rules after every layer's defaults): one request off the machine and one console error per page."""
    from rendered_site import scss_section, theme_layers

    layers = theme_layers(chapters.project_config())
    scss = site_scss_layers()
    assert scss and layers[0] == "cosmo", f"theme {layers}: cosmo, then the site's SCSS layer that turns its font off"
    assert [path for path in scss if not path.is_file()] == []
    defaults = "".join(scss_section(path, "defaults") for path in scss)
    assert re.search(r"^\s*\$web-font-path\s*:\s*false\s*;", defaults, re.M), "no `$web-font-path: false;` default"
    stack = re.search(r"^\s*\$font-family-sans-serif\s*:\s*([^;]+);", defaults, re.M)
    assert stack and "Source Sans Pro" not in stack[1] and "sans-serif" in stack[1], "a system font stack, no web font"
    text = "".join(path.read_text() for path in scss)
    assert not re.search(r"@import\s+url|@font-face|https?://", text), "the site's SCSS loads nothing from the web"
    for overlay in ROOT.glob("_quarto-*.yml"):  # a profile that set its own theme would bring the font back
        assert theme_layers(yaml.safe_load(overlay.read_text()) or {}) == [], f"{overlay.name} sets a theme"
    assert {path.relative_to(ROOT) for path in scss} <= set(chapters.site_sources(ROOT)), (
        "profiles rendered in a copy (_render/<profile>/) need the SCSS layer copied too")


def test_gitignore_holds_every_line_quarto_render_would_append():
    lines = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    environment = ROOT / "env"  # Quarto also wants "/env/" where env/ is a virtual environment
    wanted = [*QUARTO_GITIGNORE_LINES,
              *(["/env/"] if (environment / "pyvenv.cfg").exists() or (environment / "conda-meta").exists() else [])]
    assert [line for line in wanted if line not in lines] == [], "quarto render would append these to .gitignore"


#: How CSS finds the ledger: the table holding verdict badges (the class of :func:`ledger.badge`).
LEDGER_TABLE_SELECTOR = "table:has(.verdict-badge)"


def ledger_word_rule(css: str) -> dict[str, str] | None:
    """The declarations of the first rule of ``css`` for the links of the ledger table; None without one."""
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", re.sub(r"/\*.*?\*/|//[^\n]*", "", css, flags=re.S)):
        if any(target.strip() == f"{LEDGER_TABLE_SELECTOR} a" for target in selectors.split(",")):
            return dict(re.findall(r"([\w-]+)\s*:\s*([^;]+?)\s*;", body))
    return None


def test_the_ledger_keeps_every_word_whole():
    """Quarto lets links in tables break anywhere; the site's SCSS keeps the ledger's words (its chapter links
    above all) whole (tests/site/test_rendered_site.py draws it in Chromium where one is installed)."""
    from rendered_site import site_css_rules

    rules = site_css_rules(ROOT)
    declarations = ledger_word_rule(rules)
    assert declarations is not None, "no rule for `table:has(.verdict-badge) a` in the site's SCSS rules"
    assert declarations.get("word-break") == "normal" and declarations.get("overflow-wrap") == "normal"
    assert declarations.get("hyphens") == "manual"
    assert ledger_word_rule(QUARTO_TABLE_LINK_RULE) is None  # (the check tells the two apart)
    assert ".verdict-badge" in ledger.badge("supported", "C1"), "the selector must follow the badges' class"


#: What a page shows first: a figure, a table, the verdict, or printed output; cells before it only set up.
_SHOWS = re.compile(r"\b(print|display)\(|\.show\(")


def _first_shown(chapter: chapters.Chapter) -> int:
    """Index (among the code cells) of the first cell that shows the reader something."""
    return next((i for i, cell in enumerate(chapter.code_cells)
                 if str(cell.label).startswith(("fig-", "tbl-")) or cell.label == "verdict"
                 or cell.options.get("output") == "asis" or _SHOWS.search(cell.source)), len(chapter.code_cells))


def _hidden(cell: chapters.Cell) -> bool:
    return cell.options.get("include") is False or cell.options.get("echo") is False


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_setup_cells_render_no_code_fold_and_figures_keep_theirs(path):
    """Imports, parameters and loading render nothing (no empty "Code" fold); the code behind each figure and table
    stays one click away (code-fold)."""
    chapter = parse_qmd(path)
    first = _first_shown(chapter)
    setup = [cell for i, cell in enumerate(chapter.code_cells)
             if i < first or "parameters" in cell.tags or cell.label in ("setup", "load")]
    assert [f"{path.name}:{cell.line}" for cell in setup if not _hidden(cell)] == [], (
        "setup cells need `#| include: false` (the parameters cell keeps `#| tags: [parameters]` after it)")
    parameters = next(cell for cell in chapter.code_cells if "parameters" in cell.tags)
    assert parameters.tags == ["parameters"] and parameters.options.get("include") is False
    figures = [cell for cell in chapter.code_cells if str(cell.label).startswith(("fig-", "tbl-"))]
    assert [f"{path.name}:{cell.line}" for cell in figures if _hidden(cell)] == []
    html = chapters.project_config()["format"]["html"]
    assert html.get("code-fold") is True and chapters.project_config()["execute"].get("echo", True) is True
