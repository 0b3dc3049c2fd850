"""The claims ledger of the site's front page: one compact row per claim, read from the verdict files.

Each row names the claim in a few words, shows its verdict as a coloured badge (a Bootstrap
``badge`` span that Quarto's HTML theme styles; plain text elsewhere), the deciding number with its
95% interval, the models the verdict rests on (read from the results it was decided from) and a
link to its chapter. The long finding stays in the chapter's verdict callout. A claim decided once per
model (C1 on the main model and on the pruning model) shows the main model's verdict and how many of
the models agree with it.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
from layercollapse.claims.verdicts import (
    AMENDED,
    CLAIMS,
    Verdict,
    claim_base,
    load_verdict_records,
)
from layercollapse import settings
from layercollapse.paths import project_root
from layercollapse.site.chapters import parse_qmd
from layercollapse.site.tables import Table, format_number
from layercollapse.storage.store import SIDECAR_SUFFIX, Store
from layercollapse.study.profiles import load_profile

NOT_COMPUTED = "not computed"
#: Bootstrap 5.3 background class of each ledger status (green, red, amber, grey).
BADGE_CLASS = {"supported": "text-bg-success", "not supported": "text-bg-danger",
               "inconclusive": "text-bg-warning", NOT_COMPUTED: "text-bg-secondary"}

#: Each claim of :data:`verdicts.CLAIMS` in a few words (a part such as ``C3b`` may have its own).
CLAIM_SHORT: dict[str, str] = {
    "C1": "Pruning hits a cliff edge",
    "C2": "Similarity stays high through the collapse",
    "C3": "A sharp decision transition",
    "C3a": "A sharp transition in DM and accuracy",
    "C3b": "Option Frequency collapses before it",
    "C4": "Decisive pruning costs little",
    "C5": "Silent pruning collapses at once",
    "C5b": "Silent pruning removes the transition",
    "C5c": "…beyond the accuracy it costs",
    "C6": "Silent Phase is noise-sensitive",
    "C7": "Fine-tuning recovery plateaus",
    "R1": "Error bars, models and tasks",
    "R2": "Probes show the transition",
    "R3": "Random and LM-loss controls",
    "P1": "The intact readout predicts the collapse",
    "P1b": "A Silent removal raises the odds of collapse more",
}

#: Chapter (path from the project root) that records each claim's verdict; a part (``C3b``) may differ.
CHAPTER_OF: dict[str, str] = {
    "C1": "chapters/01-cliff-edge.qmd",
    "C2": "chapters/05-representation-similarity.qmd",
    "C3": "chapters/02-decision-dynamics.qmd",
    "C3b": "chapters/03-option-frequency.qmd",
    "C4": "chapters/04-phase-pruning.qmd",
    "C5": "chapters/04-phase-pruning.qmd",
    "C6": "chapters/09-noise-sensitivity.qmd",
    "C7": "chapters/10-finetune-recovery.qmd",
    "R1": "chapters/06-statistics-and-scale.qmd",
    "R2": "chapters/07-probes.qmd",
    "R3": "chapters/08-random-controls.qmd",
    "C5b": "chapters/11-pruned-dynamics.qmd",
    "C5c": "chapters/11-pruned-dynamics.qmd",
    "P1": "chapters/11-pruned-dynamics.qmd",
}


@cache
def chapter_title(path: str) -> str:
    """The ``title`` of a chapter's front matter (``path`` from the project root)."""
    return parse_qmd(project_root() / path).front_matter["title"]


def chapter_of(claim: str) -> tuple[str, str]:
    """(title, path) of the chapter of ``claim`` (``"C3a"`` falls back to ``"C3"``)."""
    path = CHAPTER_OF.get(claim) or CHAPTER_OF[claim_base(claim)]
    return chapter_title(path), path


