"""Prompt formats: ``letter`` (MMLU style) and ``cloze`` (lm-evaluation-harness style; ``commonsense_qa``,
which the harness scores in letter format only, gets a generic cloze template).

A prompt format turns an :class:`~layercollapse.data.tasks.Item` into requests: for
``letter`` one context whose next token is scored at each option letter; for
``cloze`` one (context, continuation) pair per option, scored by the summed
log-likelihood of the continuation.
"""

from __future__ import annotations

from collections.abc import Sequence

from layercollapse.data.tasks import TASK_REGISTRY, Item

FORMATS = ("letter", "cloze")
LETTERS = "ABCDEFGHIJ"


def check_format(format: str) -> str:
    """Return ``format`` or raise naming the allowed ones."""
    if format not in FORMATS:
        raise ValueError(f"Unknown prompt format '{format}'; use one of {FORMATS}")
    return format


def _task_key(task: str | None) -> str | None:
    return task.partition(":")[0] if task else None


def _mmlu_header(item: Item) -> str:
    return f"The following are multiple choice questions (with answers) about {item.subject.replace('_', ' ')}.\n\n"


def letter_block(item: Item, task: str | None = None) -> str:
    """One question in letter format, ending in ``Answer:``.

    MMLU follows the harness's ``mmlu`` task (no "Question:" prefix); other tasks
    prefix "Question: " and show a passage first when the item has one.
    """
    letters = [letter.strip() for letter in option_letters(len(item.options), item)]
    options = "".join(f"{letter}. {text}\n" for letter, text in zip(letters, item.options))
    question = item.question.strip()
    if _task_key(task) == "winogrande":
        question = f"Fill in the blank: {question}"
    if _task_key(task) != "mmlu":
        question = f"Question: {question}"
    passage = f"{item.passage.strip()}\n" if item.passage else ""
    return f"{passage}{question}\n{options}Answer:"


def shots_spec(shots: Sequence[Item]) -> dict[str, list[str]]:
    """The spec entry of k-shot prompts: ``{"shot_ids": [...]}`` in prompt order; empty for zero shots."""
    return {"shot_ids": [shot.id for shot in shots]} if shots else {}


def letter_prompt(item: Item, task: str | None = None, shots: Sequence[Item] = ()) -> str:
    """The full letter-format context: optional MMLU header, k solved shots, then the item."""
    header = _mmlu_header(item) if _task_key(task) == "mmlu" and item.subject else ""
    solved = "".join(f"{letter_block(shot, task)} {LETTERS[shot.gold]}\n\n" for shot in shots)
    return header + solved + letter_block(item, task)


def option_letters(n_options: int, item: Item | None = None) -> list[str]:
    """The continuation scored for each option in letter format: " A", " B", …"""
    if n_options > len(LETTERS):
        which = f"item '{item.id}' has" if item is not None else "got"
        raise ValueError(f"Letter format supports at most {len(LETTERS)} options; {which} {n_options}: "
                         "score it in cloze format (format='cloze')")
    return [f" {LETTERS[k]}" for k in range(n_options)]


def cloze_pairs(item: Item, task: str | None = None, shots: Sequence[Item] = ()) -> list[tuple[str, str]]:
    """(context, continuation) per option, as lm-evaluation-harness formats the task.

    Except where the harness has no cloze variant (``TaskSpec.harness_cloze`` False, i.e.
    ``commonsense_qa``, whose harness task is letter format): there the generic
    ``Question: …\nAnswer:`` template of this project is used. WinoGrande uses the harness's partial scoring: the option fills the blank in
    the context and the rest of the sentence is the shared continuation. ``shots``: solved examples before the item,
    each its context and its gold continuation followed by a blank line, as the harness writes k-shot contexts (the
    MMLU header once, on top).
    """
    key = _task_key(task)
    header = _mmlu_header(item) if key == "mmlu" and item.subject else ""
    solved = "".join(_solved_cloze(shot, task) for shot in shots)
    if key == "winogrande":
        cut = item.question.index("_")
        rest = " " + item.question[cut + 1 :].strip()
        return [(header + solved + item.question[:cut] + option, rest) for option in item.options]
    context = _cloze_context(item, key)
    return [(header + solved + context, " " + option) for option in item.options]


def _cloze_context(item: Item, key: str | None) -> str:
    template = TASK_REGISTRY[key].cloze_template if key in TASK_REGISTRY else "Question: {question}\nAnswer:"
    return template.format(question=item.question.strip(), passage=item.passage.strip())


def _solved_cloze(shot: Item, task: str | None) -> str:
    """One solved k-shot example in cloze format: the context and the gold continuation, then a blank line."""
    key = _task_key(task)
    if key == "winogrande":
        return shot.question.replace("_", shot.options[shot.gold], 1).strip() + "\n\n"
    return f"{_cloze_context(shot, key)} {shot.options[shot.gold]}\n\n"
