"""a2i/config.py: every parameter validated at once, one line per problem, without torch."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from a2i import config, params
from a2i.diffusion import checkpoint_schedule
from a2i.config import ConfigError, FinetuneConfig, SampleConfig, TrainConfig, check_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def committed() -> dict:
    return params.committed(REPO / "params.yaml")


def problems(values: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        check_params(values)
    return error.value.problems


def changed(values: dict, **keys) -> dict:
    """A deep copy of `values` with `section__key=value` (or top-level `key=value`) set."""
    values = copy.deepcopy(values)
    for path, value in keys.items():
        *sections, key = path.split("__")
        target = values
        for section in sections:
            target = target[section]
        target[key] = value
    return values


def test_the_committed_params_validate(committed):
    checked = check_params(committed)
    assert isinstance(checked.sections["train"], TrainConfig) and checked.grid.lengths == committed["lengths"]


@pytest.mark.parametrize("overrides", [["profile=thesis", "data=suburmp"], ["profile=micro"], ["profile=ablation"],
                                       ["projection=pca", "study.variants=[nocfg]"]])
def test_the_profiles_validate(overrides):
    check_params(params.compose(REPO / "conf", overrides))


@pytest.mark.parametrize("key,value,line", [
    ("sample__sampler", "foo", "sample.sampler='foo' is not one of ddpm, ddim, dpmpp"),
    ("sample__ddpm_variance", "fixed", "sample.ddpm_variance='fixed' is not one of fixed_small, fixed_large"),
    ("train__loss_weighting", "x0", "train.loss_weighting='x0' is not one of eps, v"),
    ("train__projection", "lda", "train.projection='lda' is not one of fc, pca"),
    ("train__model_size", "huge", "train.model_size='huge' is not one of tiny, thesis"),
    ("finetune__model_size", "huge", "finetune.model_size='huge' is not one of tiny, thesis"),
    ("train__batch_size", -1, "train.batch_size=-1 is not an integer in 1..4096"),
    ("train__epochs", 2.5, "train.epochs=2.5 is not an integer >= 1"),
    ("finetune__batch_size", 1, "finetune.batch_size=1 is not an integer in 2..4096"),
    ("train__p_uncond", 1.5, "train.p_uncond=1.5 is not a number in [0, 1]"),
    ("classify__min_accuracy", -0.1, "classify.min_accuracy=-0.1 is not a number in [0, 1]"),
    ("train__lr", 0, "train.lr=0 is not a number in (0, 10]"),
    ("finetune__lr", 1e39, "finetune.lr=1e+39 is not a number in (0, 10]"),
    ("finetune__lr_gamma", 0.0, "finetune.lr_gamma=0.0 is not a number in (0, 1]"),
    ("train__ema", "yes", "train.ema='yes' is not a boolean (true or false)"),
    ("train__compile", 1, "train.compile=1 is not a boolean (true or false)"),
    ("evaluate__fid_weights", 3, "evaluate.fid_weights=3 is not a non-empty string or null"),
    ("classify__lr_schedule", "cosine", "classify.lr_schedule='cosine' is not one of constant, onecycle"),
    ("embed__device", "tpu", "embed.device='tpu' is not auto, cpu, cuda or cuda:<index>"),
    ("finetune__device", "cuda:x", "finetune.device='cuda:x' is not auto, cpu, cuda or cuda:<index>"),
    ("train__preview__sampler", "foo", "train.preview.sampler='foo' is not one of ddpm, ddim, dpmpp"),
    ("download__items", ["weights"], "download.items[0]='weights' is not one of suburmp, audioclip, inception"),
    ("download__audioclip__url", "https://example.org/", "download.audioclip.url='https://example.org/' is not a URL "
                                                         "that names a file"),
    ("download__audioclip__sha256", "1921885B" + "0" * 56, "download.audioclip.sha256='1921885B000"),
    ("download__suburmp__sha256", "sha256:" + "0" * 64, "download.suburmp.sha256='sha256:000"),
    ("prepare__on_bad_file", "ignore", "prepare.on_bad_file='ignore' is not one of error, skip"),
    ("prepare__crop", {"piano": [0, 0, 1, 1]}, "prepare.crop key='piano' is not one of bassoon"),
    ("prepare__lengths", [0.25], "prepare.lengths[0]=0.25 is not a positive multiple of 0.1 s up to 10"),
    ("prepare__lengths", [2, 100], "prepare.lengths[1]=100 is not a positive multiple of 0.1 s up to 10"),
    ("alignments", ["text", "audio"], "alignments[1]='audio' is not one of text, frozen, mutual"),
    ("alignments", [], "alignments=[] is not a non-empty list of one of text, frozen, mutual"),
    ("lengths", [11], "lengths[0]=11 is not an integer in 1..10"),
    ("study__variants", ["nocfg", "big"], "study.variants[1]='big' is not one of nocfg, pca, nonorm"),
    ("report__dataset", "urmp", "report.dataset='urmp' is not one of synthetic, suburmp"),
    ("sample__seeds", [-1], "sample.seeds[0]=-1 is not an integer in 0..4294967295"),
    ("sample__seeds", [2**32], "sample.seeds[0]=4294967296 is not an integer in 0..4294967295"),
    ("sample__seeds", [0, 1, 0], "sample.seeds=[0, 1, 0] repeats 0: list each item once"),
    ("sample__cfg_scales", [1, 3, 3.0], "sample.cfg_scales=[1, 3, 3.0] repeats 3.0: list each item once"),
    ("download__items", ["inception", "inception"], "download.items=['inception', 'inception'] repeats 'inception'"),
    ("train_sr__t_start", 5000, "train_sr.t_start=5000 is not an integer in 2..1000 or null"),
    ("synthesize__performance_seconds", 2.0,
     "synthesize.performance_seconds=2.0 is not a multiple of 0.1 s in 2.6..3600"),
])
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(committed, key, value, line):
    found = problems(changed(committed, **{key: value}))
    assert len(found) == 1 and found[0].startswith(line), found


def test_repeated_bad_items_are_each_a_problem_not_also_a_repeat(committed):
    # a list's items are checked before its repeats, which need them hashable
    assert problems(changed(committed, sample__seeds=[[0], [0]])) == [
        f"sample.seeds[{i}]=[0] is not an integer in 0..4294967295" for i in (0, 1)]


@pytest.mark.parametrize("key, value", [("crop", [0, 0, 1, 1]), ("crop", [0.5, 0, 0.2, 1]), ("crop", [True, 0, 1, 1]),
                                        ("crop", [0, 0, 1]), ("crop", "0 0 1 1"), ("crop", [0, 0, float("inf"), 1]),
                                        ("trim", [0.5, 1]), ("trim", [0.5, -1]), ("trim", [float("nan"), 0])])
def test_params_and_the_library_take_the_same_crop_boxes_and_trim_spans(committed, key, value):
    from a2i.data.prepare import validate_crop, validate_trim

    name = "cello" if key == "crop" else "cello00"
    try:
        check_params(changed(committed, **{f"prepare__{key}": {name: value}}))
        in_params = True
    except ConfigError:
        in_params = False
    try:
        (validate_crop if key == "crop" else validate_trim)({name: value})
        in_library = True
    except ValueError:
        in_library = False
    assert in_params == in_library


def test_missing_and_unknown_keys_are_problems(committed):
    values = changed(committed, train__bach_size=8)
    del values["sample"]["steps"]
    del values["evaluate"]
    found = problems(values)
    assert "sample.steps is missing" in found and "evaluate is missing (a section of params.yaml)" in found
    assert any(line.startswith("train.bach_size is not a known parameter") for line in found), found


def test_every_problem_is_reported_together(committed):
    found = problems(changed(committed, sample__sampler="foo", train__batch_size=-1, classify__augment="no"))
    assert found == ["train.batch_size=-1 is not an integer in 1..4096",
                     "sample.sampler='foo' is not one of ddpm, ddim, dpmpp",
                     "classify.augment='no' is not a boolean (true or false)"]


@pytest.mark.parametrize("overrides,line", [
    (["lengths=[1,3]", "prepare.lengths=[1,2]", "study.length=1"], "lengths=3 is not in prepare.lengths=[1, 2]"),
    (["lengths=[2,1]", "study.length=1"], "lengths[0]=2 is not the smallest whole-second length of prepare.lengths="
                                          "[2, 1]"),
    (["prepare.lengths=[1,2]"], "lengths[0]=2 is not the smallest whole-second length of prepare.lengths=[1, 2]"),
    (["lengths=[8]", "study.variants=[]", "study.length=8"], "prepare.lengths[0]=8 is not at most 7 s, half of "
                                            "synthesize.performance_seconds=14"),
    (["profile=micro", "lengths=[3]", "study.length=3"], "prepare.lengths[0]=3 is not at most 2 s"),
    (["study.length=3", "train_sr.embedding=text-2s"], "study.alignment='text' and study.length=3 are not a cell "
                                                       "of the grid"),
    (["train_sr.embedding=frozen-1s"], "train_sr.embedding='frozen-1s' is not a cell of the grid"),
    (["train_sr.audio=true"], "train_sr.audio=true conditions on the text-2s embeddings (train_sr.embedding), but "
                              "sample_sr upsamples the cell selected on validation, one of the grid's 3"),
    (["prepare.hr_image_size=96"], "prepare.hr_image_size=96 is not prepare.image_size=32 times a power of two"),
    (["sample_sr.guidance=5"], "sample_sr.guidance=5.0 is not sample.guidance=3.0 (sample_sr upsamples the "
                               "checkpoint selected at sample.guidance)"),
    (["lengths=[1,2]", "prepare.lengths=[1,2]", "train_sr.embedding=frozen-1s"],
     "train_sr.embedding='frozen-1s' is not of study.length=2 s"),
    (["download.items=[suburmp]", "data=suburmp", "finetune.model_size=thesis", "evaluate.fid_weights=null"],
     "finetune.checkpoint=data/download/audioclip/AudioCLIP-Partial-Training.pt lies in data/download/audioclip, "
     "but download.items=['suburmp'] does not fetch audioclip"),
    (["prepare.image_size=36", "prepare.hr_image_size=72"], "prepare.image_size=36 is not a multiple of 8 in "
     "8..1024"),
    (["prepare.image_size=80000", "prepare.hr_image_size=1024"], "prepare.image_size=80000 is not a multiple of 8 "
     "in 8..1024"),
    (["report.dataset=suburmp"], "report.dataset='suburmp' is not 'synthetic', the data prepare.raw="),
    (["study.epoch=3"], "sample.cfg_epoch=3 is not a checkpoint epoch of train.epochs=4 and "
                        "train.checkpoint_every=2"),
    (["profile=thesis"], "finetune.checkpoint is null: the thesis fine-tunes the released"),
    (["finetune.checkpoint=w.pt"], "finetune.checkpoint=w.pt holds released thesis-size AudioCLIP weights, which "
                                   "do not fit finetune.model_size=tiny"),
    (["train.beta_start=0.05"], "train.beta_start=0.05 is not below train.beta_end=0.02"),
    (["synthesize.frame_width=80"], "synthesize.frame_width=80 is not >= synthesize.frame_height=270"),
    (["download.source=local"], "download.local_dir=None is not a folder"),
    (["sample_sr.aug_level=50"], "sample_sr.aug_level=50 is not below train_sr.aug_max=50"),
    (["sample_sr.steps=200"], "sample_sr.steps=200 is more than the 150 timesteps the super-resolution model"),
    (["sample_sr.steps=1001", "train_sr.t_start=null"], "sample_sr.steps=1001 is more than the 1000 timesteps"),
    (["sample_sr.steps=1"], "sample_sr.steps=1: a chain from train_sr.t_start=150 takes >= 2 steps"),
    (["sample.steps=2000"], "sample.steps=2000 is more than train.timesteps=1000"),
    (["train.preview.steps=1001"], "train.preview.steps=1001 is more than train.timesteps=1000"),
    (["train.pca_components=128"], "train.pca_components=128 is not 256, the U-Net's time-embedding width"),
    (["train.p_uncond=0", "sample.guidance=1", "report.guidance=1"], "sample.cfg_scales=[1.0, 3.0, 5.0] asks for "
     "guidance other than 1, but train.p_uncond=0 trains no null condition for it"),
    (["report.guidance=5"], "report.guidance=5.0 is not sample.guidance=3.0"),
    (["sample.cfg_scales=[1,2.3456789]"], "sample.cfg_scales[1]=2.3456789 is not a number >= 0 of at most 6 "
     "significant digits (it names the sample files)"),
    (["report.lengths=[1,2]"], "report.lengths=[1, 2] is not lengths=[2]"),
    (["projection=pca", "study.variants=[nocfg,pca]"],
     "study.variants=['nocfg', 'pca'] holds 'pca', a study against the FC projection, but train.projection='pca'"),
    (["sample.cfg_epoch=2"], "sample.cfg_epoch=2 is not study.epoch=None (the report reads the CFG sweep at "
                             "study.epoch)"),
    (["study.variants=[]", "study.length=3", "train_sr.embedding=text-2s"],
     "study.alignment='text' and study.length=3 are not a cell of the grid"),
])
def test_keys_that_must_agree(overrides, line):
    found = problems(params.compose(REPO / "conf", overrides))
    assert len(found) == 1 and found[0].startswith(line), found


def test_models_trained_without_the_null_condition_sample_at_guidance_1_only():
    overrides = ["train.p_uncond=0"]
    assert [line.split(" asks")[0] for line in problems(params.compose(REPO / "conf", overrides))] == [
        "sample.guidance=3.0", "sample.cfg_scales=[1.0, 3.0, 5.0]"]
    check_params(params.compose(REPO / "conf", overrides + ["sample.guidance=1", "report.guidance=1",
                                                            "sample.cfg_scales=[1]"]))


def test_an_audio_conditioned_upsampler_takes_a_grid_of_its_one_cell():
    overrides = ["train_sr.audio=true", "alignments=[text]"]  # text-2s, train_sr.embedding: the only cell
    assert check_params(params.compose(REPO / "conf", overrides)).sections["train_sr"].audio


def test_the_report_section_repeats_the_study_it_reports(committed):
    found = problems(changed(committed, report__study__epoch=3))
    assert found == ["report.study={'alignment': 'text', 'length': 2, 'variants': ['nocfg', 'pca', 'nonorm'], "
                     "'epoch': 3} is not study={'alignment': 'text', 'length': 2, 'variants': ['nocfg', 'pca', "
                     "'nonorm'], 'epoch': None} (the report reads what the pipeline wrote for study)"]


def test_the_queued_sweeps_other_lengths_skip_the_studies_and_the_cfg_sweep():
    # README, "Queued sweeps": the 1, 2, 3 and 5 s experiments
    checked = check_params(params.compose(REPO / "conf", ["profile=thesis", "data=suburmp", "lengths=[2]",
                                                          "study.length=2", "study.variants=[]",
                                                          "sample.cfg_scales=[]"]))
    assert checked.sections["sample"].cfg_scales == [] and checked.grid.study.cell == "text-2s"


def test_real_data_lengths_are_not_bounded_by_the_synthetic_performances():
    check_params(params.compose(REPO / "conf", ["profile=thesis", "data=suburmp", "synthesize.performance_seconds=4"]))


def test_values_are_normalised_as_the_stages_read_them(committed):
    sample = SampleConfig.from_params(changed(committed, sample__guidance=3)["sample"])
    assert sample.guidance == 3.0 and isinstance(sample.guidance, float) and sample.cfg_scales == [1.0, 3.0, 5.0]
    train = TrainConfig.from_params(committed["train"])
    assert TrainConfig.of(train) is train
    assert config.PrepareConfig.from_params(committed["prepare"]).kwargs()["lengths"] == [2]  # index_2s_...


def test_a_section_alone_reports_only_its_own_problems(committed):
    with pytest.raises(ConfigError, match=r"^finetune.epochs=-1 is not an integer >= 0$"):
        FinetuneConfig.from_params({**committed["finetune"], "epochs": -1})


def test_the_model_sizes_are_those_of_both_models():
    from a2i.audioclip.sizes import SIZES as AUDIOCLIP
    from a2i.diffusion.unet import SIZES as UNET

    assert set(config.MODEL_SIZES) == set(AUDIOCLIP) == set(UNET)


def test_the_checkpoint_schedule_is_every_nth_epoch_and_the_last():
    assert checkpoint_schedule(100, 10) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert checkpoint_schedule(25, 10) == [10, 20, 25]
    assert checkpoint_schedule(3, 5) == [3]


def test_validation_imports_no_heavy_library():
    # Structural, not timed: the check stage stays fast because it loads neither torch nor numpy nor pandas.
    code = ("import sys; from a2i.config import check_params; from a2i.params import load_params; "
            "check_params(load_params()); print(*[m for m in ('torch', 'numpy', 'pandas') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split() == []


def test_the_check_stage_prints_every_problem_on_its_own_line_and_writes_nothing(committed, tmp_path):
    def check(values: dict) -> subprocess.CompletedProcess:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
        return subprocess.run([sys.executable, str(REPO / "stages" / "check.py")], cwd=tmp_path, text=True,
                              capture_output=True, env=os.environ | {"PYTHONPATH": str(REPO)})

    result = check(changed(committed, sample__sampler="foo", lengths=[0]))
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["error: lengths[0]=0 is not an integer in 1..10",
                                          "error: sample.sampler='foo' is not one of ddpm, ddim, dpmpp"]
    assert not (tmp_path / "data").exists()
    assert check(committed).returncode == 0
    first = (tmp_path / "data" / "params_check.json").read_bytes()
    assert json.loads(first) == {"ok": True}
    assert check(changed(committed, sample__steps=3)).returncode == 0  # its output does not follow the params
    assert (tmp_path / "data" / "params_check.json").read_bytes() == first
