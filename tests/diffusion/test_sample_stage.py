import functools
import importlib
import json
import re
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from a2i.cli import main
from a2i.diffusion.checkpoint import DIGEST, save_checkpoint
from a2i.diffusion.sample import compare_samplers, sample_variant
from a2i.diffusion.schedule import Schedule
from a2i.diffusion.train import train
from a2i.evaluation.classifier import InstrumentClassifier, save_classifier
from a2i.variants import samples_dir

from .helpers import REPO, corrupt_ema, make_root, sample_params, train_params, truncate, write_params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = make_root(tmp_path_factory.mktemp("sample"))
    for variant in ("text-1s", "text-1s-nocfg"):
        train(variant, train_params(epochs=2), root)
    return root


@pytest.fixture(autouse=True)
def no_samples_yet(trained):
    shutil.rmtree(trained / "data" / "samples", ignore_errors=True)


@pytest.fixture
def copied(trained, tmp_path) -> Path:
    """A copy of the trained root, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "root"))


def run_sample_stage(root: Path, monkeypatch, *args: str) -> None:
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["sample.py", *args])
    runpy.run_path(str(REPO / "stages" / "sample.py"), run_name="__main__")


def test_sample_stage_writes_every_checkpoint_at_the_main_guidance(trained, monkeypatch):
    write_params(trained, sample=sample_params(cfg_scales=[1, 3, 5]))
    for variant in ("text-1s", "text-1s-nocfg"):
        run_sample_stage(trained, monkeypatch, "--variant", variant)
    main = sorted(p.name for p in (trained / "data" / "samples" / "text-1s").iterdir() if p.is_file())
    assert main == sorted(f"epoch_{name}.{ext}" for name in ("001_g3_s0", "002_g3_s0") for ext in ("npz", "png"))
    # validation conditions (val_per_class: 1) at the main guidance for every checkpoint, for model selection
    val = sorted(p.name for p in (trained / "data" / "samples" / "text-1s" / "val").iterdir())
    assert val == ["epoch_001_g3_s0.npz", "epoch_002_g3_s0.npz"]
    assert np.load(trained / "data" / "samples" / "text-1s" / "val" / "epoch_002_g3_s0.npz")["labels"].tolist() \
        == [0, 1, 2]
    nocfg = sorted(p.name for p in (trained / "data" / "samples" / "text-1s-nocfg").iterdir())
    # a study variant: no validation samples
    assert nocfg == ["epoch_001_g1_s0.npz", "epoch_001_g1_s0.png", "epoch_002_g1_s0.npz", "epoch_002_g1_s0.png"]
    packed = np.load(trained / "data" / "samples" / "text-1s" / "epoch_002_g3_s0.npz")
    assert packed["images"].shape == (6, 64, 64, 3) and packed["images"].dtype == np.uint8
    assert packed["labels"].tolist() == [0, 0, 1, 1, 2, 2]


def test_the_cfg_sweep_stage_samples_the_other_scales_of_one_checkpoint(trained, monkeypatch):
    shutil.rmtree(trained / "data" / "samples_cfg", ignore_errors=True)
    write_params(trained, sample=sample_params(cfg_scales=[1, 3, 5], cfg_epoch=1))
    run_sample_stage(trained, monkeypatch, "--variant", "text-1s", "--guidance", "cfg")
    sweep = trained / "data" / "samples_cfg" / "text-1s"
    assert sorted(p.name for p in sweep.iterdir()) == sorted(
        f"epoch_001_{name}.{ext}" for name in ("g1_s0", "g5_s0") for ext in ("npz", "png"))
    # the same test conditions and noise as `sample` draws at the main guidance: only the scale differs
    main = sample_variant("text-1s", sample_params(), trained)
    with np.load(main[0]) as at_3, np.load(sweep / "epoch_001_g5_s0.npz") as at_5:
        assert at_3["rows"].tolist() == at_5["rows"].tolist()
    # a sweep of the main guidance alone leaves its folder, DVC's output, empty
    shutil.rmtree(sweep)
    write_params(trained, sample=sample_params(cfg_scales=[3]))
    run_sample_stage(trained, monkeypatch, "--variant", "text-1s", "--guidance", "cfg")
    assert sweep.is_dir() and not any(sweep.iterdir())


def test_the_sample_stage_refuses_another_sweep_in_one_line(trained, monkeypatch, capsys):
    write_params(trained, sample=sample_params())
    with pytest.raises(SystemExit, match="error: the CFG sweep samples the study's plain cell, not the study variant "
                                         "text-1s-nocfg"):
        run_sample_stage(trained, monkeypatch, "--variant", "text-1s-nocfg", "--guidance", "cfg")
    assert not (trained / "data" / "samples_cfg" / "text-1s-nocfg").exists()
    with pytest.raises(SystemExit) as exit_info:
        run_sample_stage(trained, monkeypatch, "--variant", "text-1s", "--guidance", "all")
    assert exit_info.value.code == 2
    assert "argument --guidance: invalid choice: 'all'" in capsys.readouterr().err


def test_same_seed_same_images_and_per_class_subsets(trained):
    params = sample_params(per_class=1, seeds=[0, 1])
    first = sample_variant("text-1s", params, trained)
    images = {p: np.load(p)["images"] for p in first}
    again = sample_variant("text-1s", params, trained)
    assert again == first
    for path in again:
        np.testing.assert_array_equal(np.load(path)["images"], images[path])
        assert np.load(path)["labels"].tolist() == [0, 1, 2]
    test = trained / "data" / "samples" / "text-1s"
    assert not np.array_equal(images[test / "epoch_002_g3_s0.npz"], images[test / "epoch_002_g3_s1.npz"])


@pytest.fixture
def sampled(monkeypatch) -> list[dict]:
    """The keyword arguments of every sampling run `compare_samplers` starts."""
    module = importlib.import_module("a2i.diffusion.sample")
    calls, real = [], module.generate_images
    monkeypatch.setattr(module, "generate_images", lambda *a, **k: calls.append(k) or real(*a, **k))
    return calls


def test_compare_samplers_writes_both_runs_on_the_same_conditions(trained, sampled):
    timing = compare_samplers("text-1s", root=trained, per_class=1, runs=(("ddpm", 20), ("dpmpp", 2)),
                              ddpm_variance="fixed_large")
    out = trained / "data" / "sampler_check" / "text-1s"
    slow, fast = np.load(out / "ddpm-20.npz"), np.load(out / "dpmpp-2.npz")
    assert slow["images"].shape == fast["images"].shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(slow["labels"], fast["labels"])
    assert [(c["sampler"], c["steps"], c["guidance"], c["ddpm_variance"]) for c in sampled] == \
        [("ddpm", 20, 3.0, "fixed_large"), ("dpmpp", 2, 3.0, "fixed_large")]
    assert set(timing["files"]) == {"ddpm-20", "dpmpp-2"} and timing["ddpm_variance"] == "fixed_large"
    assert timing["epoch"] == 2 and timing["speedup"] == timing["ddpm-20_s"] / timing["dpmpp-2_s"]


@pytest.mark.parametrize("timesteps, runs", [(1000, [("ddpm", 1000), ("dpmpp", 25)]),
                                              (500, [("ddpm", 500), ("dpmpp", 25)]),
                                              (20, [("ddpm", 20), ("dpmpp", 20)])])
def test_compare_samplers_references_ddpm_at_every_timestep_of_the_models_schedule(trained, monkeypatch, timesteps,
                                                                                    runs):
    module = importlib.import_module("a2i.diffusion.sample")
    real_load, calls = module.load_generator, []

    def load_with_schedule(path, device):
        model, config = real_load(path, device)
        model.schedule = Schedule(timesteps=timesteps)
        return model, config

    def drawn(model, cond, **kwargs):  # records the run; drawing 1000 steps would add nothing here
        calls.append((kwargs["sampler"], kwargs["steps"]))
        return np.zeros((len(cond), 64, 64, 3), np.uint8)

    monkeypatch.setattr(module, "load_generator", load_with_schedule)
    monkeypatch.setattr(module, "generate_images", drawn)
    compare_samplers("text-1s", root=trained, per_class=1, out=trained / "compare")
    assert calls == runs
    with pytest.raises(ValueError, match=f"^dpmpp steps must be <= the {timesteps} timesteps of the schedule of "):
        compare_samplers("text-1s", root=trained, per_class=1, runs=(("dpmpp", timesteps + 1),))


def test_compare_samplers_draws_a_model_without_condition_dropout_at_guidance_1_only(trained, sampled):
    timing = compare_samplers("text-1s-nocfg", root=trained, per_class=1, runs=(("dpmpp", 2),))
    assert timing["guidance"] == 1.0 and [c["guidance"] for c in sampled] == [1.0]
    checkpoint = trained / "models" / "diffusion" / "text-1s-nocfg" / "epoch_002.pt"
    with pytest.raises(ValueError, match="^--guidance 3 needs a model trained with condition dropout; "
                                         f"{re.escape(str(checkpoint))} was trained with p_uncond 0: "
                                         "use --guidance 1$"):
        compare_samplers("text-1s-nocfg", root=trained, per_class=1, guidance=3.0, runs=(("dpmpp", 2),))
    assert len(sampled) == 1


@pytest.mark.parametrize("option", ["--per-class", "--batch-size", "--bootstrap"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_compare_samplers_refuses_counts_below_one_before_anything_loads(tmp_path, option, value):
    result = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--classifier",
                                       str(tmp_path / "absent.pt"), "-o", str(tmp_path / "out"), option, value])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(f"error: Invalid value for '{option}'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_compare_samplers_refuses_an_output_folder_it_cannot_make_before_sampling(tmp_path, where):
    (tmp_path / "file").write_text("not a folder")
    result = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--classifier",
                                       str(tmp_path / "absent.pt"), "-o", str(tmp_path / where)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("error: Invalid value for '-o' / '--out': ") and "is a file" in result.output


def test_compare_samplers_command_scores_both_runs_with_the_classifier(trained, monkeypatch):
    save_classifier(trained / "clf.pt", InstrumentClassifier(), {})  # untrained: the wiring, not the score
    write_params(trained, sample=sample_params(ddpm_variance="fixed_large"))
    monkeypatch.chdir(trained)  # the ddpm reference's variance is the pipeline's: params.yaml's sample section
    module = importlib.import_module("a2i.diffusion.sample")
    monkeypatch.setattr(module, "compare_samplers", functools.partial(
        compare_samplers, root=trained, runs=(("ddpm", 20), ("dpmpp", 2))))
    result = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--per-class", "1",
                                       "--classifier", str(trained / "clf.pt"), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    timing = json.loads((trained / "data" / "sampler_check" / "text-1s" / "timing.json").read_text())
    assert timing["ddpm_variance"] == "fixed_large"
    result = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--per-class", "1",
                                       "--classifier", str(trained / "clf.pt"), "--bootstrap", "20",
                                       "--ddpm-variance", "fixed_small"])
    assert result.exit_code == 0, result.output
    timing = json.loads((trained / "data" / "sampler_check" / "text-1s" / "timing.json").read_text())
    assert timing["ddpm_variance"] == "fixed_small"
    assert "dpmpp-2 minus ddpm-20:" in result.output and "x faster" in result.output
    scores = json.loads((trained / "data" / "sampler_check" / "text-1s" / "adherence.json").read_text())
    assert set(scores) == {"ddpm-20", "dpmpp-2"} and scores["dpmpp-2"]["n"] == 3
    assert "minus_ddpm-20" in scores["dpmpp-2"] and 0 <= scores["ddpm-20"]["adherence"] <= 1
    missing = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--classifier", "nope.pt"])
    assert missing.exit_code != 0 and "classifier nope.pt not found" in missing.output


def test_compare_samplers_refuses_a_classifier_of_another_resolution_before_sampling(trained, sampled, tmp_path,
                                                                                      monkeypatch):
    save_classifier(tmp_path / "clf_hr.pt", InstrumentClassifier(image_size=32), {})
    module = importlib.import_module("a2i.diffusion.sample")
    monkeypatch.setattr(module, "compare_samplers", functools.partial(compare_samplers, root=trained))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["compare-samplers", "--variant", "text-1s", "--per-class", "1",
                                       "--ddpm-variance", "fixed_small", "--classifier", str(tmp_path / "clf_hr.pt"),
                                       "-o", str(out)])
    assert result.exit_code == 1
    checkpoint = trained / "models" / "diffusion" / "text-1s" / "epoch_002.pt"
    assert result.output == (f"error: --classifier scores 32x32 images, {checkpoint} draws 64x64: use the "
                             "classifier of its resolution\n")
    assert sampled == [] and not out.exists()


def test_compare_samplers_writes_nothing_when_a_later_run_fails(trained, tmp_path, monkeypatch):
    module = importlib.import_module("a2i.diffusion.sample")
    real = module.generate_images

    def second_fails(*args, **kwargs):
        if kwargs["sampler"] == "ddim":
            raise ValueError("non-finite samples")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "generate_images", second_fails)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="non-finite samples"):
        compare_samplers("text-1s", root=trained, out=out, per_class=1, runs=(("dpmpp", 2), ("ddim", 2)))
    assert not out.exists()


def test_missing_checkpoints_or_embeddings_are_clear_errors(root):
    with pytest.raises(ValueError, match="no checkpoints in .*text-1s"):
        sample_variant("text-1s", sample_params(), root)
    train("text-1s", train_params(epochs=1), root)
    (root / "data" / "embeddings" / "text-1s" / "test.npy").unlink()
    with pytest.raises(ValueError, match=r"test\.npy not found"):
        sample_variant("text-1s", sample_params(), root)


@pytest.mark.parametrize("damage, why", [(corrupt_ema, "its content does not match the digest saved with it"),
                                         (truncate, "unreadable (truncated or damaged)")])
def test_the_sample_stage_refuses_a_damaged_checkpoint_in_one_line(copied, monkeypatch, damage, why):
    write_params(copied)
    monkeypatch.chdir(copied)
    damage(Path("models/diffusion/text-1s/epoch_002.pt"))
    shutil.rmtree("data/samples", ignore_errors=True)
    monkeypatch.setattr(sys, "argv", ["sample.py", "--variant", "text-1s"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "stages" / "sample.py"), run_name="__main__")
    assert exit_info.value.code == (f"error: models/diffusion/text-1s/epoch_002.pt: {why}; run `dvc checkout "
                                    "models/diffusion/text-1s` or delete it and re-run `dvc repro`")
    assert not list(Path("data/samples").rglob("*.npz"))  # not even the sound epoch 1's


def test_images_that_are_all_one_value_are_an_error_naming_their_checkpoint(copied):
    path = copied / "models" / "diffusion" / "text-1s" / "epoch_002.pt"
    state = {key: value for key, value in torch.load(path, weights_only=True).items() if key != DIGEST}
    state["ema"]["outc.weight"].zero_()
    state["ema"]["outc.bias"].fill_(1e4)  # eps = 1e4 everywhere: every x0 saturates to black
    save_checkpoint(path, state)  # saved so: its digest holds, its images do not
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: all 6 images are the single value 0 "
                                         r"\(dpmpp, guidance 3, seed 0\): its weights are broken$"):
        sample_variant("text-1s", sample_params(), copied)


@pytest.mark.parametrize("edit, why", [
    (lambda model: model.update(size="huge"), "not a diffusion checkpoint of a2i (ValueError: unknown U-Net size"),
    (lambda model: model.update(projection="xyz"), "not a diffusion checkpoint of a2i (ValueError: projection must"),
    (lambda model: model.pop("size"), "weights do not fit the 'thesis' U-Net size named in its config"),
])
def test_a_checkpoint_whose_config_this_version_refuses_is_an_error_naming_it(copied, edit, why):
    # digest-valid (written by another version of a2i, say): the config itself is what does not build
    path = copied / "models" / "diffusion" / "text-1s" / "epoch_002.pt"
    state = {key: value for key, value in torch.load(path, weights_only=True).items() if key != DIGEST}
    edit(state["config"]["model"])
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {re.escape(why)}"):
        sample_variant("text-1s", sample_params(), copied)


def test_sample_removes_temporary_files_left_by_a_killed_write(trained, caplog):
    for split in ("test", "val"):
        folder = trained / samples_dir("text-1s", split)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".epoch_001_g3_s0.npz.k1ll3d.tmp").write_bytes(b"half an archive")
    sample_variant("text-1s", sample_params(), trained)
    assert not list((trained / "data" / "samples").rglob("*.tmp"))
    assert caplog.text.count("left by an interrupted write") == 2