def badge(status: str, claim: str) -> str:
    """Pandoc bracketed span of a verdict badge, e.g. ``[supported]{.badge .text-bg-success data-claim="C4"}``."""
    if status not in BADGE_CLASS:
        raise ValueError(f"status {status!r} has no badge: use one of {list(BADGE_CLASS)}")
    return f'[{status}]{{.badge .{BADGE_CLASS[status]} .verdict-badge data-claim="{claim}"}}'


def _short_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format_number(value)


def key_number(verdict: Verdict) -> str:
    """The deciding statistic (without its trailing method note), value and 95% interval, e.g.
    ``accuracy drop at k = 1 (Decisive): 0.009 [-0.011, 0.023]``."""
    statistic = re.sub(r"\s*\((?:paired item bootstrap|interval from)[^)]*\)$", "", verdict.statistic)
    if verdict.value is None:
        return f"{statistic}: —"
    interval = "" if verdict.ci is None else f" [{_short_number(verdict.ci[0])}, {_short_number(verdict.ci[1])}]"
    return f"{statistic}: {_short_number(verdict.value)}{interval}"


def verdict_models(evidence: list[dict], store: Store) -> list[str]:
    """Models of the stored results a verdict was decided from (a fine-tuning result names its trace's model).

    Reads only the results' sidecars: :func:`verdicts.load_verdict_records` has verified the results already.
    """
    models = set()
    for result in evidence:
        sidecar = store.directory(result["kind"]) / f"{result['key']}{SIDECAR_SUFFIX}"
        spec = json.loads(sidecar.read_text("utf-8")).get("spec", {})
        model = spec.get("model") or spec.get("trace_spec", {}).get("model")
        if model:
            models.add(model)
    return sorted(models)


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row: a claim (or a part of one) and its recorded verdict, if any.

    Attributes:
        models: the models the shown verdict rests on (with its task, for a claim decided per model and task).
        others: (model or "model, task", status) of the claim's verdicts on further settings (empty for a claim
            decided once).
        amended: its rule was amended after it was registered (:data:`verdicts.AMENDED`; the chapter shows both).
    """

    claim: str
    status: str
    number: str
    models: list[str]
    chapter: tuple[str, str]
    others: tuple[tuple[str, str], ...] = ()
    amended: bool = False

    def agreement(self) -> str:
        """How many of the claim's models reach the shown verdict, e.g. ``1 of 2 (smollm2-135m: inconclusive)``."""
        if not self.others:
            return ""
        differ = [f"{model}: {status}" for model, status in self.others if status != self.status]
        n_agree = 1 + len(self.others) - len(differ)
        return f"{n_agree} of {1 + len(self.others)}" + (f" ({'; '.join(differ)})" if differ else "")


def headline_first(verdicts: list[Verdict], main_model: str, main_task: str = "") -> list[Verdict]:
    """A claim part's verdicts with the one the ledger shows first: the main model's (or the one without a model), on
    the main task where a part is decided per (model, task)."""
    return sorted(verdicts, key=lambda verdict: (verdict.model not in (None, main_model),
                                                 verdict.task not in (None, main_task)))


def ledger_rows(profile: str | None = None) -> list[LedgerRow]:
    """Every claim of :data:`CLAIMS` in order, one row per claim part with a recorded verdict (the main model's where
    a part is decided per model; a claim without any: "not computed")."""
    records = load_verdict_records(profile)
    store = Store(profile=profile) if records else None
    # the main model and task matter only where a claim part is decided per model (or per model and task)
    per_model = any(verdict.model for verdict, _ in records.values())
    spec = load_profile(profile) if per_model else None
    main_model, main_task = (spec.main_model, spec.tasks[0]) if spec else ("", "")
    rows = []
    for claim in CLAIMS:
        parts: dict[str, list[Verdict]] = {}
        for verdict, _ in records.values():
            if claim_base(verdict.claim) == claim:
                parts.setdefault(verdict.claim, []).append(verdict)
        if not parts:
            rows.append(LedgerRow(claim, NOT_COMPUTED, "", [], chapter_of(claim)))
        for part, verdicts in parts.items():
            shown, *others = headline_first(verdicts, main_model, main_task)
            models = [shown.setting] if shown.model else verdict_models(records[shown.key][1], store)
            rows.append(LedgerRow(part, shown.status, key_number(shown), models, chapter_of(part),
                                  tuple((other.setting, other.status) for other in others), amended=part in AMENDED))
    return rows


