import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import a2i.diffusion.train as train_module
from a2i.code import code_digest
from a2i.diffusion.checkpoint import DIGEST, save_checkpoint
from a2i.diffusion.checkpoint import checkpoints, load_generator
from a2i.diffusion.sample import sample_variant
from a2i.diffusion.train import train
from a2i.io import save_torch, sha256_file
from a2i.variants import Variant

from .helpers import REPO, corrupt_ema, make_root, sample_params, train_params, truncate, write_params


def final_state(root: Path, epoch: int, variant: str = "text-1s") -> dict:
    return torch.load(root / "models" / "diffusion" / variant / f"epoch_{epoch:03d}.pt", weights_only=True)


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_writes_complete_checkpoints_and_dvclive_logs(root):
    path = train("text-1s", train_params(), root)
    assert path == root / "models" / "diffusion" / "text-1s" / "epoch_002.pt"
    assert [epoch for epoch, _ in checkpoints(path.parent)] == [1, 2]
    state = torch.load(path, weights_only=True)
    assert set(state) >= {"model", "ema", "optimizer", "rng", "epoch", "config"}
    assert state["epoch"] == 2 and state["config"]["p_uncond"] == 0.2 and state["config"]["model"]["size"] == "tiny"
    assert not any(torch.equal(state["model"][k], state["ema"][k]) for k in ("outc.weight", "inc.net.0.weight"))
    model, config = load_generator(path)
    assert not model.training and config["variant"] == "text-1s"
    live = root / "dvclive" / "train" / "text-1s"
    for metric in ("train/loss", "val/mse"):
        rows = (live / "plots" / "metrics" / f"{metric}.tsv").read_text().splitlines()
        assert [row.split("\t")[0] for row in rows[1:]] == ["1", "2"]
    assert sorted(p.name for p in (live / "plots" / "images" / "preview").iterdir()) == \
        ["epoch_001.png", "epoch_002.png"]


class Killed(Exception):
    pass


def test_a_run_killed_mid_epoch_resumes_to_bitwise_identical_weights(tmp_path, monkeypatch):
    params = train_params(epochs=4, checkpoint_every=2)
    straight, resumed = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    train("text-1s", params, straight)

    real_loss = train_module.diffusion_loss
    calls = {"n": 0}

    def dies_in_epoch_three(model, *args):
        calls["n"] += model.training  # count training steps, not validation
        if calls["n"] == 2 * 2 + 2:  # second step of epoch 3 (2 steps per epoch)
            raise Killed
        return real_loss(model, *args)

    monkeypatch.setattr(train_module, "diffusion_loss", dies_in_epoch_three)
    with pytest.raises(Killed):
        train("text-1s", params, resumed)
    assert [e for e, _ in checkpoints(resumed / "models" / "diffusion" / "text-1s")] == [2]
    monkeypatch.setattr(train_module, "diffusion_loss", real_loss)
    train("text-1s", params, resumed)

    a, b = final_state(straight, 4), final_state(resumed, 4)
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["ema"], b["ema"])
    assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])
    for name in ("epoch_002.pt", "epoch_004.pt"):  # byte-identical: the same dvc.lock, nothing downstream re-runs
        assert sha256_file(resumed / "models" / "diffusion" / "text-1s" / name) == \
            sha256_file(straight / "models" / "diffusion" / "text-1s" / name), name
    rows = (resumed / "dvclive" / "train" / "text-1s" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
    assert [r.split("\t")[0] for r in rows.splitlines()[1:]] == ["1", "2", "3", "4"]


def live_files(root: Path, variant: str = "text-1s") -> dict[str, str]:
    """sha256 of the previews and metric histories of a run's dvclive folder."""
    live = root / "dvclive" / "train" / variant / "plots"
    return {str(p.relative_to(live)): sha256_file(p) for p in sorted(live.rglob("*")) if p.is_file()}


def checkpoint_files(root: Path, variant: str = "text-1s") -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted((root / "models" / "diffusion" / variant).glob("*.pt"))}


