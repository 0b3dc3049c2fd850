"""The verdict matrix: every claim decided on every studied setting, built from the recorded verdict files.

Claims are rows, settings columns, grouped by architecture (``model.loading.model_architecture``), the main setting
first. A cell is a coloured badge whose hover (``title``) carries the deciding number and links to its row of the
detail table below the matrix; each claim says in how many settings it is supported, and is *mixed* where the
settings disagree. A chapter shows one claim part on every setting with :class:`SettingVerdicts`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from layercollapse.claims.verdicts import (
    CLAIMS,
    METADATA_KEY,
    STATUSES,
    Verdict,
    claim_base,
    load_verdicts,
    record_settings,
)
from layercollapse.model.loading import model_architecture
from layercollapse.site.ledger import MIXED, BADGE_CLASS, CLAIM_SHORT, agreement_summary, badge, chapter_of, key_number
from layercollapse.site.tables import Table, people_table

__all__ = ["MIXED", "ClaimRow", "matrix_rows", "setting_order", "matrix_html", "detail_table", "SettingVerdicts",
           "cell_anchor", "agreement_summary"]

#: One character per status for the matrix cells (the badge's colour and its hover say the rest).
SYMBOL = {"supported": "✓", "not supported": "✗", "inconclusive": "?"}


def setting_order(keys: Sequence[str], main: str = "") -> list[str]:
    """Setting keys (``model@task@format@<k>shot``) grouped by architecture, the main setting's group and the main
    setting first, then by model, task, format and shots."""
    def architecture(key: str) -> str:
        return model_architecture(key.split("@")[0])

    first = architecture(main) if main else ""
    return sorted(dict.fromkeys(keys), key=lambda key: (architecture(key) != first, architecture(key), key != main,
                                                        key))


def cell_anchor(claim: str, setting: str) -> str:
    """The id of a (claim, setting) row of the detail table, which the matrix cell links to."""
    return "cell-" + re.sub(r"[^A-Za-z0-9]+", "-", f"{claim}-{setting}").strip("-").lower()


@dataclass(frozen=True)
class ClaimRow:
    """One claim part across the settings it is decided on.

    Attributes:
        claim: the claim part (``C5b``); cells: setting key -> its verdict.
        status: the status every setting agrees on, or :data:`MIXED`.
    """

    claim: str
    cells: Mapping[str, Verdict]

    @property
    def counts(self) -> dict[str, int]:
        """Settings per status, in :data:`STATUSES` order."""
        return {status: sum(verdict.status == status for verdict in self.cells.values()) for status in STATUSES}

    @property
    def status(self) -> str:
        statuses = {verdict.status for verdict in self.cells.values()}
        return statuses.pop() if len(statuses) == 1 else MIXED

    def summary(self) -> str:
        """E.g. "supported in 3 of 5 settings (not supported 1, inconclusive 1)"."""
        return agreement_summary(self.counts)


def matrix_rows(verdicts: Mapping[str, Verdict]) -> list[ClaimRow]:
    """The claim parts decided per setting (verdicts with a format), in ledger order, each with its cells."""
    parts: dict[str, dict[str, Verdict]] = {}
    for verdict in verdicts.values():
        if verdict.format is not None:
            parts.setdefault(verdict.claim, {})[verdict.setting_key] = verdict
    order = list(CLAIMS)
    return [ClaimRow(claim, cells) for claim, cells in
            sorted(parts.items(), key=lambda item: (order.index(claim_base(item[0])), item[0]))]


def _short(claim: str) -> str:
    return CLAIM_SHORT.get(claim) or CLAIM_SHORT[claim_base(claim)]


#: How a matrix column names a task (short enough for a dozen columns in the text column).
TASK_ABBREVIATIONS = {"arc_easy": "ARC-E", "arc_challenge": "ARC-C", "hellaswag": "HSwag", "mmlu": "MMLU",
                      "openbookqa": "OBQA", "piqa": "PIQA"}


def _setting_header(key: str) -> str:
    """A column's header: the task, the format and the shots (the model and its architecture head their columns)."""
    _, task, format, shots = key.split("@")
    return (f'<span title="{html.escape(key)}">{html.escape(TASK_ABBREVIATIONS.get(task, task))}<br>'
            f'{html.escape(format)}<br>{html.escape(shots.removesuffix("shot"))}-shot</span>')


