"""`a2i audioclip verify PATH`: one clear verdict per file, non-zero exit when it does not load."""

import numpy as np
import torch
from click.testing import CliRunner

from a2i.audioclip.cli import audioclip
from a2i.cli import main

from .golden import read_manifest
from .test_checkpoint import Payload, constant_state_dict


def verify(path):
    return CliRunner().invoke(audioclip, ["verify", str(path)])


def test_verify_ok(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(constant_state_dict(), path)
    result = verify(path)
    assert result.exit_code == 0, result.output
    assert "OK, keys and shapes fit AudioCLIP" in result.output and "not a released checkpoint" in result.output


def test_verify_lists_problems_and_fails(tmp_path):
    state = constant_state_dict()
    del state["audio.fc.bias"]
    state["audio.fc.weight"] = torch.zeros(527, 2048)
    path = tmp_path / "head527.pt"
    torch.save(state, path)
    result = verify(path)
    assert result.exit_code == 1
    assert "1 missing keys: audio.fc.bias" in result.output
    assert "shape mismatch for audio.fc.weight: file (527, 2048), expected (1024, 2048)" in result.output
    assert result.output.strip().endswith("not a loadable AudioCLIP checkpoint (2 problems)")


def test_verify_caps_long_problem_lists(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({f"{k}.x": torch.zeros(1) for k in list(read_manifest())[:30]}, path)
    result = verify(path)
    assert result.exit_code == 1 and "... and" not in result.output  # 2 lines: missing + unexpected
    torch.save({k: torch.zeros(1) for k in read_manifest()}, path)
    result = verify(path)
    assert result.exit_code == 1 and "... and 841 more" in result.output  # 861 shape mismatches


def test_verify_clip_file(tmp_path):
    manifest = {k: v for k, v in read_manifest().items() if not k.startswith(("audio.", "logit_scale_a"))}
    path = tmp_path / "CLIP.pt"
    torch.save(constant_state_dict(manifest=manifest), path)
    result = verify(path)
    assert result.exit_code == 1 and "this is CLIP.pt" in result.output


def test_verify_refuses_code_and_names_truncation(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, evil)
    result = verify(evil)
    assert result.exit_code == 1 and "refused: the pickle needs code execution" in result.output
    assert "executed" not in result.output
    truncated = tmp_path / "cut.pt"
    torch.save(constant_state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    result = verify(truncated)
    assert result.exit_code == 1 and "unreadable (truncated or not a torch file)" in result.output
    result = verify(tmp_path / "absent.pt")
    assert result.exit_code == 1 and "absent.pt: no such file" in result.output


def test_verify_names_a_folder(tmp_path):
    result = CliRunner().invoke(main, ["audioclip", "verify", str(tmp_path)])
    assert result.exit_code != 0
    assert result.output == f"error: Invalid value for 'PATH': File '{tmp_path}' is a directory.\n"


def test_verify_random_bytes_is_one_line(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    result = CliRunner().invoke(main, ["audioclip", "verify", str(path)])
    assert result.exit_code == 1
    assert result.output == f"error: {path}: not a PyTorch checkpoint (neither torch.save's zip archive nor its " \
                            "legacy pickle): is it the right file?\n"


def test_verify_is_an_a2i_command():
    result = CliRunner().invoke(main, ["audioclip", "verify", "--help"])
    assert result.exit_code == 0 and "strict=True" in result.output
