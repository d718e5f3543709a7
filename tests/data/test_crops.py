from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from a2i import params
from a2i.cli import main
from a2i.data.crops import BOX_COLOUR, COLUMNS, LABEL_HEIGHT, TILE_WIDTH, contact_sheet
from a2i.data.layout import INSTRUMENTS
from a2i.data.prepare import crop_box, validate_crop

from .helpers import loud_track, write_performance, write_stub

GREEN = (30, 200, 30)
REPO = Path(__file__).resolve().parents[2]
SIZE = (192, 108)  # 16:9 like the real 1920x1080 frames; tiles are 2.5x larger
SCALE = TILE_WIDTH / SIZE[0]


def _tree(tmp_path: Path, performances: list[tuple[str, int, tuple[int, int, int]]]) -> Path:
    raw = tmp_path / "Sub-URMP"
    for instrument, number, colour in performances:
        write_performance(raw, "train", instrument, number, loud_track(0.8), colour=colour, size=SIZE)
    write_stub(raw, "validation", size=SIZE)  # scan needs both original splits; its tile comes last
    return raw


def _close(pixel, colour, tolerance: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel[:3], int) - colour) <= tolerance))


def test_one_tile_per_performance(tmp_path):
    colours = [(200, 30, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]
    raw = _tree(tmp_path, [("cello", 0, colours[0]), ("cello", 1, colours[1]), ("flute", 0, colours[2]),
                           ("double_bass", 0, colours[3]), ("violin", 3, colours[4])])
    names = contact_sheet(raw, {}, tmp_path / "sheet.png")
    assert names == ["cello00", "cello01", "double_bass00", "flute00", "violin03", "bassoon99"]
    sheet = Image.open(tmp_path / "sheet.png")
    cell_height = LABEL_HEIGHT + round(SIZE[1] * SCALE)
    assert sheet.size == (COLUMNS * TILE_WIDTH, 2 * cell_height)
    order = [colours[i] for i in (0, 1, 3, 2, 4)]
    for i, colour in enumerate(order):
        x, y = (i % COLUMNS) * TILE_WIDTH, (i // COLUMNS) * cell_height
        assert _close(sheet.getpixel((x + TILE_WIDTH // 2, y + LABEL_HEIGHT + cell_height // 2)), colour)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sub-URMP", "sheet.png"]  # no temporary file left


def test_rectangle_is_drawn_where_the_box_says(tmp_path):
    raw = _tree(tmp_path, [("cello", 0, GREEN), ("violin", 0, GREEN)])
    contact_sheet(raw, {"cello": [0.25, 0.1, 0.75, 0.9]}, tmp_path / "sheet.png")
    sheet = Image.open(tmp_path / "sheet.png").convert("RGB")
    left, top, right, bottom = (round(v * SCALE) for v in (48, 10.8, 144, 97.2))  # cello's box in frame pixels
    middle_x, middle_y = (left + right) // 2, LABEL_HEIGHT + (top + bottom) // 2
    for x, y in [(left, middle_y), (left + 2, middle_y), (right - 1, middle_y), (middle_x, LABEL_HEIGHT + top),
                 (middle_x, LABEL_HEIGHT + bottom - 1)]:
        assert sheet.getpixel((x, y)) == BOX_COLOUR, (x, y)
    for x, y in [(left - 1, middle_y), (left + 3, middle_y), (right, middle_y), (middle_x, LABEL_HEIGHT + top - 1)]:
        assert _close(sheet.getpixel((x, y)), GREEN), (x, y)
    # violin has no box: the default centred full-height square, from x = (192 - 108) / 2 = 42 frame pixels
    default_left = TILE_WIDTH + round(42 * SCALE)
    assert sheet.getpixel((default_left, LABEL_HEIGHT + 100)) == BOX_COLOUR
    assert _close(sheet.getpixel((default_left - 1, LABEL_HEIGHT + 100)), GREEN)


def test_unknown_instrument_names_the_parameter(tmp_path):
    raw = _tree(tmp_path, [("cello", 0, GREEN)])
    with pytest.raises(ValueError, match="prepare.crop: unknown instrument 'piano'"):
        contact_sheet(raw, {"piano": [0, 0, 1, 1]}, tmp_path / "sheet.png")


def test_command_defaults_to_params_yaml(tmp_path, monkeypatch):
    raw = _tree(tmp_path, [("cello", 0, GREEN)])
    prepare = {**params.committed(REPO / "params.yaml")["prepare"], "raw": str(raw),
               "crop": {"cello": [0.25, 0.1, 0.75, 0.9]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": prepare}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["crops"])
    assert result.exit_code == 0, result.output
    assert "wrote crops.png (2 performances)" in result.output
    assert Image.open(tmp_path / "crops.png").getpixel((round(48 * SCALE), LABEL_HEIGHT + 100))[:3] == BOX_COLOUR


def test_command_outside_a_checkout_draws_the_default_squares(tmp_path, monkeypatch):
    raw = _tree(tmp_path, [("cello", 0, GREEN)])
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    result = CliRunner().invoke(main, ["crops", "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert "no params.yaml here" in result.output and "wrote crops.png (2 performances)" in result.output
    default_left = round(42 * SCALE)  # the centred full-height square of a 192x108 frame
    assert Image.open(tmp_path / "crops.png").getpixel((default_left, LABEL_HEIGHT + 100))[:3] == BOX_COLOUR


@pytest.mark.parametrize("section, message", [
    ("prepare:\n", "prepare=None is not a mapping"),
    ("prepare: {raw: 5}\n", "prepare.raw=5 is not"),
])
def test_command_with_a_bad_prepare_section_is_one_line_per_problem(tmp_path, monkeypatch, section, message):
    (tmp_path / "params.yaml").write_text(section)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["crops"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert all(line.startswith("error: ") for line in result.output.strip().splitlines())
    assert not (tmp_path / "crops.png").exists()


def test_command_missing_root_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["crops", "--raw", str(tmp_path / "nowhere"), "--crop", "{}",
                                       "-o", str(tmp_path / "sheet.png")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path / "nowhere") in lines[0]
    assert not (tmp_path / "sheet.png").exists()


def test_shipped_suburmp_boxes_are_pixel_squares_inside_the_frame():
    crop = params.compose(overrides=["data=suburmp"])["prepare"]["crop"]  # what the prepare stage will get
    assert set(validate_crop(crop)) == set(INSTRUMENTS)
    for instrument in crop:
        left, top, right, bottom = crop_box(instrument, crop, 1920, 1080)
        assert abs((right - left) - (bottom - top)) <= 1, instrument
        assert 0 <= left < right <= 1920 and 0 <= top < bottom <= 1080, instrument


@pytest.mark.parametrize("box", ["{cello: 5}", "{cello: [a, 0, 1, 1]}", "{cello: [0.1, 0, 0.9]}"])
def test_command_malformed_box_is_one_line(tmp_path, box):
    raw = _tree(tmp_path, [("cello", 0, GREEN)])
    result = CliRunner().invoke(main, ["crops", "--raw", str(raw), "--crop", box, "-o", str(tmp_path / "s.png")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: prepare.crop.cello must be [left, top, right, bottom]")
    assert not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("where, why", [
    ("sheet.jpg", "{out} is not a .png file"),
    ("missing/sheet.png", "folder {tmp}/missing does not exist"),
    ("folder", "{out} is a directory"),
])
def test_command_refuses_an_output_it_cannot_write_before_reading_frames(tmp_path, where, why):
    (tmp_path / "folder").mkdir()
    out = tmp_path / where
    result = CliRunner().invoke(main, ["crops", "--raw", str(tmp_path / "nowhere"), "--crop", "{}", "-o", str(out)])
    assert result.exit_code == 2
    assert result.output == f"error: Invalid value for '-o' / '--out': {why.format(out=out, tmp=tmp_path)}\n"
    assert not out.is_file()