def ledger_table(profile: str | None = None, link_prefix: str = "") -> Table:
    """The ledger as a Markdown table for people: claim, in short, verdict badge, key number, models, how many
    models agree, chapter.

    Args:
        profile: profile whose verdicts to read (None: the active profile).
        link_prefix: prefix of the chapter links, relative to the page showing the table.
    """
    rows = ledger_rows(profile)
    frame = pd.DataFrame({
        "Claim": [row.claim for row in rows],
        "In short": [(CLAIM_SHORT.get(row.claim) or CLAIM_SHORT[claim_base(row.claim)])
                     + (" (rule amended)" if row.amended else "") for row in rows],
        "Verdict": [badge(row.status, row.claim) for row in rows],
        "Deciding number (95% CI)": [row.number or "—" for row in rows],
        "Models": [", ".join(row.models) or "—" for row in rows],
        "Models agreeing": [row.agreement() or "—" for row in rows],
        "Chapter": [f"[{row.chapter[0]}]({link_prefix}{row.chapter[1]})" for row in rows],
    })
    return Table(frame)


#: The ledger rows the front page's summary states in words: the paper's account of the collapse and its mechanism.
HEADLINE_PARTS = ("C1", "C4", "C5", "C5b", "P1", "P1b")


def findings_text(rows: list[LedgerRow]) -> str:
    """The front page's summary of this build, from the recorded verdicts (:data:`HEADLINE_PARTS`): one Markdown
    bullet per claim part, its status, deciding number and how many settings agree."""
    lines = []
    for row in rows:
        if row.claim not in HEADLINE_PARTS or row.status == NOT_COMPUTED:
            continue
        agree = f"; {row.agreement()} settings agree" if row.agreement() else ""
        short = CLAIM_SHORT.get(row.claim) or CLAIM_SHORT[claim_base(row.claim)]
        lines.append(f"- **{row.claim}** ({short.lower()}): *{row.status}* on {', '.join(row.models) or 'the data'} "
                     f"({row.number}{agree}).")
    return "\n".join(lines)


def status_counts(rows: list[LedgerRow]) -> dict[str, int]:
    """How many ledger rows have each status, in :data:`BADGE_CLASS` order."""
    return {status: sum(row.status == status for row in rows) for status in BADGE_CLASS}


def rejudge(keys: Sequence[str], store: Store, profile: str, timeout: int | None = None) -> dict[str, object]:
    """Decide the verdicts ``keys`` (``Verdict.key``) again from the results in ``store``: execute the chapters that
    record them, in kernels of their own, with ``store`` as the results store and a temporary data folder for the
    verdicts they record (the committed ones are never touched).

    Returns:
        key -> the verdict recorded now, or the ``ChapterError`` of a chapter that failed.
    """
    from layercollapse.site.chapters import ChapterError, execute_chapter

    chapters = {chapter_of(key.split("@")[0])[1] for key in keys}
    found: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="layercollapse-rejudge-") as data:
        env = {settings.DATA.name: data, settings.STORE.name: str(store.root)}
        for path in sorted(chapters):
            try:
                execute_chapter(project_root() / path, profile, timeout=timeout, env=env)
            except ChapterError as error:
                found |= {key: error for key in keys if chapter_of(key.split("@")[0])[1] == path}
        for path in (Path(data) / "verdicts" / profile).glob("*.json"):
            verdict = Verdict.from_dict(json.loads(path.read_text("utf-8")))
            if verdict.key in keys:
                found.setdefault(verdict.key, verdict)
    return found
