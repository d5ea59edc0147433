"""Map files (pafu_cli.io.maps): values, units, bit depth and orientation kept through
every format; malformed files refused with one line; atomic writing; previews."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest
import tifffile
from numpy.lib import format as npformat
from PIL import Image

from pafu_cli.errors import InputError, OutputError
from pafu_cli.io import maps
from pafu_cli.io.maps import MAP_EXTENSIONS, MapInfo, map_info, preview_map, read_map, write_map

H, W = 7, 5  # non-square, odd: a transposed or flipped map cannot pass


def ramp(channels: int = 1, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A (H, W[, C]) map whose value encodes its row, column and channel: 100 y + 10 x + c."""
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(channels), indexing="ij")
    m = (100.0 * y + 10.0 * x + c) * scale + offset
    return m[..., 0] if channels == 1 else m


def assert_one_line_error(exc_info, path) -> None:
    msg = str(exc_info.value)
    assert str(path) in msg
    assert "\n" not in msg and "\r" not in msg


def no_temp_files(folder) -> bool:
    return not [p.name for p in folder.iterdir() if ".pafu" in p.name]


# --- round trips --------------------------------------------------------------------------------

ROUND_TRIPS = [
    # ext, stored dtype, channels, values (in the file's units)
    (".png", "uint8", 1, np.minimum(ramp(scale=0.4), 255)),  # 0 .. 255
    (".png", "uint16", 1, ramp(scale=97.0)),  # up to 63 000: all 16 bits used
    (".tif", "uint16", 1, ramp(scale=97.0)),
    (".tiff", "uint16", 2, ramp(2, scale=97.0)),
    (".tif", "int16", 1, ramp(offset=-400.0)),
    (".tif", "float32", 1, ramp(scale=0.01, offset=-1.5)),
    (".tif", "float32", 2, ramp(2, scale=-0.25)),
    (".tif", "float32", 3, ramp(3, scale=1e-3)),
    (".npy", "float32", 1, ramp(scale=0.1)),
    (".npy", "float32", 3, ramp(3, scale=0.1)),
    (".npy", "float64", 1, ramp(scale=1 / 3)),
    (".npy", "float64", 2, ramp(2, scale=1 / 3)),
    (".npy", "uint16", 1, ramp(scale=97.0)),
    (".npy", "uint16", 4, ramp(4, scale=97.0)),
    (".npy", "int16", 1, ramp(offset=-400.0)),
    (".npy", "int16", 2, ramp(2, offset=-400.0)),
    (".pfm", "float32", 1, ramp(scale=0.1, offset=-3.0)),
    (".pfm", "float32", 3, ramp(3, scale=0.1, offset=-3.0)),
    (".flo", "float32", 2, ramp(2, scale=0.5, offset=-100.0)),
]


def stored(path) -> np.ndarray:
    """The samples of a written file, read by an independent reader (no pafu code)."""
    ext = path.suffix
    if ext == ".png":
        with Image.open(path) as im:
            arr = np.array(im)
            return arr.astype(np.uint16) if im.mode.startswith("I;16") else arr
    if ext in (".tif", ".tiff"):
        return tifffile.imread(path)
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    raw = path.read_bytes()
    if ext == ".flo":
        w, h = struct.unpack("<ii", raw[4:12])
        return np.frombuffer(raw[12:], "<f4").reshape(h, w, 2)
    magic, size, scale, data = raw.split(b"\n", 3)
    w, h = map(int, size.split())
    assert float(scale) < 0  # little-endian
    c = 3 if magic == b"PF" else 1
    return np.frombuffer(data, "<f4").reshape((h, w, c) if c == 3 else (h, w))[::-1]  # bottom row first


