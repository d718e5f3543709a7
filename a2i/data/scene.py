"""The frames of the embedded Sub-URMP: a seated player in front of a blue curtain, as in the real videos.

Each performance has its own player (skin, hair, clothes, build, glasses) and stage (curtain folds and light, the
chair, the music stand, the foam panels at the side), drawn from a seeded set of appearances by performance
number: the same few people play every instrument (URMP's musicians, too, recur across its recordings), so that
with a handful of performances per instrument a player's shirt is not a cue to the instrument; each frame
moves a little with the music: the bow travels with each note (one stroke per note, alternating), the trombone
slide follows the pitch, the body sways with breathing and loudness. Instruments have their real colours
(wood, brass, silver, black) and playing postures, so a classifier must learn their shapes and positions rather
than a class colour. Mild camera noise and JPEG compression finish the frame.
Coordinates are in units of the frame height (x right, y down), so any frame size draws the same scene.
Drawing uses exactly rounded arithmetic only (see `a2i.data.exact`), so the bytes are the same on every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from a2i.data.exact import cos_turns, sin_turns

Colour = tuple[int, int, int]
SKINS = ((245, 208, 180), (228, 185, 150), (198, 148, 110), (160, 110, 75), (120, 80, 55), (90, 60, 42))
HAIRS = ((20, 15, 12), (55, 35, 20), (95, 65, 35), (170, 130, 70), (200, 170, 110), (120, 50, 25))
SHIRTS = ((235, 235, 235), (30, 30, 35), (60, 110, 60), (40, 60, 140), (120, 30, 110), (150, 150, 160),
          (190, 60, 50), (90, 140, 200), (210, 190, 150), (70, 70, 80))
TROUSERS = ((45, 60, 95), (30, 30, 35), (190, 170, 120), (110, 110, 115), (70, 60, 50))
WOOD = {"violin": (185, 95, 35), "viola": (95, 32, 18), "cello": (150, 72, 32), "double_bass": (105, 50, 25)}
BRASS, SILVER, BLACK = (212, 168, 72), (205, 205, 215), (22, 20, 22)
BASSOON, OBOE = (105, 42, 28), (70, 42, 30)  # maple and rosewood
ZOOM, TOP = 1.35, 0.2  # the camera frames the player from just above the head to below the knees


@dataclass(frozen=True)
class Player:
    """One performer's appearance and place on the stage."""

    x: float  # body centre
    scale: float  # build
    skin: Colour
    hair: Colour
    long_hair: bool
    shirt: Colour
    stripes: bool
    short_sleeves: bool
    trousers: Colour
    glasses: bool


def draw_player(rng: np.random.Generator, width: int, height: int) -> Player:
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731 - a seeded choice of a tuple
    return Player(x=width / height / 2 - 0.08 + rng.uniform(-0.06, 0.06), scale=rng.uniform(0.92, 1.08),
                  skin=pick(SKINS), hair=pick(HAIRS), long_hair=bool(rng.random() < 0.5), shirt=pick(SHIRTS),
                  stripes=bool(rng.random() < 0.25), short_sleeves=bool(rng.random() < 0.5),
                  trousers=pick(TROUSERS), glasses=bool(rng.random() < 0.3))


@dataclass(frozen=True)
class Motion:
    """What the music does to the picture at one instant."""

    stroke: float  # bow position along its stroke, -1..1
    pitch: float  # place of the sounding note in the instrument's range, 0..1
    loudness: float  # 0..1


def _jitter(colour: Colour, rng: np.random.Generator, amount: float = 0.1) -> Colour:
    factor = rng.uniform(1 - amount, 1 + amount)
    return tuple(int(min(255, max(0, c * factor))) for c in colour)


