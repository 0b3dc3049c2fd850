"""Tables and notes for people: what a chapter shows instead of a raw DataFrame.

A chapter builds its numbers as a tidy DataFrame (``claims/``) and displays them through
:func:`people_table`: chosen columns under human headers, sensible rounding, intervals as
``[low, high]``, p-values as ``0.031`` or ``2.7e-19``, no index and no ``NaN`` (a dash, or a
word such as "no transition"), long tables folded behind a ``<details>``. The result renders as a
Markdown pipe table, which Quarto styles with the site's theme and JupyterLab shows as a table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING = "—"


def format_p(p: float | None) -> str:
    """A p-value for people: ``0.031``, ``0.0034``, ``2.7e-19``; ``< 1e-300`` where it underflowed to 0; a dash
    when undefined."""
    if p is None or not math.isfinite(p):
        return MISSING
    if p <= 0:
        return "< 1e-300"
    if p < 0.01:
        return f"{p:.2g}".replace("e-0", "e-")
    return f"{min(p, 1.0):.3f}".rstrip("0").rstrip(".")


def format_number(value, digits: int = 3, missing: str = MISSING) -> str:
    """A number rounded to ``digits`` decimals (integers as integers); ``missing`` when NaN or None."""
    if _undefined(value):
        return missing
    if isinstance(value, (bool, str, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def estimate_text(value: float | None, ci: Sequence[float] | None = None, digits: int = 3) -> str:
    """An estimate for prose: ``0.009 (95% CI -0.012 to 0.023)``; ``undefined`` when there is none."""
    if _undefined(value):
        return "undefined"
    text = format_number(value, digits)
    if ci is not None and not any(_undefined(bound) for bound in ci):
        text += f" (95% CI {format_number(ci[0], digits)} to {format_number(ci[1], digits)})"
    return text


@dataclass(frozen=True)
class Table:
    """Display strings of a table (``frame``), shown as a Markdown pipe table with the columns in
    ``right`` right-aligned (numbers); ``fold_after`` rows or more fold behind a ``<details>``."""

    frame: pd.DataFrame
    right: frozenset[str] = frozenset()
    summary: str = "Show the table"
    fold_after: int | None = None

    def to_markdown(self) -> str:
        headers = [str(column) for column in self.frame.columns]
        aligns = ["---:" if header in self.right else ":---" for header in headers]
        lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |"]
        lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in self.frame.itertuples(index=False)]
        table = "\n".join(lines)
        if self.fold_after is not None and len(self.frame) >= self.fold_after:
            return f"<details><summary>{self.summary} ({len(self.frame)} rows)</summary>\n\n{table}\n\n</details>\n"
        return table + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def people_table(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    digits: int | Mapping[str, int] = 3,
    intervals: Mapping[str, tuple[str, str]] | None = None,
    estimates: Mapping[str, tuple[str, str, str]] | None = None,
    p_values: Sequence[str] = (),
    missing: Mapping[str, str] | None = None,
    fold_after: int | None = 20,
    summary: str = "Show the table",
) -> Table:
    """The columns of ``frame`` a reader needs, formatted.

    Args:
        frame: a tidy table (one row per line of the displayed table).
        columns: source column (or a key of ``intervals``) -> header, in display order; other columns are dropped.
        digits: decimals of float columns (one value, or per source column); integers stay integers.
        intervals: name -> (low column, high column), shown as ``[low, high]`` with the same digits.
        estimates: name -> (estimate, low, high columns), shown in one column as ``estimate [low, high]`` (narrower
            than an estimate and an interval side by side).
        p_values: source columns shown with :func:`format_p`.
        missing: per source column, the word shown where the value is undefined (default: a dash).
        fold_after: tables with at least this many rows are folded behind a ``<details>`` (None: never).
    Returns:
        a :class:`Table` (a Markdown pipe table in Quarto and JupyterLab).
    Raises:
        KeyError: a named column is not in ``frame`` (the message lists the columns it has).
        ValueError: two columns get the same header (one would hide the other).
    """
    intervals, estimates, missing = dict(intervals or {}), dict(estimates or {}), dict(missing or {})
    headers = list(columns.values())
    repeated = sorted({header for header in headers if headers.count(header) > 1})
    if repeated:
        raise ValueError(f"people_table: header(s) {repeated} given to more than one column; give each column its own")
    wanted = [name for name in columns if name not in intervals and name not in estimates]
    wanted += [column for low_high in (*intervals.values(), *estimates.values()) for column in low_high]
    absent = [name for name in wanted if name not in frame.columns]
    if absent:
        raise KeyError(f"people_table: no column(s) {absent} in the table; it has {list(frame.columns)}")
    shown, right = {}, set()
    for name, header in columns.items():
        places = digits.get(name, 3) if isinstance(digits, Mapping) else digits
        dash = missing.get(name, MISSING)
        if name in intervals or name in estimates or pd.api.types.is_numeric_dtype(frame[name]):
            right.add(header)
        if name in estimates:
            value, low, high = estimates[name]
            shown[header] = [dash if _undefined(v) else " ".join(filter(None, (format_number(v, places),
                                                                                _bracket(a, b, places))))
                             for v, a, b in zip(frame[value], frame[low], frame[high])]
        elif name in intervals:
            low, high = intervals[name]
            shown[header] = [_bracket(a, b, places) or MISSING for a, b in zip(frame[low], frame[high])]
        elif name in p_values:
            shown[header] = [dash if _undefined(p) else format_p(float(p)) for p in frame[name]]
        else:
            shown[header] = [format_number(value, places, dash) if not _undefined(value) else dash
                             for value in frame[name]]
    return Table(pd.DataFrame(shown), frozenset(right), summary=summary, fold_after=fold_after)


def _bracket(low, high, places: int) -> str:
    """An interval as ``[low, high]``, or "" where a bound is undefined."""
    return "" if _undefined(low) or _undefined(high) else f"[{format_number(low, places)}, {format_number(high, places)}]"


def _undefined(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not math.isfinite(value))


@dataclass(frozen=True)
class Note:
    """A short Markdown note (the setting of a chapter): a sentence and an optional list of facts."""

    sentence: str
    facts: tuple[tuple[str, str], ...] = ()

    def _repr_markdown_(self) -> str:
        items = "".join(f"- **{name}:** {value}\n" for name, value in self.facts)
        return f"{self.sentence}\n\n{items}" if items else f"{self.sentence}\n"


def setting_note(profile, facts: Mapping[str, str] | None = None) -> Note:
    """What a chapter ran on: the profile in one sentence (its description's first sentence; the rest is on the
    Methods page) and the chapter's own facts (``name -> value``)."""
    first = profile.description.strip().split(". ")[0].rstrip(".")
    sentence = (f"Computed with the **{profile.name}** profile ({first[0].lower() + first[1:]}); "
                "models, tasks and item counts are on the [Methods](methods.qmd) page.")
    return Note(sentence, tuple((facts or {}).items()))


