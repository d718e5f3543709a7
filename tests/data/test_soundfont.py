import hashlib
import struct

import numpy as np
import pytest

from a2i.data.soundfont import (ATTENUATION, GM_PROGRAMS, INSTRUMENT, KEY_RANGE, SAMPLE_ID, SAMPLE_MODES, SoundFont,
                                general_midi)
from a2i.data.synthetic import VOICES


def _chunk(name: bytes, body: bytes) -> bytes:
    return name + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _gens(*pairs) -> bytes:
    return b"".join(struct.pack("<Hh", oper, amount) for oper, amount in pairs)


def _keys(low: int, high: int) -> int:
    return struct.unpack("<h", bytes([low, high]))[0]


def miniature_sf2() -> bytes:
    """One preset (program 5) -> one instrument with a global zone and two samples: keys 0-64 (unlooped, root
    60) and 70-127 (looped 20..90, root 72, +7 cents)."""
    samples = np.concatenate([np.arange(100), 1000 + np.arange(100)]).astype("<i2").tobytes() + b"\0" * 92
    shdr = b"".join([
        struct.pack("<20s5IBbHH", b"low", 0, 100, 10, 90, 22050, 60, 0, 0, 1),
        struct.pack("<20s5IBbHH", b"high", 100, 200, 120, 190, 44100, 72, 7, 0, 1),
        struct.pack("<20s5IBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0),
    ])
    igen = _gens((ATTENUATION, 30),  # global zone
                 (KEY_RANGE, _keys(0, 64)), (SAMPLE_ID, 0),
                 (KEY_RANGE, _keys(70, 127)), (SAMPLE_MODES, 1), (SAMPLE_ID, 1))
    ibag = struct.pack("<4H", 0, 0, 1, 0) + struct.pack("<4H", 3, 0, 6, 0)  # 3 zones + terminal
    pgen = _gens((INSTRUMENT, 0))
    pbag = struct.pack("<4H", 0, 0, 1, 0)
    phdr = struct.pack("<20s3H12x", b"Test", 5, 0, 0) + struct.pack("<20s3H12x", b"EOP", 0, 0, 1)
    inst = struct.pack("<20sH", b"TestInst", 0) + struct.pack("<20sH", b"EOI", 3)
    body = b"sfbk" + _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1))) \
        + _list(b"sdta", _chunk(b"smpl", samples)) \
        + _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", b"\0" * 10),
                _chunk(b"pgen", pgen + _gens((0, 0))), _chunk(b"inst", inst), _chunk(b"ibag", ibag),
                _chunk(b"imod", b"\0" * 10), _chunk(b"igen", igen + _gens((0, 0))), _chunk(b"shdr", shdr))
    return _chunk(b"RIFF", body)


@pytest.fixture()
def font(tmp_path):
    path = tmp_path / "mini.sf2"
    path.write_bytes(miniature_sf2())
    return SoundFont(path, hashlib.sha256(path.read_bytes()).hexdigest())


def test_zone_for_a_key(font):
    low = font.zone(5, 60)
    assert np.array_equal(low.samples, np.arange(100))
    assert (low.rate, low.root_key, low.tune_cents, low.loop, low.attenuation_cb) == (22050, 60, 0, None, 30)
    high = font.zone(5, 100)
    assert high.samples[0] == 1000 and (high.rate, high.root_key, high.tune_cents) == (44100, 72, 7)
    assert high.loop == (20, 90)  # relative to the sample's start
    assert high.attenuation_cb == 30  # from the global zone


def test_a_gap_in_the_key_map_plays_the_nearest_zone(font):
    assert font.zone(5, 66).root_key == 60
    assert font.zone(5, 69).root_key == 72


def test_bad_files_and_programs(tmp_path, font):
    with pytest.raises(KeyError, match="program 6"):
        font.zone(6, 60)
    path = tmp_path / "mini.sf2"
    with pytest.raises(ValueError, match="mini.sf2: sha256"):
        SoundFont(path, "0" * 64)
    (tmp_path / "x.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(ValueError, match="x.sf2: not a SoundFont 2 file"):
        SoundFont(tmp_path / "x.sf2")
    with pytest.raises(FileNotFoundError, match="nothing.sf2"):
        SoundFont(tmp_path / "nothing.sf2")


def test_the_general_midi_bank_plays_every_key_of_every_instrument():
    bank = general_midi()  # the pretty_midi wheel's, sha256 checked
    for instrument, voice in VOICES.items():
        zones = [bank.zone(GM_PROGRAMS[instrument], key) for key in range(voice.low, voice.high + 1)]
        assert all(len(z.samples) > 100 and z.rate in (22050, 22500, 44100) for z in zones), instrument
        assert len({z.root_key for z in zones}) >= 2, instrument  # sampled at several pitches across the range