@pytest.mark.parametrize(("ext", "dtype", "channels", "values"), ROUND_TRIPS)
def test_round_trip_keeps_values_dtype_and_orientation(tmp_path, ext, dtype, channels, values):
    values = values.astype(np.float32)
    fmt = maps.MAP_FORMATS[ext]
    path = tmp_path / f"map{ext}"
    write_map(path, values, like=MapInfo(fmt, dtype, channels, H, W))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left

    on_disk = stored(path)
    assert on_disk.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(on_disk, values.astype(dtype))

    back, info = read_map(path)
    assert info == MapInfo(fmt, dtype, channels, H, W)
    assert back.dtype == np.float32 and back.flags.c_contiguous
    assert back.shape == values.shape
    np.testing.assert_array_equal(back, values)
    first = values if channels == 1 else values[..., 0]
    assert len(np.unique(first)) == H * W  # every pixel distinct: a flip or transpose fails

    again = tmp_path / f"again{ext}"
    write_map(again, back, like=info)
    np.testing.assert_array_equal(read_map(again)[0], values)
    assert map_info(again) == info


def test_map_info_reads_headers_only(tmp_path, monkeypatch):
    infos = {}
    for i, (ext, dtype, channels, values) in enumerate(ROUND_TRIPS):
        path = tmp_path / f"m{i}{ext}"
        write_map(path, values, like=MapInfo(maps.MAP_FORMATS[ext], dtype, channels, H, W))
        infos[path] = read_map(path)[1]

    def boom(*args, **kwargs):
        raise AssertionError("map_info decoded the data")

    monkeypatch.setattr(np, "load", boom)
    monkeypatch.setattr(np, "fromfile", boom)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", boom)
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", boom)
    monkeypatch.setattr("pafu_cli.io.images.read_image", boom)
    for path, info in infos.items():
        assert map_info(path) == info
        assert map_info(str(path)) == info


def test_float_formats_keep_nan_and_inf(tmp_path):
    values = ramp(2).astype(np.float32)
    values[1, 2] = [np.nan, np.inf]
    values[5, 0] = [-np.inf, 1e10]  # 1e10: an unknown flow in .flo
    for ext in (".tif", ".npy", ".flo"):
        write_map(tmp_path / f"a{ext}", values)
        back, _ = read_map(tmp_path / f"a{ext}")
        np.testing.assert_array_equal(back, values)  # NaN == NaN here
    write_map(tmp_path / "a.pfm", values[..., 0])
    np.testing.assert_array_equal(read_map(tmp_path / "a.pfm")[0], values[..., 0])


def test_float64_tiff_and_one_channel_layouts(tmp_path):
    values = ramp(scale=1 / 3)
    tifffile.imwrite(tmp_path / "d.tif", values)  # float64
    back, info = read_map(tmp_path / "d.tif")
    assert info == MapInfo("tiff", "float64", 1, H, W)
    np.testing.assert_array_equal(back, values.astype(np.float32))
    write_map(tmp_path / "out.tif", back, like=info)  # float TIFF output: float32
    assert tifffile.imread(tmp_path / "out.tif").dtype == np.float32

    np.save(tmp_path / "c.npy", values[..., None].astype(np.float32))  # (H, W, 1)
    back, info = read_map(tmp_path / "c.npy")
    assert back.shape == (H, W) and info.channels == 1

    planes = np.moveaxis(ramp(3), -1, 0).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", planes, planarconfig="separate", photometric="rgb")
    back, info = read_map(tmp_path / "p.tif")
    assert info == MapInfo("tiff", "uint16", 3, H, W)
    np.testing.assert_array_equal(back, ramp(3))


# --- hand-written files -------------------------------------------------------------------------


def test_big_endian_pfm_written_by_hand(tmp_path):
    values = ramp(scale=0.5, offset=-7.25)
    rows = b"".join(struct.pack(f">{W}f", *row) for row in values[::-1])  # bottom row first
    path = tmp_path / "be.pfm"
    path.write_bytes(b"Pf\n%d %d\n2.5\n" % (W, H) + rows)  # positive scale: big-endian
    back, info = read_map(path)
    assert info == MapInfo("pfm", "float32", 1, H, W)
    np.testing.assert_array_equal(back, values)  # values unscaled: the scale's size is ignored
    assert back[0, 0] == -7.25 and back[-1, 0] == -7.25 + 300