def test_a_run_killed_while_drawing_a_preview_draws_it_on_resume(tmp_path, monkeypatch):
    params = train_params(epochs=3)
    straight, resumed = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    train("text-1s", params, straight)

    real_preview = train_module.Trainer.preview_grid
    calls = {"n": 0}

    def dies_in_the_second(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2's preview, after its checkpoint was saved
            raise Killed
        return real_preview(self, *args)

    monkeypatch.setattr(train_module.Trainer, "preview_grid", dies_in_the_second)
    with pytest.raises(Killed):
        train("text-1s", params, resumed)
    assert [e for e, _ in checkpoints(resumed / "models" / "diffusion" / "text-1s")] == [1, 2]
    monkeypatch.setattr(train_module.Trainer, "preview_grid", real_preview)
    train("text-1s", params, resumed)
    assert live_files(resumed) == live_files(straight)
    assert [name for name in live_files(resumed) if name.startswith("images")] == \
        [f"images/preview/epoch_00{epoch}.png" for epoch in (1, 2, 3)]
    assert checkpoint_files(resumed) == checkpoint_files(straight)


def test_changing_the_preview_or_val_samples_leaves_no_history_of_the_old_settings(tmp_path):
    # Both are params of the DVC stage: a change re-runs `train`, which must then log what a fresh run with them
    # logs, not keep the persisted history of the old ones as "already trained".
    root = make_root(tmp_path / "run")
    train("text-1s", train_params(), root)
    trained = checkpoint_files(root)
    for change in ({"preview": {"sampler": "ddim", "steps": 3, "guidance": 2.0}}, {"val_samples": 2}):
        params = train_params(**change)
        fresh = make_root(tmp_path / next(iter(change)))
        train("text-1s", params, fresh)
        train("text-1s", params, root)
        assert live_files(root) == live_files(fresh), change
        assert checkpoint_files(root) == checkpoint_files(fresh) == trained
        train("text-1s", train_params(), root)  # and back

    train("text-1s", train_params(epochs=1), root)
    run = root / "models" / "diffusion" / "text-1s"
    first = sha256_file(run / "epoch_001.pt")
    train("text-1s", train_params(epochs=2), root)
    assert sha256_file(run / "epoch_001.pt") == first and (run / "epoch_002.pt").is_file()
    train("text-1s", train_params(epochs=1, lr=5e-4), root)  # another configuration: stale checkpoints go
    assert [e for e, _ in checkpoints(run)] == [1]
    assert torch.load(run / "epoch_001.pt", weights_only=True)["config"]["lr"] == 5e-4


def test_a_run_resumed_under_another_schedule_ends_with_a_fresh_runs_checkpoints(tmp_path):
    # `dvc exp run -S train.epochs=.. -S train.checkpoint_every=..` over the default run's persisted checkpoints:
    # the old ones at epochs the new schedule lacks would be sampled, and chosen from, as the run's own.
    straight, resumed = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    train("text-1s", train_params(epochs=4, checkpoint_every=2), straight)
    train("text-1s", train_params(epochs=3, checkpoint_every=1), resumed)
    train("text-1s", train_params(epochs=4, checkpoint_every=2), resumed)
    for root in (straight, resumed):
        assert [e for e, _ in checkpoints(root / "models" / "diffusion" / "text-1s")] == [2, 4]
        previews = root / "dvclive" / "train" / "text-1s" / "plots" / "images" / "preview"
        assert sorted(p.name for p in previews.iterdir()) == ["epoch_002.png", "epoch_004.png"]
    assert sha256_file(resumed / "models" / "diffusion" / "text-1s" / "epoch_004.pt") == \
        sha256_file(straight / "models" / "diffusion" / "text-1s" / "epoch_004.pt")


@pytest.mark.parametrize("before, after", [((4, 2), (4, 1)), ((4, 2), (6, 3))])
def test_a_run_resumed_under_another_schedule_writes_every_checkpoint_a_fresh_run_writes(tmp_path, before, after):
    # Resuming from the newest checkpoint would skip the new schedule's epochs before it (1 and 3; or 3), which
    # sampling and model selection would then quietly lack.
    straight, resumed = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    (epochs, every), (new_epochs, new_every) = before, after
    train("text-1s", train_params(epochs=new_epochs, checkpoint_every=new_every), straight)
    train("text-1s", train_params(epochs=epochs, checkpoint_every=every), resumed)
    train("text-1s", train_params(epochs=new_epochs, checkpoint_every=new_every), resumed)
    assert checkpoint_files(resumed).keys() == checkpoint_files(straight).keys()
    assert live_files(resumed) == live_files(straight)
    final = f"epoch_{new_epochs:03d}.pt"
    assert checkpoint_files(resumed)[final] == checkpoint_files(straight)[final]


def test_a_finished_run_on_other_validation_data_logs_its_history_again(tmp_path):
    # The validation MSE of every epoch and the previews come from the val split: new val data alone (a
    # re-prepared dataset, a re-fine-tuned head) re-runs `train`, which must not keep the old curves.
    root, fresh = make_root(tmp_path / "run"), make_root(tmp_path / "fresh")
    train("text-1s", train_params(), root)
    for run in (root, fresh):
        embeddings = run / "data" / "embeddings" / "text-1s" / "val.npy"
        np.save(embeddings, np.load(embeddings) * 2)
    train("text-1s", train_params(), root)
    train("text-1s", train_params(), fresh)
    assert live_files(root) == live_files(fresh)
    assert checkpoint_files(root) == checkpoint_files(fresh)


class Compiled:
    """As torch.compile's wrapper around a module without __len__: callable, and len() (so bool()) raises."""

    def __init__(self, module):
        self.module = module

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def __len__(self):
        raise TypeError("UNet does not support len()")


def test_a_compiled_run_trains_and_is_not_taken_for_an_uncompiled_one(root, monkeypatch, caplog):
    # compiled kernels round differently, so a run under the other setting is another run, not "already trained"
    monkeypatch.setattr(torch, "compile", Compiled)
    train("text-1s", train_params(compile=True), root)
    assert final_state(root, 2)["config"]["compile"] is True
    with caplog.at_level(logging.INFO):
        train("text-1s", train_params(), root)
    assert "already trained" not in caplog.text and final_state(root, 2)["config"]["compile"] is False


def test_a_run_extended_writes_the_checkpoint_bytes_of_a_fresh_run(tmp_path):
    # the checkpoints hold the run's identity, not its length: DVC hashes the same folder for an extended run
    straight, extended = make_root(tmp_path / "a"), make_root(tmp_path / "b")
    train("text-1s", train_params(epochs=2), straight)
    train("text-1s", train_params(epochs=1), extended)
    train("text-1s", train_params(epochs=2), extended)
    assert checkpoint_files(extended) == checkpoint_files(straight)


def test_a_checkpoint_of_the_other_device_kind_is_retrained_not_resumed(root):
    # a CUDA generator's state does not load into a CPU one: a GPU run's persisted checkpoints, pulled onto a
    # CPU machine and extended there, are trained afresh instead of failing in Generator.set_state
    train("text-1s", train_params(epochs=1), root)
    path = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    state = {key: value for key, value in torch.load(path, weights_only=True).items() if key != DIGEST}
    assert state["config"]["device"] == "cpu"
    save_checkpoint(path, {**state, "config": {**state["config"], "device": "cuda"},
                           "rng": {**state["rng"], "generator": torch.zeros(16, dtype=torch.uint8)}})
    train("text-1s", train_params(epochs=2), root)
    assert torch.load(path, weights_only=True)["config"]["device"] == "cpu"


def test_a_finished_run_on_other_data_is_retrained_not_resumed(root):
    # The same parameters over new embeddings (a re-fine-tuned audio head, a new dataset): the persisted
    # checkpoints DVC keeps between runs must not pass for this data's trained model.
    train("text-1s", train_params(epochs=1), root)
    path = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    before = torch.load(path, weights_only=True)
    embeddings = root / "data" / "embeddings" / "text-1s" / "train.npy"
    np.save(embeddings, np.load(embeddings) * 2)
    train("text-1s", train_params(epochs=1), root)
    after = torch.load(path, weights_only=True)
    assert after["config"]["data"] != before["config"]["data"]
    assert any(not torch.equal(after["model"][key], value) for key, value in before["model"].items())


def test_a_finished_run_of_other_training_code_is_retrained_not_resumed(root, monkeypatch):
    # DVC re-runs the stage when the training code changes; the persisted checkpoints of the code before must
    # not pass for the new code's trained model (a changed PCA fit, loss or sampler would keep the old numbers).
    train("text-1s", train_params(epochs=1), root)
    path = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    before = torch.load(path, weights_only=True)
    assert before["config"]["code"] == code_digest(train_module.__file__)
    monkeypatch.setattr(train_module, "code_digest", lambda module: "edited")
    weights = {key: value.clone() for key, value in before["model"].items()}
    tampered = {key: value + 1 if value.is_floating_point() else value for key, value in weights.items()}
    save_checkpoint(path, {**{k: v for k, v in before.items() if k != DIGEST}, "model": tampered})
    train("text-1s", train_params(epochs=1), root)
    after = torch.load(path, weights_only=True)
    assert after["config"]["code"] == "edited"
    assert all(torch.equal(after["model"][key], value) for key, value in weights.items())  # trained afresh


def test_checkpoints_of_another_model_layout_are_replaced_not_loaded(root):
    # A change of the U-Net code (here: the encoding layer before Standardize) with the same parameters.
    train("text-1s", train_params(epochs=1), root)
    path = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    state = torch.load(path, weights_only=True)
    del state[DIGEST]
    state["model"] = {key.replace("project.1.", "project.0."): value for key, value in state["model"].items()
                      if not key.startswith("project.0.")}
    save_checkpoint(path, state)
    train("text-1s", train_params(epochs=1), root)
    assert "project.0.mean" in torch.load(path, weights_only=True)["model"]
    save_torch(path, {key: value for key, value in torch.load(path, weights_only=True).items() if key != DIGEST})
    train("text-1s", train_params(epochs=1), root)  # written before checkpoints had a digest: replaced too
    assert DIGEST in torch.load(path, weights_only=True)


@pytest.mark.parametrize("damage, why", [(corrupt_ema, "its content does not match the digest saved with it"),
                                         (truncate, "unreadable (truncated or damaged)")])
def test_a_damaged_checkpoint_is_a_one_line_train_error_never_already_trained(root, damage, why, caplog):
    train("text-1s", train_params(), root)
    run = root / "models" / "diffusion" / "text-1s"
    for epoch in (2, 1):  # the final checkpoint (else "already trained") and an earlier one
        path = run / f"epoch_{epoch:03d}.pt"
        good = path.read_bytes()
        damage(path)
        damaged = path.read_bytes()
        with caplog.at_level(logging.INFO), pytest.raises(ValueError) as error:
            train("text-1s", train_params(), root)
        assert str(error.value) == f"{path}: {why}; run `dvc checkout {run}` or delete it and re-run `dvc repro`"
        assert "already trained" not in caplog.text
        assert path.read_bytes() == damaged and len(checkpoints(run)) == 2  # not replaced: the user must see it
        path.write_bytes(good)


def test_non_finite_weights_are_refused_even_under_a_matching_digest(root):
    path = train("text-1s", train_params(epochs=1), root)
    state = {key: value for key, value in torch.load(path, weights_only=True).items() if key != DIGEST}
    state["ema"]["outc.bias"][0] = float("inf")
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=r"epoch_001\.pt: non-finite weights in ema\.outc\.bias; run `dvc checkout"):
        load_generator(path)


