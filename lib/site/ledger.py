"""The claims ledger of the site's front page: one compact row per claim, read from the verdict files.

Each row names the claim in a few words, shows its verdict as a coloured badge (a Bootstrap
``badge`` span that Quarto's HTML theme styles; plain text elsewhere), how the settings it is decided on went, the
main setting's deciding number with its 95% interval and a link to its chapter. A claim decided on several settings
shows the status they agree on, or *mixed* where they disagree: no single setting's verdict stands for the others
(the verdict matrix, ``site.matrix``, shows every cell). The long finding stays in the chapter's verdict callout.
"""

from __future__ import annotations

import dataclasses
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
    STATUSES,
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
#: A claim part whose settings disagree.
MIXED = "mixed"
#: Bootstrap 5.3 background class of each ledger status (green, red, amber, blue, grey).
BADGE_CLASS = {"supported": "text-bg-success", "not supported": "text-bg-danger",
               "inconclusive": "text-bg-warning", MIXED: "text-bg-info", NOT_COMPUTED: "text-bg-secondary"}

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
    "C5c": "…beyond the accuracy it costs (C5b at equal accuracy)",
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


def verdict_chapter(key: str) -> str:
    """The chapter (path from the project root) that records the verdict ``key`` (``Verdict.key``, e.g.
    ``C5b@qwen2.5-coder-1.5b@arc_easy@letter@0shot``)."""
    return chapter_of(key.split("@")[0])[1]


def badge(status: str, claim: str, role: str = "verdict-badge") -> str:
    """Pandoc bracketed span of a verdict badge, e.g. ``[supported]{.badge .text-bg-success data-claim="C4"}``.

    ``role``: ``verdict-badge`` for the ledger's one badge per claim part (the rendered-site check reads those),
    ``matrix-badge`` for a claim's verdict on one setting (the matrix's detail table, a chapter's table of settings)."""
    if status not in BADGE_CLASS:
        raise ValueError(f"status {status!r} has no badge: use one of {list(BADGE_CLASS)}")
    return f'[{status}]{{.badge .{BADGE_CLASS[status]} .{role} data-claim="{claim}"}}'


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
    """One ledger row: a claim (or a part of one) and its recorded verdicts, if any.

    Attributes:
        status: the status every setting the part is decided on agrees on, :data:`MIXED` where they disagree, or
            :data:`NOT_COMPUTED`.
        number: the deciding number of the main setting's verdict (the only one, for a part decided once).
        models: the settings (or, for a part decided once, the models of the results it read) it rests on.
        counts: settings per status (empty for a part decided once).
        amended: its rule was amended after it was registered (:data:`verdicts.AMENDED`; the chapter shows both).
    """

    claim: str
    status: str
    number: str
    models: list[str]
    chapter: tuple[str, str]
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    amended: bool = False

    def agreement(self) -> str:
        """How the settings went, e.g. ``supported in 2 of 3 settings (inconclusive 1)``; "" for one setting."""
        return agreement_summary(self.counts) if sum(self.counts.values()) > 1 else ""


def agreement_summary(counts: dict[str, int]) -> str:
    """How many settings support a claim, and how the others went: "supported in 3 of 5 settings (inconclusive 2)"."""
    total = sum(counts.values())
    others = ", ".join(f"{status} {n}" for status, n in counts.items() if n and status != "supported")
    return f"supported in {counts.get('supported', 0)} of {total} setting{'s' * (total != 1)}" + (
        f" ({others})" if others else "")


def headline_first(verdicts: list[Verdict], main_setting: str = "") -> list[Verdict]:
    """A claim part's verdicts with the one the ledger quotes first: the main setting's (``Setting.key``), or the
    one decided once."""
    return sorted(verdicts, key=lambda verdict: verdict.setting_key not in ("", main_setting))


def ledger_rows(profile: str | None = None) -> list[LedgerRow]:
    """Every claim of :data:`CLAIMS` in order, one row per claim part with a recorded verdict (a claim without any:
    "not computed"). A part decided on several settings is :data:`MIXED` where they disagree: no single setting's
    verdict stands for the others."""
    records = load_verdict_records(profile)
    store = Store(profile=profile) if records else None
    per_setting = any(verdict.setting_key for verdict, _ in records.values())
    main_setting = load_profile(profile).main_setting.key if per_setting else ""
    rows = []
    for claim in CLAIMS:
        parts: dict[str, list[Verdict]] = {}
        for verdict, _ in records.values():
            if claim_base(verdict.claim) == claim:
                parts.setdefault(verdict.claim, []).append(verdict)
        if not parts:
            rows.append(LedgerRow(claim, NOT_COMPUTED, "", [], chapter_of(claim)))
        for part, verdicts in parts.items():
            shown, *others = headline_first(verdicts, main_setting)
            statuses = {verdict.status for verdict in verdicts}
            status = statuses.pop() if len(statuses) == 1 else MIXED
            counts = {status: sum(verdict.status == status for verdict in verdicts) for status in STATUSES} \
                if shown.setting_key else {}
            models = ([verdict.setting for verdict in (shown, *others)] if shown.model
                      else verdict_models(records[shown.key][1], store))
            rows.append(LedgerRow(part, status, key_number(shown), models, chapter_of(part), counts,
                                  amended=part in AMENDED))
    return rows


def ledger_table(profile: str | None = None, link_prefix: str = "") -> Table:
    """The ledger as a Markdown table for people: claim, in short, verdict badge (or *mixed*), how the settings went,
    the main setting's deciding number, chapter.

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
        "Across settings": [row.agreement() or ("one setting" if row.counts else "—") for row in rows],
        "Deciding number, main setting (95% CI)": [row.number or "—" for row in rows],
        "Chapter": [f"[{row.chapter[0]}]({link_prefix}{row.chapter[1]})" for row in rows],
    })
    return Table(frame)


#: The ledger rows the front page's summary states in words: the paper's account of the collapse and its mechanism.
HEADLINE_PARTS = ("C1", "C4", "C5", "C5b", "C5c", "P1", "P1b")


def findings_text(rows: list[LedgerRow]) -> str:
    """The front page's summary of this build, from the recorded verdicts (:data:`HEADLINE_PARTS`): one Markdown
    bullet per claim part, its status (or *mixed*) over the settings and the main setting's deciding number."""
    lines = []
    for row in rows:
        if row.claim not in HEADLINE_PARTS or row.status == NOT_COMPUTED:
            continue
        short = CLAIM_SHORT.get(row.claim) or CLAIM_SHORT[claim_base(row.claim)]
        across = f"{row.agreement()}; " if row.agreement() else ""
        lines.append(f"- **{row.claim}** ({short.lower()}): *{row.status}*: {across}on the main setting "
                     f"({row.models[0] if row.models else 'the data'}) {row.number}.")
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

    chapters = {verdict_chapter(key) for key in keys}
    found: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="layercollapse-rejudge-") as data:
        env = {settings.DATA.name: data, settings.STORE.name: str(store.root)}
        for path in sorted(chapters):
            try:
                execute_chapter(project_root() / path, profile, timeout=timeout, env=env)
            except ChapterError as error:
                found |= {key: error for key in keys if verdict_chapter(key) == path}
        for path in (Path(data) / "verdicts" / profile).glob("*.json"):
            verdict = Verdict.from_dict(json.loads(path.read_text("utf-8")))
            if verdict.key in keys:
                found.setdefault(verdict.key, verdict)
    return found