def transition_text(layer: int | None, ci: tuple[int, int] | None) -> str:
    """``"22 (95% CI 21–23)"``, ``"22"`` without an interval, or ``"no transition"`` when none was found."""
    if layer is None:
        return "no transition"
    return f"{layer} (95% CI {ci[0]}–{ci[1]})" if ci is not None else str(layer)


@dataclass(frozen=True)
class FirstRule:
    """A registered rule's verdict shown beside the rule that amended it: a grey callout with its status, its
    statistic and the reason for the amendment. Never recorded in the ledger and without a verdict marker."""

    verdict: object  # claims.verdicts.Verdict
    reason: str

    def _repr_markdown_(self) -> str:
        verdict = self.verdict
        on = f" ({verdict.setting})" if verdict.setting else ""
        title = f"{verdict.claim}{on} by the first registered rule: {verdict.status}".replace('"', "'")
        return (f"::: {{.callout-note title=\"{title}\"}}\n**{verdict.summary()}.**\n\n{verdict.text}\n\n"
                f"*Why the rule was amended.* {self.reason}\n:::\n")


@dataclass(frozen=True)
class Amendment:
    """A registered rule that decides no verdict of its own (a classification) shown as amended: a grey callout with
    the reason, beside the tables that show its results under both rules."""

    title: str
    reason: str

    def _repr_markdown_(self) -> str:
        title = self.title.replace('"', "'")
        return f"::: {{.callout-note title=\"{title}\"}}\n{self.reason}\n:::\n"


