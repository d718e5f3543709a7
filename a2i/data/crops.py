"""`a2i crops`: the `prepare.crop` boxes drawn on one frame per performance, to check them by eye.

Thesis 4.2.1 crops every frame so that performer and instrument fill most of it, with boxes chosen by hand per
instrument; a contact sheet shows at a glance whether a box cuts off a bow, a bell or a head.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from a2i.data.prepare import BadFile, BadFiles, Pair, crop_box, scan, validate_crop
from a2i.io import atomic_path

TILE_WIDTH = 480  # a 1920x1080 frame at 1/4: the performer is recognisable, 4 columns fit a screen
LABEL_HEIGHT = 18
COLUMNS = 4
BOX_COLOUR = (255, 0, 0)  # red is far from the blue curtain and from most clothes
BOX_WIDTH = 3


def contact_sheet(raw: str | Path, crop: dict, out: str | Path) -> list[str]:
    """Write a PNG with the middle frame of every performance under the Sub-URMP root `raw`, its crop box
    (`crop`, as `prepare.crop`; the centred square where an instrument has none) drawn in red. Returns the
    performances in sheet order (row by row)."""
    crop = validate_crop(dict(crop))
    frames = middle_frames(scan(Path(raw), BadFiles("skip")))
    tiles = [draw_tile(pair, crop) for pair in frames]
    cell_height = LABEL_HEIGHT + max(tile.height for tile in tiles)
    rows = -(-len(tiles) // COLUMNS)
    sheet = Image.new("RGB", (min(len(tiles), COLUMNS) * TILE_WIDTH, rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (pair, tile) in enumerate(zip(frames, tiles)):
        x, y = (i % COLUMNS) * TILE_WIDTH, (i // COLUMNS) * cell_height
        draw.text((x + 4, y + 2), f"{pair.performance} ({pair.split}, {pair.t_ms} ms)", fill="black")
        sheet.paste(tile, (x, y + LABEL_HEIGHT))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return [pair.performance for pair in frames]


def middle_frames(pairs: list[Pair]) -> list[Pair]:
    """The middle frame of each performance, in `scan` order; mid-performance the player is playing."""
    performances: dict[str, list[Pair]] = {}
    for pair in pairs:
        performances.setdefault(pair.performance, []).append(pair)
    return [group[len(group) // 2] for group in performances.values()]


def draw_tile(pair: Pair, crop: dict) -> Image.Image:
    """The frame scaled to TILE_WIDTH with its crop box outlined (drawn inwards, so edge boxes stay visible)."""
    try:
        with Image.open(pair.jpg) as image:
            image.draft("RGB", (TILE_WIDTH, TILE_WIDTH))  # JPEG: decode at a reduced size, still >= the tile
            scale = TILE_WIDTH / image.width
            tile = image.convert("RGB").resize((TILE_WIDTH, round(image.height * scale)), Image.Resampling.LANCZOS)
            left, top, right, bottom = (v * scale for v in crop_box(pair.instrument, crop, *image.size))
    except (OSError, ValueError, SyntaxError) as error:
        raise BadFile(pair.jpg, f"unreadable image ({error})") from None
    ImageDraw.Draw(tile).rectangle((round(left), round(top), round(right) - 1, round(bottom) - 1),
                                   outline=BOX_COLOUR, width=BOX_WIDTH)
    return tile