def test_the_train_stage_stops_at_corrupted_ema_weights_in_one_line(root, monkeypatch):
    write_params(root, train=train_params())
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "argv", ["train.py", "--variant", "text-1s"])
    runpy.run_path(str(REPO / "stages" / "train.py"), run_name="__main__")
    corrupt_ema(Path("models/diffusion/text-1s/epoch_002.pt"))
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "stages" / "train.py"), run_name="__main__")
    assert exit_info.value.code == (
        "error: models/diffusion/text-1s/epoch_002.pt: its content does not match the digest saved with it; "
        "run `dvc checkout models/diffusion/text-1s` or delete it and re-run `dvc repro`")


def test_train_removes_temporary_files_left_by_a_killed_write(root, caplog):
    run = root / "models" / "diffusion" / "text-1s"
    run.mkdir(parents=True)
    (run / ".epoch_001.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING):
        train("text-1s", train_params(epochs=1), root)
    assert sorted(p.name for p in run.iterdir()) == ["epoch_001.pt"]
    assert "epoch_001.pt.x1y2z3.tmp, left by an interrupted write" in caplog.text


def test_a_non_finite_loss_stops_with_an_error_and_keeps_the_last_good_checkpoint(root, monkeypatch):
    train("text-1s", train_params(epochs=1), root)
    good = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    digest = sha256_file(good)
    real_loss = train_module.diffusion_loss
    monkeypatch.setattr(train_module, "diffusion_loss", lambda *a, **k: real_loss(*a, **k) * float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite training loss in epoch 2.*epoch_001.pt"):
        train("text-1s", train_params(epochs=2), root)
    assert sha256_file(good) == digest
    assert [e for e, _ in checkpoints(good.parent)] == [1]


def test_weights_that_diverge_after_the_last_loss_of_an_epoch_are_never_saved(root, monkeypatch):
    train("text-1s", train_params(epochs=1), root)
    good = root / "models" / "diffusion" / "text-1s" / "epoch_001.pt"
    digest = sha256_file(good)
    real_step = train_module.training_step

    def diverges_last(model, optimizer, ema, step, *args, **kwargs):  # epoch 2's last step (2 steps an epoch)
        loss = real_step(model, optimizer, ema, step, *args, **kwargs)  # a finite loss, then an infinite weight
        if step == 4:
            with torch.no_grad():
                model.outc.bias[0] = float("inf")
        return loss

    monkeypatch.setattr(train_module, "training_step", diverges_last)
    with pytest.raises(FloatingPointError, match=r"^text-1s: non-finite weights after epoch 2; stopped, last good "
                                                 r"checkpoint: epoch_001\.pt$"):
        train("text-1s", train_params(epochs=2), root)
    assert [e for e, _ in checkpoints(good.parent)] == [1] and sha256_file(good) == digest


def test_condition_dropout_is_per_sample(root, monkeypatch):
    seen = []
    real_loss = train_module.diffusion_loss

    def spy(model, x0, cond, *args):
        if model.training:
            seen.append(cond.abs().sum(1).eq(0))
        return real_loss(model, x0, cond, *args)

    monkeypatch.setattr(train_module, "diffusion_loss", spy)
    train("text-1s", train_params(epochs=1, batch_size=24, max_steps_per_epoch=None, p_uncond=0.5,
                                  checkpoint_every=5), root)
    dropped = torch.cat(seen)
    assert 0.25 < float(dropped.float().mean()) < 0.75
    assert 0 < int(seen[0].sum()) < 24  # within one batch, some rows dropped and some kept


def test_nocfg_never_drops_and_pca_fits_the_train_embeddings(root, monkeypatch):
    seen = []
    real_loss = train_module.diffusion_loss

    def spy(model, x0, cond, *args):
        seen.append(cond.abs().sum(1).eq(0))
        return real_loss(model, x0, cond, *args)

    monkeypatch.setattr(train_module, "diffusion_loss", spy)
    train("text-1s-nocfg", train_params(epochs=1), root)
    assert not torch.cat(seen).any()

    path = train("text-1s-pca", train_params(epochs=1), root)
    model, config = load_generator(path)
    assert config["model"]["projection"] == "pca" and bool(model.project.fitted)
    embeddings = torch.from_numpy(np.load(root / "data" / "embeddings" / "text-1s" / "train.npy"))
    torch.testing.assert_close(model.project.mean, embeddings.mean(0))


def test_v_weighting_is_the_mse_of_the_implied_v():
    torch.manual_seed(0)
    model = train_module.UNet("tiny", image_size=32).eval()
    torch.nn.init.normal_(model.outc.weight)
    abar = model.alphas_cumprod
    x0, noise, cond = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(3, 1024)
    t = torch.tensor([5, 500, 990])
    x_t = abar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar[t]).sqrt().view(-1, 1, 1, 1) * noise
    with torch.no_grad():
        eps_hat = model(x_t, t, cond)
        a = abar[t].view(-1, 1, 1, 1)
        v_hat = (eps_hat - (1 - a).sqrt() * x_t) / a.sqrt()
        v = a.sqrt() * noise - (1 - a).sqrt() * x0
        torch.testing.assert_close(train_module.diffusion_loss(model, x0, cond, t, noise, abar, "v"),
                                   (v_hat - v).pow(2).mean(), rtol=1e-4, atol=0)
        torch.testing.assert_close(train_module.diffusion_loss(model, x0, cond, t, noise, abar, "eps"),
                                   (eps_hat - noise).pow(2).mean())


def test_the_image_size_comes_from_the_prepared_data(tmp_path):
    root = make_root(tmp_path, image_size=32)
    path = train("text-1s", train_params(loss_weighting="v"), root)
    model, config = load_generator(path)
    assert config["model"]["image_size"] == 32 and config["loss_weighting"] == "v" and model.image_size == 32
    write_params(root, train=train_params(loss_weighting="v"))
    sample_variant("text-1s", sample_params(), root)
    packed = np.load(root / "data" / "samples" / "text-1s" / "epoch_002_g3_s0.npz")
    assert packed["images"].shape == (6, 32, 32, 3)


def test_bad_inputs_are_clear_errors(root):
    with pytest.raises(ValueError, match="train.loss_weighting='x0' is not one of eps, v"):
        train("text-1s", train_params(loss_weighting="x0"), root)
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        train_module.Trainer(Variant.parse("text-1s"), train_params(batch_size=4), root, rank=0, world=3,
                             device=torch.device("cpu"))
    np.save(root / "data" / "embeddings" / "text-1s" / "val.npy", np.zeros((5, 1024), np.float32))
    with pytest.raises(ValueError, match=r"val\.npy has shape \(5, 1024\), expected \(6, 1024\)"):
        train("text-1s", train_params(), root)
    with pytest.raises(ValueError, match="not found"):
        train("mutual-1s", train_params(), root)


def test_two_gloo_processes_train_like_one(root, tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU) splits each global batch, its Dropout masks included (dropout 0.1),
    and ends with the same weights."""
    params = train_params(epochs=1, checkpoint_every=1)
    assert params["dropout"] > 0
    write_params(root, train=params)
    single = tmp_path / "single"
    single.mkdir()
    make_root(single)
    train("text-1s", params, single)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / "stages" / "train.py"), "--variant", "text-1s"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp, one = final_state(root, 1), final_state(single, 1)
    diff = torch.cat([(ddp["model"][k] - v).abs().flatten() for k, v in one["model"].items()])
    # Same batches and gradients up to summation order. Adam's first steps move every weight by about
    # lr * sign(grad), so only weights whose gradient is ~0 (sign decided by rounding) may differ, and by < 2 lr.
    # A weight that moved differently would differ by about lr; rounding-level disagreements stay far below.
    assert float((diff > 0.1 * params["lr"]).float().mean()) < 1e-3
    assert float(diff.max()) < 2 * params["lr"]


@pytest.mark.parametrize("weighting", ["eps", "v"])
def test_the_static_step_trains_like_the_eager_step(root, weighting):
    # The CUDA-graph step run eagerly (as on the CPU) against the trainer's own step, same seed: the same draws
    # from the generator and the same arithmetic, so bitwise the same losses, weights and EMA after two epochs.
    params = train_params(loss_weighting=weighting)
    eager = train_module.Trainer(Variant.parse("text-1s"), params, root, 0, 1, torch.device("cpu"))
    eager_losses = [eager.run_epoch(epoch) for epoch in (1, 2)]
    static = train_module.Trainer(Variant.parse("text-1s"), params, root, 0, 1, torch.device("cpu"))
    assert eager.static is None and static.static is None  # the CPU trains eagerly unless asked
    static.static = static.static_step()
    static_losses = [static.run_epoch(epoch) for epoch in (1, 2)]
    assert static_losses == eager_losses
    assert static.step == eager.step == 4
    assert_same_tensors(static.model.state_dict(), eager.model.state_dict())
    assert_same_tensors(static.ema.model.state_dict(), eager.ema.model.state_dict())
    assert torch.equal(static.generator.get_state(), eager.generator.get_state())
    assert float(static.static.take_total()) == 0.0  # run_epoch took each epoch's sum