def collapse_evidence(rows: Sequence[Mapping], claim: str, value: str, *, fraction: bool = True,
                      digits: Mapping[str, int] | None = None) -> Table:
    """The per-model evidence table of a claim decided on each model's Iterative Pruning trace (C1, C2, R3): one
    row per model (``claims.collapse.collapse_summary`` rows), its collapse step with the interval, and the claim's
    verdict with its statistic and interval in one column (header ``value``; e.g. "Excess", or "CKA at collapse" with
    the range over the collapse interval); ``fraction``: also the fraction of layers removed at the collapse."""
    columns = {"model": "Model", "n_layers": "Layers", "intact_accuracy": "Intact accuracy", "chance": "Chance",
               "collapse_step": "Collapse step [95% CI]",
               **({"fraction_at_collapse": "Fraction removed there"} if fraction else {}),
               "status": claim, "value": f"{value} [95% CI]"}
    places = {"collapse_step": 0, **dict(digits or {})}
    return people_table(pd.DataFrame(list(rows)), columns,
                        estimates={"collapse_step": ("collapse_step", "step_low", "step_high"),
                                   "value": ("value", "value_low", "value_high")},
                        digits=places, missing={"collapse_step": "no collapse"})


def random_baseline_text(areas: Mapping[str, object], n_seeds: Mapping[str, int]) -> str:
    """One sentence per model: the area between its iterative and mean random accuracy curves
    (``claims.collapse.area_between``, a ``stats.Interval``) and the number of random seeds behind it."""
    return " ".join(f"On {model}, the area between the iterative and the mean random accuracy curve is "
                    f"{estimate_text(area.estimate, (area.low, area.high))} ({area.method}, {n_seeds[model]} seeds)."
                    for model, area in areas.items())


def candidate_people_table(candidates: pd.DataFrame) -> Table:
    """The candidate settings of the study (``claims.breadth.candidate_table``) for people, seven columns that fit the
    text column: the setting, the transition layer with its interval, the share of resamples that find it, its height
    with its interval, the final accuracy, chance and whether (or why not) the setting qualifies."""
    def interval(value, low, high, digits):
        return MISSING if _undefined(value) else (f"{format_number(value, digits)} "
                                                  f"[{format_number(low, digits)}, {format_number(high, digits)}]")

    frame = pd.DataFrame({
        "setting": [f"{row.model} · {row.task} · {row.format}, {row.shots}-shot" for row in candidates.itertuples()],
        "layer": [interval(row.layer if not pd.isna(row.layer) else None, row.layer_low, row.layer_high, 0)
                  for row in candidates.itertuples()],
        "found": candidates["found"], "height": [interval(row.height, row.height_low, row.height_high, 2)
                                                 for row in candidates.itertuples()],
        "final_accuracy": candidates["final_accuracy"], "chance": candidates["chance"],
        "qualifies": ["yes" if row.qualifies else f"no: {row.why_not}" for row in candidates.itertuples()]})
    return people_table(frame, {"setting": "Setting", "layer": "Transition layer [95% CI]", "found": "Found in",
                                "height": "Accuracy gained [95% CI]", "final_accuracy": "Final accuracy",
                                "chance": "Chance", "qualifies": "Qualifies"},
                        digits={"found": 2, "final_accuracy": 2, "chance": 2}, fold_after=None)
