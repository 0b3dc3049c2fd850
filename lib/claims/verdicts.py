"""Verdicts: each chapter's answer to one claim of the ledger, shown and recorded.

A chapter ends with ``Verdict(...).show()``. That displays the verdict (markdown and
HTML, both carrying the marker ``<!-- verdict:<claim> -->`` and the verdict as display
metadata under ``layercollapse-verdict``) and writes it to
``data/verdicts/<profile>/<claim>.json``, from which ``index.qmd`` builds the ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from layercollapse import settings
from layercollapse.settings import active_profile
from layercollapse.paths import project_root
from layercollapse.storage.store import (
    Store,
    content_digest,
    json_digest,
    results_read,
    write_atomic,
)

STATUSES = ("supported", "not supported", "inconclusive")
METADATA_KEY = "layercollapse-verdict"  # display-metadata key the chapter tests look for
MARKER_PREFIX = "<!-- verdict:"  # the marker is MARKER_PREFIX + claim + " -->"
#: Quarto callout type of each status: green, red, amber (Bootstrap's success / danger / warning).
CALLOUT_OF_STATUS = {"supported": "tip", "not supported": "important", "inconclusive": "warning"}
DATA_ENV = settings.DATA.name  # overrides <root>/data (tests point it at a temp folder)

# The claims ledger (the paper brief, BRIEF.md): C = the paper's claims, R = the referee's controls,
# P = predictions this project adds ("Beyond the paper"; C5b, the mechanism, is a part of C5).
CLAIMS: dict[str, str] = {
    "C1": "Layer pruning shows a cliff edge: accuracy holds up to a threshold, then collapses abruptly.",
    "C2": "Representation similarity (CKA, cosine) stays high while accuracy collapses, so it does not explain the collapse.",
    "C3": "Decision Margin and Option Frequency show a sharp decision transition splitting the layers "
          "into a Silent Phase and a Decisive Phase.",
    "C4": "Pruning layers of the Decisive Phase costs little.",
    "C5": "Pruning layers of the Silent Phase triggers immediate collapse.",
    "C6": "The Silent Phase degrades under hidden-state noise at sigma^2 = 0.02; the Decisive Phase holds at 0.1.",
    "C7": "Fine-tuning after pruning recovers DM only up to a depth-set bound; recovery plateaus beyond ~40% pruned.",
    "R1": "The findings hold with error bars across seeds, bootstrap CIs, and across models and tasks.",
    "R2": "Layer-wise probes (logit lens, tuned lens) show the transition inside the intact network.",
    "R3": "Random pruning inside each phase, a random-layer baseline and an LM-loss task separate "
          "Silent-Phase disruption from generic early-layer features.",
    "P1": "Along Iterative Pruning, accuracy collapses when the pruner first removes a layer of the intact "
          "network's Silent Phase: the intact readout predicts the collapse point (P1b: removing a Silent-Phase layer "
          "raises the odds of collapse more than removing a Decisive-Phase layer).",
}
#: Claim parts whose rule was amended after it was registered: part -> why. The chapter shows the first rule and its
#: result beside the amended one; a registered rule is never replaced silently.
AMENDED: dict[str, str] = {
    "C5": "Amended on 2026-12-06: Silent pruning 'triggers immediate collapse' when the accuracy after one Silent "
          "layer is removed lies at or below C1's collapse level. The first rule also passed C5 when the Silent "
          "removal was merely significantly worse than a Decisive one, which let a cost that is not a collapse "
          "decide it.",
    "C5c": "Amended on 2026-12-07, before any setting of the verdict matrix had a C5c verdict: decided only where at "
           "least 5 networks of each phase lie in the final-accuracy range both phases reach. Where the phases do not "
           "overlap in accuracy, phase and accuracy separate the outcome together and Firth's penalty, not the data, "
           "splits the effect between them: the first rule could call C5c supported on the very confound it tests.",
    "C5b": "Amended on 2026-12-06: a pruned network keeps the transition when its own readout has one. The first "
           "rule also required its final accuracy not to drop significantly, which re-tests C5 (the accuracy cost "
           "of Silent pruning) and let the verdict on the transition pass or fail for another reason.",
}
_CLAIM_ID = re.compile(r"^(?P<base>[CRP][0-9]+)(?P<part>[a-z]?)$")  # "C3", or a part of it: "C3a"


def claim_base(claim: str) -> str:
    """Ledger entry a claim id belongs to: ``"C3b"`` -> ``"C3"``."""
    match = _CLAIM_ID.match(claim)
    if not match or match["base"] not in CLAIMS:
        raise ValueError(
            f"unknown claim id {claim!r}: use one of {list(CLAIMS)}, optionally with a part letter (e.g. 'C3a')"
        )
    return match["base"]


def verdicts_dir(profile: str | None = None) -> Path:
    """Folder of the recorded verdicts of ``profile`` (None: the active profile)."""
    data = settings.data_root(project_root() / "data")
    return data / "verdicts" / (profile or active_profile())


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim under one profile.

    Attributes:
        claim: ledger id (``C1``…``C7``, ``R1``…``R3``), optionally with a part letter (``C3a``).
        status: ``supported``, ``not supported`` or ``inconclusive``.
        statistic: name of the deciding statistic, e.g. ``"accuracy drop at the cliff"``.
        value: its value (None when not computed).
        ci: its confidence interval (low, high), e.g. 95% item bootstrap; None if none.
        n: number of independent units behind it (items, seeds or runs: say which in ``text``).
        p: p-value of the test, if one was run.
        text: one or two sentences: what was tested, on what, and why this status.
        rule: the function that decided it (``module.function``; set by :func:`verdict_rule`).
        model: the model the verdict is decided on, where a chapter decides a claim once per model or setting; None
            where one verdict covers the chapter's models (R1).
        task: the task the verdict is decided on, where a claim is decided once per (model, task) or setting.
        format, shots: the prompt format and the number of solved examples, where a claim is decided once per
            setting (``profiles.Setting``: every claim of the verdict matrix); else None.
    """

    claim: str
    status: str
    statistic: str
    value: float | None
    text: str
    ci: tuple[float, float] | None = None
    n: int = 0
    p: float | None = None
    rule: str = ""
    model: str | None = None
    task: str | None = None
    format: str | None = None
    shots: int | None = None

    def __post_init__(self) -> None:
        claim_base(self.claim)
        if self.status not in STATUSES:
            raise ValueError(f"verdict status {self.status!r} is not one of {STATUSES}")
        if self.ci is not None:
            object.__setattr__(self, "ci", tuple(_stable(x) for x in self.ci))
            if len(self.ci) != 2:
                raise ValueError(f"ci must be (low, high), got {self.ci}")
        if self.value is not None:
            object.__setattr__(self, "value", _stable(self.value))
        if self.p is not None:
            object.__setattr__(self, "p", _stable(self.p))
        object.__setattr__(self, "n", int(self.n))

    @property
    def key(self) -> str:
        """Name of the verdict's file and marker: the claim, ``@model`` for a verdict decided on one model, ``@task``
        after it for one decided on one (model, task), and ``@format@<shots>shot`` for one decided on a setting
        (``claim@`` + ``Setting.key``)."""
        parts = (self.model, self.task, self.format, None if self.shots is None else f"{self.shots}shot")
        return self.claim + "".join(f"@{part}" for part in parts if part is not None)

    @property
    def setting_key(self) -> str:
        """The ``Setting.key`` a verdict is decided on (``model@task@format@<k>shot``), "" for a claim decided once."""
        return self.key.partition("@")[2]

    @property
    def setting(self) -> str:
        """The setting a verdict is decided on, for people: ``qwen2.5-coder-1.5b, arc_easy, letter, 0-shot``; "" for
        none."""
        shots = None if self.shots is None else f"{self.shots}-shot"
        return ", ".join(part for part in (self.model, self.task, self.format, shots) if part is not None)

    def on(self, setting) -> Verdict:
        """This verdict decided on ``setting`` (a ``profiles.Setting``): its model, task, format and shots."""
        return dataclasses.replace(self, model=setting.model, task=setting.task, format=setting.format,
                                   shots=setting.shots)

    @property
    def marker(self) -> str:
        """HTML comment that identifies this verdict in rendered output."""
        return f"{MARKER_PREFIX}{self.key} -->"

    def summary(self) -> str:
        """One line: statistic = value [CI], n, p."""
        parts = [f"{self.statistic} = {_number(self.value)}"]
        if self.ci is not None:
            parts.append(f"95% CI [{_number(self.ci[0])}, {_number(self.ci[1])}]")
        parts.append(f"n = {self.n}")
        if self.p is not None:
            parts.append(f"p = {_number(self.p, 2)}")
        return ", ".join(parts)

    def _repr_markdown_(self) -> str:
        """A Quarto callout coloured by status (Markdown only: Quarto would prefer an HTML version over it)."""
        on = f"{self.claim} ({self.setting})" if self.setting else self.claim
        title = f"Verdict on {on}: {self.status}".replace('"', "'")
        return (
            f"{self.marker}\n\n::: {{.callout-{CALLOUT_OF_STATUS[self.status]} title=\"{title}\"}}\n"
            f"**{self.summary()}.**\n\n{self.text}\n:::\n"
        )

    def __repr__(self) -> str:
        return f"Verdict({self.claim}: {self.status}; {self.summary()})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``ci`` as a list."""
        data = dataclasses.asdict(self)
        data["ci"] = list(self.ci) if self.ci is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict` (extra keys such as ``profile`` are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def record(self, profile: str | None = None) -> Path:
        """Write ``<verdicts_dir(profile)>/<key>.json`` atomically (temp file + os.replace).

        The file carries its evidence (the rule, and every result of the profile's store this process read, with its
        content digest: :func:`store.results_read`) and a digest of everything in it, so that
        :func:`load_verdicts` can refuse a file edited by hand or one whose results changed since.
        """
        profile = profile or active_profile()
        folder = verdicts_dir(profile)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.key}.json"
        # a claim is decided once, once per model, per (model, task) or per setting: the other forms' files are superseded
        parts = self.key.count("@")
        superseded = [path for path in (*folder.glob(f"{self.claim}@*.json"), folder / f"{self.claim}.json")
                      if path.stem.count("@") != parts]
        for old in superseded:
            old.unlink(missing_ok=True)
        record = {**self.to_dict(), "profile": profile, "evidence": results_read(Store(profile=profile))}
        payload = json.dumps({**record, "digest": json_digest(record)}, indent=2, allow_nan=True) + "\n"
        write_atomic(path, payload.encode())
        return path

    def show(self, profile: str | None = None) -> None:
        """Display the verdict in the notebook and record it for the ledger."""
        from IPython.display import display

        self.record(profile)
        display(self, metadata={METADATA_KEY: self.to_dict()})


def record_settings(verdicts: Sequence[Verdict], profile: str | None = None) -> list[Path]:
    """Record one claim part's verdicts on every setting it is decided on (:meth:`Verdict.record`), and remove that
    part's files of settings not among them (a setting no longer studied): what the folder holds for the part is then
    exactly this decision. Returns the paths written."""
    claims = {verdict.claim for verdict in verdicts}
    if len(claims) > 1:
        raise ValueError(f"record_settings takes the verdicts of one claim part, got {sorted(claims)}")
    paths = [verdict.record(profile) for verdict in verdicts]
    if verdicts:
        for path in verdicts_dir(profile).glob(f"{verdicts[0].claim}@*.json"):
            if path not in paths:
                path.unlink()
    return paths


def lies_above(ci: Sequence[float], threshold: float, strict: bool = True) -> bool:
    """Whether the whole interval ``(low, high)`` lies above ``threshold`` (``strict=False``: at or above): the
    one-sided test every verdict rule makes of an interval ("significantly above 0": ``lies_above(ci, 0)``)."""
    return float(ci[0]) > threshold if strict else float(ci[0]) >= threshold


def lies_below(ci: Sequence[float], threshold: float, strict: bool = True) -> bool:
    """Whether the whole interval ``(low, high)`` lies below ``threshold`` (``strict=False``: at or below)."""
    return float(ci[1]) < threshold if strict else float(ci[1]) <= threshold


def interval_status(ci: Sequence[float], threshold: float, supported: Literal["above", "below"]) -> str:
    """The three-way verdict of an interval ``(low, high)`` against a threshold fixed before the run.

    ``supported="above"``: "supported" when the whole interval lies at or above ``threshold``, "not supported"
    when it lies wholly below, "inconclusive" when it straddles it; ``"below"`` mirrors it (at or below /
    wholly above).
    """
    if supported not in ("above", "below"):
        raise ValueError(f"supported={supported!r}: use 'above' or 'below'")
    on_side, off_side = (lies_above, lies_below) if supported == "above" else (lies_below, lies_above)
    if on_side(ci, threshold, strict=False):
        return "supported"
    return "not supported" if off_side(ci, threshold) else "inconclusive"


def all_of(*statuses: str) -> str:
    """A verdict that needs every condition: "supported" when all are, "not supported" when any is not,
    else "inconclusive"."""
    if "not supported" in statuses:
        return "not supported"
    return "supported" if all(status == "supported" for status in statuses) else "inconclusive"


def _stable(x: float) -> float:
    """``x`` to 12 significant digits: the last bits of a bootstrap statistic move with the summation order of
    multi-threaded reductions, and a verdict file must not change when nothing did."""
    return float(f"{float(x):.12g}")


class VerdictError(ValueError):
    """A recorded verdict that cannot be verified; the message names the file and how to record it again."""


def verdict_rule(function: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Decorator for the functions that decide a claim: their verdicts record which rule decided them."""
    name = f"{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def decide(*args: Any, **kwargs: Any) -> Verdict:
        return dataclasses.replace(function(*args, **kwargs), rule=name)

    return decide


def _verified(path: Path, profile: str | None) -> tuple[Verdict, list[dict[str, Any]]]:
    """The verdict in ``path`` and its evidence, after checking its digest and that the evidence is still stored
    as it was."""
    again = f"re-render the chapter that shows verdict {path.stem} (profile '{profile or active_profile()}') to record it again"
    try:
        record = json.loads(path.read_text("utf-8"))
        digest = record.pop("digest")
        verdict = Verdict.from_dict(record)
    except json.JSONDecodeError as err:
        raise VerdictError(f"{path} is not valid JSON ({err}); {again}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise VerdictError(f"{path} is not a recorded verdict ({type(err).__name__}: {err}); {again}") from None
    if digest != json_digest(record):
        raise VerdictError(f"{path} was changed after it was recorded (its digest does not match its content); {again}")
    store = Store(profile=profile or active_profile())
    for result in record.get("evidence", []):
        stored = store.load_key(result["kind"], result["key"])
        if stored is None or content_digest(stored.meta) != result["digest"]:
            what = "is no longer stored" if stored is None else "has changed since"
            raise VerdictError(f"{path} was decided from the result {result['kind']}/{result['key']}, which {what} "
                               f"(in {store.root}); {again}")
    return verdict, record.get("evidence", [])


def load_verdict_records(profile: str | None = None) -> dict[str, tuple[Verdict, list[dict[str, Any]]]]:
    """Every recorded verdict of ``profile`` with its evidence (kind, key, digest of each result it was decided
    from), by :attr:`Verdict.key` (claim, or claim@model), in ledger order.

    Raises:
        VerdictError: a file is not valid JSON, was edited after it was recorded, or was decided from
            results that are no longer stored as they were (the message names the file).
    """
    found = {}
    for path in sorted(verdicts_dir(profile).glob("*.json")):
        verdict, evidence = _verified(path, profile)
        found[verdict.key] = (verdict, evidence)
    order = list(CLAIMS)
    return dict(sorted(found.items(), key=lambda item: (order.index(claim_base(item[1][0].claim)), item[0])))


def load_verdicts(profile: str | None = None) -> dict[str, Verdict]:
    """Every recorded verdict of ``profile``, by :attr:`Verdict.key`, in ledger order (see :func:`load_verdict_records`)."""
    return {claim: verdict for claim, (verdict, _) in load_verdict_records(profile).items()}