class Painter:
    """Draws the frames of one performance: its stage and player fixed, the motion per frame."""

    def __init__(self, look: np.random.Generator, rng: np.random.Generator, instrument: str, width: int,
                 height: int):
        """`look` draws the player and the stage, `rng` the instrument's finish and each frame's noise."""
        self.rng, self.instrument, self.width, self.height = rng, instrument, width, height
        self.player = draw_player(look, width, height)
        self.colour = _jitter({**WOOD, "flute": SILVER, "oboe": OBOE, "clarinet": BLACK, "bassoon": BASSOON}
                              .get(instrument, BRASS), rng, 0.08)
        self.background = self._stage(look)

    def _stage(self, rng: np.random.Generator) -> Image.Image:
        """Curtain with folds, foam panels at the right edge, the chair and the music stand."""
        w, h = self.width, self.height
        x = np.arange(w) / h
        folds = 0.72 + 0.18 * sin_turns(x * rng.uniform(9, 13) + rng.random()) \
            + 0.10 * sin_turns(x * rng.uniform(23, 31) + rng.random())
        blue = np.array([30, 45, 215], np.float64) * rng.uniform(0.85, 1.1)
        light = 1.05 - 0.25 * (np.arange(h) / h)  # lit from above
        pixels = (light[:, None, None] * folds[None, :, None] * blue[None, None]).clip(0, 255).astype(np.uint8)
        foam = x > w / h - rng.uniform(0.12, 0.2)
        wedges = (np.arange(h)[:, None] // max(1, h // 40) + (np.arange(w)[None] // max(1, h // 40))) % 2
        pixels[:, foam] = np.where(wedges[:, foam, None] == 1, 58, 40).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        stand_x = self.player.x + rng.uniform(0.42, 0.52)
        self._line(draw, (stand_x, 1.0), (stand_x, 0.62), 0.012, (20, 20, 22))
        self._polygon(draw, [(stand_x - 0.13, 0.62), (stand_x + 0.13, 0.60), (stand_x + 0.15, 0.40),
                             (stand_x - 0.11, 0.42)], (25, 25, 28))  # the stand's desk
        self._polygon(draw, [(stand_x - 0.10, 0.58), (stand_x + 0.11, 0.57), (stand_x + 0.13, 0.41),
                             (stand_x - 0.08, 0.42)], (225, 225, 220))  # the score on it
        chair = (30, 30, 40)
        p = self.player
        self._rect(draw, p.x - 0.15, 0.80, p.x + 0.15, 0.86, chair)
        self._rect(draw, p.x - 0.14, 0.42, p.x - 0.11, 0.82, chair)  # its back, behind the player
        return image

    # primitives: coordinates in frame heights
    def _xy(self, point: tuple[float, float]) -> tuple[float, float]:
        """Scene to pixel coordinates through the camera's zoom, centred on the player's seat."""
        centre = self.player.x
        return (centre + ZOOM * (point[0] - centre)) * self.height, ZOOM * (point[1] - TOP) * self.height

    def _pixels(self, length: float) -> int:
        return max(1, int(ZOOM * length * self.height + 0.5))

    def _line(self, draw, a, b, width: float, colour: Colour) -> None:
        draw.line([self._xy(a), self._xy(b)], fill=colour, width=self._pixels(width))

    def _polygon(self, draw, points, colour: Colour) -> None:
        draw.polygon([self._xy(p) for p in points], fill=colour)

    def _rect(self, draw, x0, y0, x1, y1, colour: Colour) -> None:
        self._polygon(draw, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour)

    def _ellipse(self, draw, centre, a: float, b: float, colour: Colour, angle: float = 0.0, n: int = 32) -> None:
        """A filled ellipse of semi-axes a, b turned by `angle` degrees."""
        turns = np.arange(n) / n
        px, py = a * cos_turns(turns), b * sin_turns(turns)
        c, s = cos_turns(angle / 360), sin_turns(angle / 360)
        self._polygon(draw, list(zip((px * c - py * s + centre[0]).tolist(), (px * s + py * c + centre[1]).tolist())),
                      colour)

    def _ring(self, draw, centre, radius: float, width: float, colour: Colour) -> None:
        x, y = self._xy(centre)
        r = ZOOM * radius * self.height
        draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=self._pixels(width))

    def frame(self, motion: Motion) -> Image.Image:
        image = self.background.copy()
        draw = ImageDraw.Draw(image)
        p = self.player
        breath = 0.004 * motion.loudness + self.rng.uniform(-0.002, 0.002)
        x, s = p.x + breath, p.scale
        self._body(draw, x, s)
        hands = self._instrument(draw, x, s, motion)
        self._arms(draw, x, s, hands)
        pixels = np.asarray(image, np.int16) + self.rng.integers(-3, 4, (self.height, self.width, 3), dtype=np.int16)
        return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))

    def _body(self, draw, x: float, s: float) -> None:
        p = self.player
        shoulder_y, hip_y = 0.46, 0.80
        for side in (-1, 1):  # legs, seen from the front as the seated knees come towards the camera
            self._rect(draw, x + side * 0.015, hip_y - 0.02, x + side * 0.11 * s, 1.0, p.trousers)
        self._polygon(draw, [(x - 0.12 * s, shoulder_y), (x + 0.12 * s, shoulder_y), (x + 0.10 * s, hip_y),
                             (x - 0.10 * s, hip_y)], p.shirt)
        if p.stripes:
            stripe = tuple(max(0, c - 90) for c in p.shirt)
            for k in range(6):
                y = shoulder_y + 0.03 + k * 0.05
                self._rect(draw, x - 0.11 * s, y, x + 0.11 * s, y + 0.015, stripe)
        self._rect(draw, x - 0.025, 0.37, x + 0.025, shoulder_y + 0.01, p.skin)  # neck
        head = (x, 0.31)
        if p.long_hair:
            self._rect(draw, x - 0.075 * s, 0.28, x + 0.075 * s, 0.47, p.hair)
        self._ellipse(draw, (x, 0.295), 0.068 * s, 0.07 * s, p.hair)
        self._ellipse(draw, head, 0.056 * s, 0.072 * s, p.skin)
        if p.glasses:
            for side in (-1, 1):
                self._ring(draw, (x + side * 0.022, 0.305), 0.016, 0.004, (30, 30, 30))

    def _arms(self, draw, x: float, s: float, hands) -> None:
        p = self.player
        for side, hand in zip((-1, 1), hands):
            shoulder = (x + side * 0.11 * s, 0.48)
            elbow = (x + side * 0.15 * s, 0.64) if hand[1] < 0.62 else (x + side * 0.17 * s, 0.60)
            self._line(draw, shoulder, elbow, 0.045 * s, p.shirt)
            self._line(draw, elbow, hand, 0.038 * s, p.skin if p.short_sleeves else p.shirt)
            self._ellipse(draw, hand, 0.022 * s, 0.022 * s, p.skin)

    def _instrument(self, draw, x: float, s: float, m: Motion):
        """Draws the instrument in its playing posture; returns the (right, left) hand positions."""
        c, name = self.colour, self.instrument
        dark = tuple(v // 3 for v in c)
        mouth = (x, 0.35)
        if name in ("violin", "viola"):
            k, tilt = (1.0, -12) if name == "violin" else (1.3, -22)  # the viola: larger, held lower
            body = (x + 0.12, 0.46 if name == "violin" else 0.49)
            self._line(draw, body, (x + 0.12 + 0.24 * k, 0.40), 0.02, dark)  # neck and scroll
            self._ellipse(draw, body, 0.10 * k, 0.055 * k, c, angle=tilt)
            bow = 0.12 * m.stroke
            start, end = (x - 0.10 + bow, 0.62 - bow), (x + 0.30 + bow, 0.30 - bow)
            self._line(draw, start, end, 0.007, (60, 40, 30))
            return (x - 0.06 + bow, 0.58 - bow), (x + 0.12 + 0.22 * k, 0.42)
        if name in ("cello", "double_bass"):
            big = name == "double_bass"
            a, b = (0.17, 0.30) if big else (0.12, 0.21)
            centre = (x + 0.03, 0.86 if big else 0.82)
            self._line(draw, (centre[0], centre[1] - b), (centre[0] + 0.02, 0.05 if big else 0.30), 0.03, dark)
            self._ellipse(draw, centre, a, b, c)
            self._ellipse(draw, (centre[0], centre[1] - 0.35 * b), 0.8 * a, 0.35 * b, c)  # upper bout
            bow = 0.10 * m.stroke
            bow_y = centre[1] - 0.1 * b
            self._line(draw, (x - 0.28 + bow, bow_y - 0.02), (x + 0.20 + bow, bow_y + 0.03), 0.007, (60, 40, 30))
            return (x - 0.20 + bow, bow_y - 0.01), (centre[0] + 0.03, 0.45 if big else 0.50)
        if name == "flute":
            self._line(draw, (mouth[0] - 0.05, 0.36), (x + 0.36, 0.27), 0.016, c)
            return (x + 0.05, 0.34), (x + 0.24, 0.30)
        if name in ("oboe", "clarinet"):  # the clarinet longer, held further out, with a wide bell
            end = (x + 0.24, 0.74) if name == "clarinet" else (x + 0.02, 0.64)
            self._line(draw, (mouth[0], 0.36), end, 0.03 if name == "clarinet" else 0.018, c)
            self._ellipse(draw, end, 0.05 if name == "clarinet" else 0.016, 0.03 if name == "clarinet" else 0.014, c)
            for k in range(4):  # silver keys
                y = 0.44 + 0.06 * k
                self._ellipse(draw, (x + 0.004 + (end[0] - x) * (y - 0.36) / (end[1] - 0.36), y), 0.006, 0.006,
                              SILVER)
            return (x + 0.8 * (end[0] - x), 0.36 + 0.7 * (end[1] - 0.36)), (x + 0.4 * (end[0] - x), 0.47)
        if name == "bassoon":
            self._line(draw, mouth, (x + 0.06, 0.40), 0.006, SILVER)  # the bocal
            self._line(draw, (x - 0.14, 0.92), (x + 0.13, 0.04), 0.05, c)
            return (x - 0.07, 0.70), (x + 0.04, 0.42)
        if name == "sax":
            self._line(draw, mouth, (x + 0.05, 0.42), 0.014, c)
            self._line(draw, (x + 0.05, 0.42), (x + 0.07, 0.76), 0.05, c)
            self._ellipse(draw, (x + 0.12, 0.74), 0.05, 0.06, c)
            return (x + 0.05, 0.66), (x + 0.06, 0.50)
        if name == "trumpet":
            self._line(draw, mouth, (x + 0.26, 0.40), 0.022, c)
            self._rect(draw, x + 0.08, 0.35, x + 0.14, 0.43, c)  # the valves
            self._ellipse(draw, (x + 0.28, 0.40), 0.025, 0.045, c)
            return (x + 0.11, 0.44), (x + 0.15, 0.40)
        if name == "horn":
            self._line(draw, mouth, (x + 0.05, 0.44), 0.012, c)
            self._ring(draw, (x + 0.04, 0.54), 0.11, 0.03, c)
            self._ellipse(draw, (x - 0.10, 0.66), 0.08, 0.07, c)
            return (x - 0.08, 0.64), (x + 0.10, 0.50)
        if name == "trombone":
            slide = 0.12 * (1 - m.pitch)  # lower notes: the slide further out
            tip = (x + 0.12 + 0.5 * slide, 0.90 - 0.1 * slide)
            self._line(draw, (mouth[0] + 0.01, 0.36), tip, 0.012, c)
            self._line(draw, (mouth[0] + 0.04, 0.36), (tip[0] + 0.03, tip[1]), 0.012, c)
            self._line(draw, mouth, (x + 0.16, 0.18), 0.02, c)
            self._ellipse(draw, (x + 0.19, 0.16), 0.065, 0.065, c)
            return (x + 0.06 + 0.25 * slide, 0.65 - 0.05 * slide), (x + 0.04, 0.40)
        if name == "tuba":
            self._line(draw, mouth, (x + 0.03, 0.42), 0.012, c)
            self._ellipse(draw, (x + 0.04, 0.62), 0.13, 0.22, c)
            self._ellipse(draw, (x + 0.06, 0.24), 0.12, 0.05, c)
            self._rect(draw, x + 0.00, 0.26, x + 0.12, 0.42, c)
            return (x - 0.08, 0.62), (x + 0.10, 0.56)
        raise ValueError(f"no posture for instrument '{name}'")
