"""params.yaml is what `dvc exp run` would compose from conf/ (dvc repro never recomposes)."""

import pytest

from pathlib import Path

from a2i import params

REPO = Path(__file__).resolve().parent.parent


def test_committed_params_equal_composition_of_conf():
    assert params.committed() == params.compose()


def test_profiles_and_groups_compose():
    thesis = params.compose(overrides=["profile=thesis", "data=suburmp", "projection=pca"])
    assert thesis["lengths"] == [1, 2, 3, 4, 5]
    assert thesis["train"]["model_size"] == "thesis" and thesis["train"]["projection"] == "pca"
    assert thesis["prepare"]["raw"].startswith("data/download/")
    assert thesis["prepare"]["lengths"] == thesis["lengths"]  # interpolations resolved as dvc does


def test_every_stage_has_its_own_section():
    composed = params.compose()
    for stage in ("synthesize", "download", "prepare", "finetune", "embed", "train", "sample", "classify",
                  "evaluate", "report"):
        assert isinstance(composed[stage], dict), stage


def test_missing_section_is_a_one_line_error(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {epochs: 1}\n")
    with pytest.raises(SystemExit, match="has no section 'sample'"):
        params.load_section("sample", tmp_path / "params.yaml")


@pytest.mark.parametrize("text, message", [
    ("lengths: [2\nfoo: : bar\n", r"params.yaml is not valid YAML \(line \d+, column \d+\): "),
    ("just a string with evaluate inside\n", "params.yaml holds a str, not a mapping of sections"),
    ("- train\n- sample\n", "params.yaml holds a list, not a mapping of sections"),
    ("train: {epochs: \xff}\n", r"params.yaml is not UTF-8 text \(invalid start byte at byte 16\)"),
])
def test_a_malformed_params_file_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_bytes(text.encode("latin-1"))
    for read in (lambda: params.load_section("evaluate", path), lambda: params.committed(path)):
        with pytest.raises(SystemExit, match=message) as raised:
            read()
        assert str(raised.value.code).startswith(f"error: {path}") and "\n" not in str(raised.value.code)


def _checkout(root):
    """A checkout of the real conf/ (the writer validates what it composes) beside a stub dvc.yaml."""
    import shutil

    shutil.copytree(REPO / "conf", root / "conf")
    (root / "dvc.yaml").write_text("stages: {}\n")
    return root


def a2i(*args):
    from click.testing import CliRunner

    from a2i.cli import main

    return CliRunner().invoke(main, ["params", *args])


def test_cli_acts_on_the_checkout_of_the_current_directory(tmp_path, monkeypatch):
    root = _checkout(tmp_path)
    (root / "stages").mkdir()
    monkeypatch.chdir(root / "stages")  # found by walking up to dvc.yaml
    result = a2i("--check")
    assert result.exit_code == 1 and result.output.strip() == f"error: {root / 'params.yaml'} not found: run " \
                                                               "`a2i params` to compose it from conf/"
    result = a2i("profile=micro")
    assert result.exit_code == 0, result.output
    assert params.committed(root / "params.yaml") == params.compose(root / "conf", ["profile=micro"])
    assert a2i("--check", "profile=micro").exit_code == 0
    result = a2i("--check")
    assert result.exit_code == 1 and "differs from the composition of conf/" in result.output


def test_cli_writes_only_parameters_the_check_stage_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(_checkout(tmp_path))
    result = a2i("train.epochs=abc", "sample.steps=0")
    assert result.exit_code == 1
    assert result.output.splitlines() == ["error: train.epochs='abc' is not an integer >= 1",
                                          "error: sample.steps=0 is not an integer >= 1"]
    assert not (tmp_path / "params.yaml").exists()


def test_cli_refuses_outside_a_checkout_and_bad_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = a2i()
    assert result.exit_code == 1 and result.output.startswith(f"error: no dvc.yaml in {tmp_path} or any folder")
    assert not (tmp_path / "params.yaml").exists()
    _checkout(tmp_path)
    result = a2i("profile=huge")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Could not find 'profile/huge'" in result.output
    assert not (tmp_path / "params.yaml").exists()


@pytest.mark.parametrize("group_file", ["config.yaml", "profile/micro.yaml"])
def test_a_conf_file_that_is_no_yaml_is_a_one_line_error_naming_it(tmp_path, monkeypatch, group_file):
    root = _checkout(tmp_path)
    with open(root / "conf" / group_file, "a") as file:
        file.write("train: [1\n")
    monkeypatch.chdir(root)
    result = a2i("profile=micro")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error: {root / 'conf' / group_file} is not valid YAML (line ")
    assert not (root / "params.yaml").exists()


def test_a_conf_file_that_is_not_utf8_is_a_one_line_error_naming_it(tmp_path, monkeypatch):
    root = _checkout(tmp_path)
    with open(root / "conf" / "profile" / "micro.yaml", "ab") as file:
        file.write(b"# caf\xe9\n")
    monkeypatch.chdir(root)
    result = a2i("profile=micro")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error: {root / 'conf' / 'profile' / 'micro.yaml'} is not UTF-8 text (")
    assert not (root / "params.yaml").exists()
