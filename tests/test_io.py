import numpy as np
import pytest

from pafu_cli.errors import InputError, OutputError
from pafu_cli.io.images import read_image, write_image
from pafu_cli.raw.probe import probe_libraw_matrix
from pafu_cli.raw.read import read_raw
from pafu_cli.raw.render import camera_to_srgb


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 2), (5, 7, 3), (5, 7, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_write_read_roundtrip(tmp_path, rng, ext, shape, dtype):
    img = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    path = tmp_path / f"a{ext}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, img)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_png16_unfilter_all_filter_types():
    from pafu_cli.io import _png

    img = np.arange(3 * 4 * 3, dtype=np.uint16).reshape(3, 4, 3) * 1000
    raw = img.astype(">u2").reshape(3, -1).view(np.uint8).astype(np.int32)
    bpp, rows = 6, []
    for y, ftype in enumerate([1, 2, 4]):  # Sub, Up, Paeth
        line = raw[y]
        prev = raw[y - 1] if y else np.zeros_like(line)
        left = np.concatenate([np.zeros(bpp, np.int32), line[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if ftype == 1:
            f = line - left
        elif ftype == 2:
            f = line - prev
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            f = line - pred
        rows.append(np.concatenate([[ftype], f & 0xFF]).astype(np.uint8))
    import struct
    import zlib

    data = _png.encode(img)
    head = data[: data.index(b"IDAT") - 4]
    idat = zlib.compress(np.concatenate(rows).tobytes())
    png = (
        head
        + struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
        + data[-12:]
    )
    np.testing.assert_array_equal(_png.decode16(png), img)


def test_write_refuses_existing_and_bad_extension(tmp_path):
    img = np.zeros((2, 2), np.uint8)
    path = tmp_path / "a.png"
    write_image(path, img)
    with pytest.raises(OutputError, match="exists; use --overwrite"):
        write_image(path, img + 1)
    assert read_image(path).max() == 0
    write_image(path, img + 7, overwrite=True)
    assert read_image(path).max() == 7
    with pytest.raises(OutputError, match="unknown output extension"):
        write_image(tmp_path / "a.bmp", img)
    with pytest.raises(OutputError, match="does not exist"):
        write_image(tmp_path / "nope" / "a.png", img)
    with pytest.raises(OutputError, match="JPEG holds 8 bits"):
        write_image(tmp_path / "a.jpg", img.astype(np.uint16))


def test_read_image_errors(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(InputError, match="empty file"):
        read_image(tmp_path / "e.png")
    with pytest.raises(InputError, match="not a PNG, TIFF or JPEG image"):
        read_image(tmp_path / "t.png")
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_read_raw_sample(sample_dng):
    raw = read_raw(sample_dng)
    assert raw.cfa.shape == (1156, 1734) and raw.cfa.dtype == np.uint16
    assert raw.pattern == "RGGB" and raw.flip == 0 and raw.is_dng
    assert raw.black.tolist() == [2056] * 4 and raw.white == 15000
    assert raw.cfa.flags.owndata or raw.cfa.base is None or raw.cfa.base.flags.owndata
    assert int(raw.cfa.max()) == 12128


@pytest.mark.parametrize(
    "name,pattern,flip",
    [
        ("derived/cfa_BGGR.dng", "BGGR", 0),
        ("derived/cfa_GRBG.dng", "GRBG", 0),
        ("derived/cfa_GBRG.dng", "GBRG", 0),
        ("derived/orient6_RGGB.dng", "RGGB", 6),
        ("bayer/kodak_dc50_rawsamples.kdc", "GRBG", 0),
        ("bayer/google_pixel7_pigallery2.dng", "RGGB", 5),
    ],
)
def test_read_raw_patterns(shared_raw, name, pattern, flip):
    raw = read_raw(shared_raw / name)
    assert (raw.pattern, raw.flip) == (pattern, flip)


def _probe(path):
    import rawpy

    data = read_raw(path)
    expect = camera_to_srgb(data.color_matrix, data.rgb_xyz_matrix, data.is_dng, False)
    with rawpy.imread(str(path)) as raw:
        return probe_libraw_matrix(raw, data.pattern, data.black), expect, data


def test_probe_reproduces_exposed_dng_matrix(sample_dng):
    # The 550D DNG exposes its colour_matrix: the probe must find the same one.
    got, expect, data = _probe(sample_dng)
    assert data.probed_matrix is None  # not probed when rawpy exposes a matrix
    assert got.dtype == np.float32 and got.shape == (3, 3)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-6)


def test_probe_reproduces_builtin_xyz_matrix(shared_raw):
    # The Canon D30 exposes LibRaw's built-in rgb_xyz_matrix (pseudo-inverse path).
    got, expect, _ = _probe(shared_raw / "bayer/canon_eosd30_rawsamples_boostgil.crw")
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-6)


def test_read_raw_probes_hidden_matrix(shared_raw):
    # The Kodak DC50: LibRaw applies a built-in matrix that rawpy does not expose.
    raw = read_raw(shared_raw / "bayer/kodak_dc50_rawsamples.kdc")
    assert not raw.rgb_xyz_matrix.any() and raw.color_matrix[0, 0] <= 0.125
    expect = [[1.8125, -0.3365, -0.476], [-0.435, 1.852, -0.417], [-0.676, -1.393, 3.069]]
    np.testing.assert_allclose(raw.probed_matrix, expect, rtol=0, atol=1e-6)
    assert int(raw.cfa.max()) == 16383  # the copied mosaic, not the probe written after it


@pytest.mark.parametrize(
    "name,reason",
    [
        ("truncated/exiftool_CanonRaw.cr2", "unsupported format"),
        ("truncated/exiftool_CanonRaw.cr3", "truncated or no image data"),
        ("truncated/exiftool_DNG.dng", "truncated or no image data"),
        ("truncated/exiftool_FujiFilm.raf", "truncated or no image data"),
        ("truncated/exiftool_Nikon.nef", "truncated or no image data"),
        ("truncated/exiftool_Panasonic.rw2", "truncated or no image data"),
        ("unsupported/gopro_hero6_GOPR0024.gpr", "unsupported format"),
        ("linear/canon_eos6d_photoprism.dng", "already demosaicked"),
        ("linear/lg_h815_sample_1mp_skia.dng", "already demosaicked"),
        ("linear/nikon_d500_magicknet.dng", "already demosaicked"),
        ("nonbayer/kodak_c330_kimageformats.raw", "not a 2x2 Bayer sensor"),
        ("derived/xtrans_cfa_metadata.dng", "X-Trans"),
    ],
)
def test_read_raw_rejects_bad_files(shared_raw, name, reason):
    with pytest.raises(InputError, match=reason) as e:
        read_raw(shared_raw / name)
    assert str(shared_raw / name) in str(e.value) and "\n" not in str(e.value)


def test_png_parallel_deflate_is_one_valid_zlib_stream(rng):
    """Pieces deflated on several threads form one zlib stream whose inflated bytes
    equal the single-call encoder's, Adler-32 included (zlib.decompress checks it)."""
    import struct
    import zlib

    from pafu_cli.io import _png

    def idat(data):
        out, pos = b"", 8
        while pos < len(data):
            (n,) = struct.unpack(">I", data[pos : pos + 4])
            if data[pos + 4 : pos + 8] == b"IDAT":
                out += data[pos + 8 : pos + 8 + n]
            pos += 12 + n
        return out

    for shape, dt in [((700, 130, 3), np.uint16), ((3, 2), np.uint8)]:
        img = rng.integers(0, np.iinfo(dt).max, shape).astype(dt)
        fast, ref = _png.encode(img), _png._encode_serial(img)
        assert zlib.decompress(idat(fast)) == zlib.decompress(idat(ref))
        assert fast[:33] == ref[:33]  # signature and IHDR
