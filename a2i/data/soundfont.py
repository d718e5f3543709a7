"""Sampled instrument timbres from a SoundFont 2 file: the recorded note that plays a MIDI key of a GM program.

Only the part of SF2 the synthesizer needs is read: the sample data and, for a (bank 0) preset, the instrument
zone that covers a key (its sample, root key, tuning, loop and attenuation). Envelopes, filters and modulators
are the synthesizer's own, so that its arithmetic stays exactly rounded (see `a2i.data.synthetic`).
The file is the General MIDI bank that ships inside the `pretty_midi` wheel; its sha256 is checked because every
byte of the embedded dataset depends on it.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

BANK_FILE = "TimGM6mb.sf2"
BANK_SHA256 = "82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1"

# General MIDI programs (0-based) of the 13 Sub-URMP instruments; the saxophones of URMP are mostly alto.
GM_PROGRAMS = {
    "violin": 40, "viola": 41, "cello": 42, "double_bass": 43, "trumpet": 56, "trombone": 57, "tuba": 58,
    "horn": 60, "sax": 65, "oboe": 68, "bassoon": 70, "clarinet": 71, "flute": 73,
}

# SF2 2.04 record layouts (little endian) and the generator numbers read here
PHDR = np.dtype([("name", "S20"), ("preset", "<u2"), ("bank", "<u2"), ("bag", "<u2"), ("rest", "V12")])
INST = np.dtype([("name", "S20"), ("bag", "<u2")])
BAG = np.dtype([("gen", "<u2"), ("mod", "<u2")])
GEN = np.dtype([("oper", "<u2"), ("amount", "<i2")])
SHDR = np.dtype([("name", "S20"), ("start", "<u4"), ("end", "<u4"), ("loop_start", "<u4"), ("loop_end", "<u4"),
                 ("rate", "<u4"), ("pitch", "u1"), ("correction", "i1"), ("link", "<u2"), ("type", "<u2")])
START, END, LOOP_START, LOOP_END, START_COARSE = 0, 1, 2, 3, 4
END_COARSE, INSTRUMENT, KEY_RANGE, LOOP_START_COARSE, ATTENUATION = 12, 41, 43, 45, 48
LOOP_END_COARSE, COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES, ROOT_KEY = 50, 51, 52, 53, 54, 58
RIGHT_SAMPLE = 2  # sampleType of the right half of a stereo pair: its left twin (4) or a mono one (1) is used


@dataclass(frozen=True)
class Zone:
    """One recorded note: int16 samples, the key it sounds at, and its loop (sample indices, end exclusive)."""

    samples: np.ndarray
    rate: int
    root_key: int
    tune_cents: int
    loop: tuple[int, int] | None
    attenuation_cb: int  # centibels


def bank_path() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / BANK_FILE


def _chunks(data: bytes, start: int, end: int) -> dict[str, bytes]:
    """RIFF sub-chunks of data[start:end], LIST chunks opened one level."""
    found = {}
    while start + 8 <= end:
        name, size = data[start:start + 4].decode("latin-1"), struct.unpack_from("<I", data, start + 4)[0]
        body = data[start + 8:start + 8 + size]
        if name == "LIST":
            found.update(_chunks(body, 4, len(body)))
        else:
            found[name] = body
        start += 8 + size + (size & 1)
    return found


class SoundFont:
    """The melodic presets of an SF2 file, read once; `zone(program, key)` finds the note to play."""

    def __init__(self, path: str | Path, sha256: str | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: SoundFont not found (it ships with the pretty_midi package)")
        data = path.read_bytes()
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(f"{path}: sha256 {hashlib.sha256(data).hexdigest()} is not the expected {sha256}; "
                             "the embedded dataset is defined by that exact SoundFont")
        if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
            raise ValueError(f"{path}: not a SoundFont 2 file")
        chunks = _chunks(data, 12, len(data))
        try:
            self.smpl = np.frombuffer(chunks["smpl"], "<i2")
            self.phdr, self.inst = np.frombuffer(chunks["phdr"], PHDR), np.frombuffer(chunks["inst"], INST)
            self.pbag, self.ibag = np.frombuffer(chunks["pbag"], BAG), np.frombuffer(chunks["ibag"], BAG)
            self.pgen, self.igen = np.frombuffer(chunks["pgen"], GEN), np.frombuffer(chunks["igen"], GEN)
            self.shdr = np.frombuffer(chunks["shdr"], SHDR)
        except KeyError as missing:
            raise ValueError(f"{path}: SoundFont lacks its {missing} chunk") from None

    def _zones(self, bags: np.ndarray, gens: np.ndarray, first_bag: int, last_bag: int, terminal: int) -> list[dict]:
        """Generator dicts of the zones in bags [first, last), the global zone's values merged into the others."""
        zones = []
        for bag in range(first_bag, last_bag):
            zone = {int(g["oper"]): g for g in gens[bags[bag]["gen"]:bags[bag + 1]["gen"]]}
            zones.append(zone)
        if zones and terminal not in zones[0]:
            default, zones = zones[0], zones[1:]
            zones = [{**default, **zone} for zone in zones]
        return zones

    @staticmethod
    def _distance(zone: dict, key: int) -> int:
        """How many keys `key` lies outside the zone's key range (0: inside)."""
        if KEY_RANGE not in zone:
            return 0
        both = int(zone[KEY_RANGE]["amount"]) & 0xFFFF  # low byte: lowest key, high byte: highest
        low, high = both & 0xFF, both >> 8
        return max(low - key, key - high, 0)

    def zone(self, program: int, key: int) -> Zone:
        """The recorded note that plays `key` (MIDI) in GM `program` (bank 0). Where the bank's key map has a gap
        (its alto sax lacks key 64), the nearest zone's note is pitch-shifted to the key, as for any key."""
        presets = np.flatnonzero((self.phdr["preset"][:-1] == program) & (self.phdr["bank"][:-1] == 0))
        if not presets.size:
            raise KeyError(f"SoundFont has no bank-0 preset for program {program}")
        p = int(presets[0])
        candidates = []
        for preset_zone in self._zones(self.pbag, self.pgen, self.phdr[p]["bag"], self.phdr[p + 1]["bag"],
                                       INSTRUMENT):
            if self._distance(preset_zone, key):
                continue
            i = int(preset_zone[INSTRUMENT]["amount"])
            for zone in self._zones(self.ibag, self.igen, self.inst[i]["bag"], self.inst[i + 1]["bag"], SAMPLE_ID):
                sample = self.shdr[int(zone[SAMPLE_ID]["amount"]) & 0xFFFF]
                if sample["type"] != RIGHT_SAMPLE:
                    candidates.append((self._distance(zone, key), len(candidates), zone, sample))
        if not candidates:
            raise KeyError(f"SoundFont program {program} has no sample for key {key}")
        _, _, zone, sample = min(candidates, key=lambda c: c[:2])
        return self._make_zone(zone, sample)

    def _make_zone(self, zone: dict, sample: np.void) -> Zone:
        def amount(oper: int) -> int:
            return int(zone[oper]["amount"]) if oper in zone else 0

        start = int(sample["start"]) + amount(START) + 32768 * amount(START_COARSE)
        end = int(sample["end"]) + amount(END) + 32768 * amount(END_COARSE)
        loop_start = int(sample["loop_start"]) + amount(LOOP_START) + 32768 * amount(LOOP_START_COARSE) - start
        loop_end = int(sample["loop_end"]) + amount(LOOP_END) + 32768 * amount(LOOP_END_COARSE) - start
        loops = amount(SAMPLE_MODES) & 1 and 0 <= loop_start < loop_end <= end - start
        root = amount(ROOT_KEY) if ROOT_KEY in zone and amount(ROOT_KEY) >= 0 else int(sample["pitch"])
        return Zone(samples=self.smpl[start:end], rate=int(sample["rate"]), root_key=root,
                    tune_cents=100 * amount(COARSE_TUNE) + amount(FINE_TUNE) + int(sample["correction"]),
                    loop=(loop_start, loop_end) if loops else None, attenuation_cb=amount(ATTENUATION))


@cache
def general_midi() -> SoundFont:
    """The General MIDI bank of the pretty_midi wheel, checked against its sha256."""
    return SoundFont(bank_path(), BANK_SHA256)