def _spans(keys: Sequence[str], name) -> list[tuple[str, int]]:
    """Consecutive runs of ``keys`` with the same ``name(key)``: (name, length) each, for a spanning header row."""
    runs: list[tuple[str, int]] = []
    for key in keys:
        value = name(key)
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def matrix_html(rows: Sequence[ClaimRow], main: str = "", link_prefix: str = "") -> str:
    """The matrix as an HTML table (a raw block of the page): one row per claim part, one column per setting under
    two spanning header rows (architecture, model), a badge per cell (hover: the deciding number; link: its detail
    row); each claim's cell says its overall status (the one every setting agrees on, or *mixed*) and "supported in
    n of m settings"."""
    settings = setting_order([key for row in rows for key in row.cells], main)
    architectures = _spans(settings, lambda key: model_architecture(key.split("@")[0]))
    models = _spans(settings, lambda key: key.split("@")[0])
    head = ['<tr><th rowspan="3" class="matrix-claim">Claim</th>',
            *(f'<th colspan="{n}" class="matrix-group">{html.escape(group)}</th>' for group, n in architectures),
            "</tr><tr>",
            *(f'<th colspan="{n}" class="matrix-model">{html.escape(model)}</th>' for model, n in models),
            "</tr><tr>",
            *(f'<th class="matrix-setting">{_setting_header(key)}</th>' for key in settings), "</tr>"]
    body = []
    for row in rows:
        title, path = chapter_of(row.claim)
        cells = []
        for key in settings:
            verdict = row.cells.get(key)
            if verdict is None:
                cells.append('<td class="matrix-cell">·</td>')
                continue
            hover = html.escape(f"{row.claim} on {verdict.setting}: {verdict.status}; {key_number(verdict)}", quote=True)
            cells.append(f'<td class="matrix-cell"><a href="#{cell_anchor(row.claim, key)}" title="{hover}">'
                         f'<span class="badge {BADGE_CLASS[verdict.status]} matrix-badge" data-claim="{row.claim}" '
                         f'data-setting="{html.escape(key)}">{SYMBOL[verdict.status]}</span></a></td>')
        body.append(f'<tr><th class="matrix-claim"><a href="{link_prefix}{path}" title="{html.escape(title)}">'
                    f'{row.claim}</a> {html.escape(_short(row.claim))}<br><span class="matrix-summary">'
                    f'<span class="badge {BADGE_CLASS[row.status]}">{row.status}</span> {html.escape(row.summary())}'
                    f'</span></th>{"".join(cells)}</tr>')
    legend = " ".join(f'<span class="badge {BADGE_CLASS[status]}">{SYMBOL[status]}</span> {status}'
                      for status in STATUSES)
    return (f'<table class="table table-sm verdict-matrix"><thead>{"".join(head)}</thead><tbody>{"".join(body)}'
            f'</tbody></table>\n<p class="matrix-legend">{legend}; · not decided on that setting. Hover a cell for '
            "its deciding number; click it for the row below.</p>")


def detail_table(rows: Sequence[ClaimRow], main: str = "") -> Table:
    """One row per (claim, setting) of the matrix, with the anchor its cell links to: claim, setting, verdict badge,
    deciding number (95% CI)."""
    import pandas as pd

    records = []
    for row in rows:
        for key in setting_order(list(row.cells), main):
            verdict = row.cells[key]
            anchor = cell_anchor(row.claim, key)
            records.append({"claim": f"[{row.claim}]{{#{anchor}}}", "setting": verdict.setting,
                            "verdict": badge(verdict.status, row.claim, "matrix-badge"),
                            "number": key_number(verdict)})
    frame = pd.DataFrame(records, columns=["claim", "setting", "verdict", "number"])
    return people_table(frame, {"claim": "Claim", "setting": "Setting", "verdict": "Verdict",
                                "number": "Deciding number (95% CI)"}, fold_after=None)  # open: the cells link here


@dataclass(frozen=True)
class SettingVerdicts:
    """One claim part decided on every studied setting, as a chapter shows it: the main setting's verdict callout
    first, then every setting's verdict in a table (badge and deciding number) and the other settings' full texts in a
    collapsed callout. Its display metadata carries every verdict (``METADATA_KEY``: a list)."""

    verdicts: tuple[Verdict, ...]  # the main setting's first

    @classmethod
    def decide(cls, rule, inputs: Mapping, **options) -> SettingVerdicts:
        """Decide one claim part on every setting: ``rule(*inputs[setting], **options)``, each verdict marked with its
        setting (``Verdict.on``). ``inputs``: ``profiles.Setting`` -> the rule's positional arguments, the main
        setting first (``Experiments.per_setting``'s order)."""
        return cls(tuple(rule(*arguments, **options).on(setting) for setting, arguments in inputs.items()))

    @property
    def main(self) -> Verdict:
        """The main setting's verdict (the one the chapter's prose quotes)."""
        return self.verdicts[0]

    def summary(self) -> str:
        """How the settings went, as the ledger says it ("supported in 2 of 3 settings (inconclusive 1)")."""
        return agreement_summary({status: sum(verdict.status == status for verdict in self.verdicts)
                                  for status in STATUSES})

    def _repr_markdown_(self) -> str:
        main, *others = self.verdicts
        parts = [main._repr_markdown_()]
        if others:
            lines = ["| Setting | Verdict | Deciding number (95% CI) |", "|---|---|---|"]
            lines += [f"| {verdict.setting} | {badge(verdict.status, verdict.claim, 'matrix-badge')} | "
                      f"{key_number(verdict)} |"
                      for verdict in self.verdicts]
            parts.append(f"**{main.claim} on every studied setting: {self.summary()}.**\n\n"
                         + "\n".join(lines) + "\n")
            texts = "\n\n".join(f"{verdict.marker}\n\n**{verdict.setting}: {verdict.status}.** {verdict.summary()}. "
                                f"{verdict.text}" for verdict in others)
            parts.append(f'::: {{.callout-note collapse="true" title="{main.claim} on the other settings, in full"}}\n'
                         f"{texts}\n:::\n")
        return "\n".join(parts)

    def show(self, profile: str | None = None) -> None:
        """Record the verdicts (``verdicts.record_settings``: the part's files are exactly these) and display them."""
        from IPython.display import display

        record_settings(self.verdicts, profile)
        display(self, metadata={METADATA_KEY: [verdict.to_dict() for verdict in self.verdicts]})


def studied_verdicts(profile: str | None = None) -> dict[str, Verdict]:
    """The recorded verdicts of ``profile`` decided per setting (those the matrix shows), by key."""
    return {key: verdict for key, verdict in load_verdicts(profile).items() if verdict.format is not None}