@pytest.mark.parametrize(
    "header",
    [b"PF\r\n%d %d\r\n-1.0\r\n", b"PF\n%d\n%d\n-1\n", b"PF  \n %d   %d \n-1.000000\n", b"PF\n%d %d\n-1.0 "],
)
def test_pfm_header_whitespace(tmp_path, header):
    values = ramp(3, scale=0.25)
    path = tmp_path / "ws.pfm"
    path.write_bytes(header % (W, H) + np.ascontiguousarray(values[::-1], "<f4").tobytes())
    np.testing.assert_array_equal(read_map(path)[0], values)


@pytest.mark.parametrize("end", [b"\n", b"\r", b" "])
def test_pfm_data_starting_with_a_newline_byte(tmp_path, end):
    # The first float's first byte is 0x0a: the single whitespace after the scale must
    # end the header, not swallow the data (not even after a "\r", where "\r\n" could be read).
    first = np.frombuffer(b"\x0a\x00\x80\x3f", "<f4")[0]
    values = np.full((1, 2), 2.0, np.float32)
    values[-1, 0] = first  # the bottom row is stored first
    path = tmp_path / "nl.pfm"
    path.write_bytes(b"Pf\n2 1\n-1.0" + end + values.astype("<f4").tobytes())
    np.testing.assert_array_equal(read_map(path)[0], values)


def test_flo_written_by_hand(tmp_path):
    uv = [[(1.5, -2.0), (3.0, 4.25), (-0.5, 1e10)], [(7.0, 8.0), (-9.5, 0.0), (11.0, -12.0)]]
    data = b"".join(struct.pack("<ff", u, v) for row in uv for u, v in row)
    path = tmp_path / "hand.flo"
    path.write_bytes(struct.pack("<f", 202021.25) + struct.pack("<ii", 3, 2) + data)
    back, info = read_map(path)
    assert info == MapInfo("flo", "float32", 2, 2, 3)
    np.testing.assert_array_equal(back, np.array(uv, np.float32))  # 1e10 (unknown) kept as is
    assert back[0, 1, 0] == 3.0 and back[0, 1, 1] == 4.25 and back[1, 0, 0] == 7.0


def test_png_written_by_pillow_reads_in_its_units(tmp_path):
    mm = ramp(scale=97.0).astype(np.uint16)  # millimetres
    Image.fromarray(mm).save(tmp_path / "depth.png")
    back, info = read_map(tmp_path / "depth.png")
    assert info == MapInfo("png", "uint16", 1, H, W)
    np.testing.assert_array_equal(back, mm.astype(np.float32))


# --- writing: dtype conversion ------------------------------------------------------------------


def test_integer_outputs_round_half_away_clip_and_zero_nan(tmp_path):
    values = np.array([[-3.5, 0.5, 1.5, 2.5, 70000.0, np.nan, np.inf, -np.inf, 65534.4, 2.4999]], np.float32)
    write_map(tmp_path / "a.png", values)  # no like: uint16
    np.testing.assert_array_equal(stored(tmp_path / "a.png"), [[0, 1, 2, 3, 65535, 0, 65535, 0, 65534, 2]])
    write_map(tmp_path / "b.png", values, like=MapInfo("pfm", "float32", 1, 1, 10))  # float like: uint16
    assert stored(tmp_path / "b.png").dtype == np.uint16
    write_map(tmp_path / "c.png", values, like=MapInfo("png", "uint8", 1, 1, 10))
    np.testing.assert_array_equal(stored(tmp_path / "c.png"), [[0, 1, 2, 3, 255, 0, 255, 0, 255, 2]])
    signed = np.array([[-2.5, 2.5, -0.5, 40000.0, -40000.0, np.nan]])
    write_map(tmp_path / "d.npy", signed, like=MapInfo("npy", "int16", 1, 1, 6))
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), [[-3, 3, -1, 32767, -32768, 0]])
    write_map(tmp_path / "e.tif", signed, like=MapInfo("tiff", "int16", 1, 1, 6))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "e.tif"), [[-3, 3, -1, 32767, -32768, 0]])


def test_default_output_dtypes(tmp_path):
    values = ramp(scale=0.125)  # float64 in
    write_map(tmp_path / "a.tif", values)
    write_map(tmp_path / "a.npy", values)
    write_map(tmp_path / "b.npy", values, like=MapInfo("png", "bool", 1, H, W))  # not a number type
    write_map(tmp_path / "a.pfm", values, like=MapInfo("npy", "float64", 1, H, W))
    for name in ("a.tif", "a.npy", "b.npy", "a.pfm"):
        assert stored(tmp_path / name).dtype == np.float32, name
        np.testing.assert_array_equal(stored(tmp_path / name), values.astype(np.float32))
    write_map(tmp_path / "c.npy", values, like=MapInfo("pfm", "float64", 1, H, W))
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), values)  # float64 kept, not via float32


def test_write_refuses_channels_the_format_cannot_hold(tmp_path):
    cases = [
        ("a.png", ramp(2)),
        ("a.flo", ramp()),
        ("b.flo", ramp(3)),
        ("a.pfm", ramp(2)),
        ("b.pfm", ramp(4)),
    ]
    for name, values in cases:
        with pytest.raises(OutputError) as e:
            write_map(tmp_path / name, values)
        assert_one_line_error(e, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OutputError, match="unknown (map|output) extension"):
        write_map(tmp_path / "a.jpg", ramp())
    with pytest.raises(OutputError, match="does not exist"):
        write_map(tmp_path / "missing" / "a.npy", ramp())
    with pytest.raises(TypeError):
        write_map(tmp_path / "a.npy", ramp().astype(complex))
    with pytest.raises(ValueError):
        write_map(tmp_path / "a.npy", np.zeros((3, 4, 5)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", MAP_EXTENSIONS)
def test_write_refuses_existing_file_without_overwrite(tmp_path, ext):
    values = ramp(2) if ext in (".flo", ".tif", ".tiff", ".npy") else ramp()
    path = tmp_path / f"out{ext}"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists") as e:
        write_map(path, values)
    assert_one_line_error(e, path)
    assert path.read_bytes() == b"precious"
    assert no_temp_files(tmp_path)
    write_map(path, values, overwrite=True)
    np.testing.assert_array_equal(read_map(path)[0], values)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    (tmp_path / f"dir{ext}").mkdir()
    with pytest.raises(OutputError, match="folder"):
        write_map(tmp_path / f"dir{ext}", values, overwrite=True)


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(OutputError, match="No space left") as e:
        write_map(tmp_path / "a.npy", ramp())
    assert_one_line_error(e, tmp_path / "a.npy")
    assert list(tmp_path.iterdir()) == []


# --- bad files ----------------------------------------------------------------------------------


class _Trap:
    """Unpickling this object records it: a reader that unpickles is caught."""

    def __reduce__(self):
        return (_sprung, ())


_SPRUNG: list = []


def _sprung():
    _SPRUNG.append(1)
    return 0


def _npy_bytes(header: dict, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def _npy_saved(arr, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kwargs)
    return buf.getvalue()


def _good(ext) -> bytes:
    buf = io.BytesIO()
    if ext == ".npy":
        np.save(buf, ramp().astype(np.float32))
        return buf.getvalue()
    if ext == ".pfm":
        return b"Pf\n%d %d\n-1.0\n" % (W, H) + ramp().astype("<f4").tobytes()
    return b"PIEH" + struct.pack("<ii", W, H) + ramp(2).astype("<f4").tobytes()


def _png(mode: str, shape) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros(shape, np.uint8)).convert(mode).save(buf, format="png")
    return buf.getvalue()


BAD_FILES = {
    "truncated.npy": _good(".npy")[:-3],
    "truncated.pfm": _good(".pfm")[:-1],
    "truncated.flo": _good(".flo")[:-4],
    "header_cut.flo": b"PIEH\x05\x00",
    "header_cut.pfm": b"Pf\n5 7",
    "header_cut.npy": _good(".npy")[:20],
    "trailing.pfm": _good(".pfm") + b"\0\0\0\0",
    "magic.pfm": b"P5\n5 7\n255\n" + bytes(35),
    "magic.flo": b"HEIP" + _good(".flo")[4:],
    "magic.npy": b"\x93NUMPX" + _good(".npy")[6:],
    "text.png": b"not a png at all, just some text",
    "png_named.tif": _png("L", (H, W)),
    "negative.pfm": b"Pf\n-5 7\n-1.0\n" + bytes(140),
    "zero.pfm": b"Pf\n0 7\n-1.0\n",
    "scale.pfm": b"Pf\n5 7\nzero\n" + bytes(140),
    "negative.flo": b"PIEH" + struct.pack("<ii", -5, 7) + bytes(280),
    "negative.npy": _npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (-7, 5)}, bytes(140)),
    "huge.pfm": b"Pf\n100000 100000\n-1.0\n" + bytes(64),
    "huge.flo": b"PIEH" + struct.pack("<ii", 100000, 100000) + bytes(64),
    "huge.npy": _npy_bytes({"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}, bytes(64)),
    "objects.npy": _npy_saved(np.array([[_Trap(), _Trap()]], dtype=object), allow_pickle=True),
    "complex.npy": _npy_saved(np.ones((H, W), np.complex64)),
    "bool.npy": _npy_saved(np.ones((H, W), bool)),
    "string.npy": _npy_saved(np.array([["a", "b"]])),
    "record.npy": _npy_saved(np.zeros((H, W), [("d", "<f4"), ("c", "<f4")])),
    "vector.npy": _npy_saved(np.ones(5, np.float32)),
    "channels.npy": _npy_saved(np.ones((H, W, 5), np.float32)),
    "rgb.png": _png("RGB", (H, W)),
    "rgba.png": _png("RGBA", (H, W)),
    "la.png": _png("LA", (H, W)),
    "palette.png": _png("P", (H, W)),
    "bilevel.png": _png("1", (H, W)),
    "map.bmp": b"BM" + bytes(100),
    "noext": b"some bytes",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_one_line_input_errors(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    for fn in (map_info, read_map):
        with pytest.raises(InputError) as e:
            fn(path)
        assert_one_line_error(e, path)
    assert _SPRUNG == []


def test_bad_file_messages_say_what_is_wrong(tmp_path):
    expect = {
        "truncated.pfm": "truncated: expected 140 bytes of data, found 139",
        "truncated.flo": "truncated: expected 280 bytes of data, found 276",
        "truncated.npy": "truncated: expected 140 bytes of data, found 137",
        "huge.flo": "PAFU_MAX_PIXELS",
        "huge.npy": "PAFU_MAX_PIXELS",
        "negative.flo": "invalid size",
        "negative.npy": "invalid size",
        "objects.npy": "pickle",
        "complex.npy": "complex64",
        "rgb.png": "3 channels",
        "la.png": "alpha",
        "magic.flo": "not a Middlebury .flo",
        "magic.pfm": "not a PFM",
        "map.bmp": "unknown (map|output) extension",
    }
    for name, text in expect.items():
        path = tmp_path / name
        path.write_bytes(BAD_FILES[name])
        with pytest.raises(InputError, match=text):
            read_map(path)


@pytest.mark.parametrize("ext", MAP_EXTENSIONS)
def test_empty_file_folder_and_missing_file(tmp_path, ext):
    (tmp_path / f"empty{ext}").write_bytes(b"")
    (tmp_path / f"folder{ext}").mkdir()
    for name, text in [(f"empty{ext}", "empty"), (f"folder{ext}", "folder"), (f"missing{ext}", "no such")]:
        with pytest.raises(InputError, match=text) as e:
            read_map(tmp_path / name)
        assert_one_line_error(e, tmp_path / name)


def test_multi_page_and_truncated_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((2, H, W), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match="multi-page") as e:
        read_map(tmp_path / "pages.tif")
    assert_one_line_error(e, tmp_path / "pages.tif")
    tifffile.imwrite(tmp_path / "big.tif", np.ones((200, 300), np.float32))
    data = (tmp_path / "big.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        read_map(tmp_path / "cut.tif")
    assert_one_line_error(e, tmp_path / "cut.tif")


def test_pixel_limit_from_the_environment(tmp_path, monkeypatch):
    write_map(tmp_path / "a.flo", ramp(2))
    write_map(tmp_path / "a.png", ramp())
    monkeypatch.setenv("PAFU_MAX_PIXELS", "34")  # the map holds 35
    for name in ("a.flo", "a.png"):
        with pytest.raises(InputError, match="PAFU_MAX_PIXELS"):
            map_info(tmp_path / name)


# --- previews -----------------------------------------------------------------------------------


def luminance(rgb) -> np.ndarray:
    return rgb.astype(np.float64) @ [0.2126, 0.7152, 0.0722]


def test_preview_scalar_map():
    values = ramp().astype(np.float32)
    values[2, 3] = np.nan
    values[4, 1] = np.inf
    pic = preview_map(values)
    assert pic.shape == (H, W, 3) and pic.dtype == np.uint8
    assert (pic[2, 3] == 0).all() and (pic[4, 1] == 0).all()  # holes are black
    finite = np.isfinite(values)
    assert (pic[finite].max(axis=-1) > 0).all()  # the ramp has no black
    assert luminance(pic[-1, -1]) > luminance(pic[0, 0]) + 150

    line = np.linspace(-5.0, 5.0, 200)[None, :]
    lum = luminance(preview_map(line)[0])
    assert (np.diff(lum) >= 0).all() and (np.diff(lum[::10]) > 0).all()  # brighter with the value
    assert np.array_equal(preview_map(line)[0, 0], preview_map(line)[0, 1])  # below the 1st percentile


def test_preview_degenerate_maps():
    assert (preview_map(np.full((3, 4), np.nan)) == 0).all()
    flat = preview_map(np.full((3, 4, 1), 7.0))
    assert flat.shape == (3, 4, 3) and (flat == flat[0, 0]).all() and flat.max() > 0
    with pytest.raises(ValueError):
        preview_map(np.zeros((3, 4, 3)))


def test_preview_flow_wheel():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = [5, 0]  # +u
    flow[0, 1] = [0, 5]  # +v
    flow[0, 2] = [-5, 0]  # -u
    flow[1, 1] = [np.nan, 0]
    flow[1, 2] = [1e10, 1e10]  # unknown
    pic = preview_map(flow)
    assert pic.shape == (2, 3, 3) and pic.dtype == np.uint8
    plus_u, plus_v, minus_u = (pic[0, i].astype(int) for i in range(3))
    assert np.abs(plus_u - plus_v).max() > 100 and np.abs(plus_u - minus_u).max() > 100
    assert plus_u.argmax() == 0 and plus_u[0] == 255  # fully saturated, value 1
    assert (pic[1, 0] == 255).all()  # no motion: white
    assert (pic[1, 1] == 0).all() and (pic[1, 2] == 0).all()  # holes: black
    half = preview_map(np.array([[[5, 0], [2.5, 0]]], np.float32))[0]
    assert half[0, 0] == half[1, 0] == 255 and half[0, 1] < half[1, 1] < 255  # less motion, paler


def test_pickle_trap_works():
    # The trap used by the pickled-.npy case does spring when unpickled.
    pickle.loads(pickle.dumps(_Trap()))
    assert _SPRUNG == [1]
    _SPRUNG.clear()
