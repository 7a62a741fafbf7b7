"""Preprocessing of user images, checked on synthetic digits whose geometry we know."""
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tinydigits.errors import TinyDigitsError
from tinydigits.preprocess import mnist_like, open_image, preprocess_pixels


def drawn_one(size=(300, 200), ink=0, paper=255, width=18, offset=(40, 30)) -> Image.Image:
    """A tall bar, the simplest '1', drawn off-centre on a larger page."""
    image = Image.new("L", size, paper)
    x, y = offset
    ImageDraw.Draw(image).line([(x + 60, y + 10), (x + 60, y + 150)], fill=ink, width=width)
    return image


def centre_of_mass(a):
    ys, xs = np.indices(a.shape)
    return (ys * a).sum() / a.sum(), (xs * a).sum() / a.sum()


def test_longer_side_is_20_and_mass_is_centred():
    out = mnist_like(drawn_one())
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rows = np.flatnonzero(out.max(axis=1) > 30)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21  # the bar's height became ~20 px
    cy, cx = centre_of_mass(out.astype(float))
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert out[0].max() == 0 and out[:, 0].max() == 0  # background stays black


def test_polarity_and_colour_do_not_matter():
    dark_on_light = mnist_like(drawn_one(ink=0, paper=255))
    light_on_dark = mnist_like(drawn_one(ink=255, paper=0))
    assert np.abs(dark_on_light.astype(int) - light_on_dark.astype(int)).max() <= 2
    blue_on_cream = drawn_one(ink=0, paper=255).convert("RGB")
    arr = np.asarray(blue_on_cream).copy()
    arr[arr[..., 0] == 0] = (20, 40, 200)
    arr[arr[..., 0] == 255] = (250, 245, 225)
    coloured = mnist_like(Image.fromarray(arr))
    assert np.corrcoef(coloured.ravel(), dark_on_light.ravel())[0, 1] > 0.95


def test_transparent_background_with_dark_strokes():
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(100, 20), (100, 180)], fill=(0, 0, 0, 255), width=14)
    out = mnist_like(rgba)
    assert out.max() > 200 and out[0].max() == 0


def test_blank_image_gives_blank_digit():
    assert mnist_like(Image.new("L", (50, 50), 255)).max() == 0


def test_mnist_digit_survives_upscale_and_inversion(mnist):
    """A real test digit, enlarged 5x and inverted, comes back close to the original."""
    digit = mnist.x_test[0]
    big = Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC)
    back = mnist_like(big).astype(float)
    assert np.corrcoef(back.ravel(), digit.astype(float).ravel())[0, 1] > 0.9


def test_canvas_pixels_in_either_scale():
    grid = np.zeros((28, 28))
    grid[4:24, 12:16] = 1.0
    assert np.array_equal(preprocess_pixels(grid), preprocess_pixels(grid * 255))


def test_non_images_are_refused(tmp_path):
    (tmp_path / "notes.png").write_text("not really a png")
    with pytest.raises(TinyDigitsError, match="notes.png: not a readable image"):
        open_image(tmp_path / "notes.png")
    buf = io.BytesIO()
    Image.new("L", (40, 40)).save(buf, format="PNG")
    with pytest.raises(TinyDigitsError, match="not a readable image"):
        open_image(buf.getvalue()[:30])
    with pytest.raises(TinyDigitsError, match="file not found"):
        open_image(tmp_path / "missing.png")


def as_mode(gray: Image.Image, mode: str) -> Image.Image:
    """The same 8-bit gray drawing in another PIL mode, deep modes with realistic 16-bit/float levels."""
    a = np.asarray(gray).astype(np.float64) / 255
    if mode in ("I;16", "I;16B"):  # a 16-bit scan: paper near white, ink a dark gray, never 0 or 255
        return Image.frombytes(mode, gray.size, (6000 + a * 54000).astype("<u2" if mode == "I;16" else ">u2").tobytes())
    if mode == "I":
        return Image.fromarray((6000 + a * 54000).astype(np.int32))
    if mode == "F":
        return Image.fromarray((0.1 + a * 0.8).astype(np.float32))  # a float image in 0-1
    if mode in ("La", "RGBa"):
        return gray.convert(mode[:-1] + "A").convert(mode)
    return gray.convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
                                  "YCbCr", "LAB", "HSV", "I", "I;16", "I;16B", "F"])
def test_every_pil_mode_reads_like_8bit_gray(mode):
    reference = mnist_like(drawn_one())
    out = mnist_like(as_mode(drawn_one(), mode))
    assert out.max() > 200, f"{mode} read as blank"
    assert np.corrcoef(out.ravel().astype(float), reference.ravel().astype(float))[0, 1] > 0.98


@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("I;16", "TIFF"), ("I", "TIFF"), ("F", "TIFF"),
                                       ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("LAB", "TIFF"), ("1", "PNG"),
                                       ("LA", "PNG"), ("P", "GIF"), ("RGBA", "WEBP")])
def test_every_mode_through_its_file_format(mode, fmt):
    reference = mnist_like(drawn_one())
    buf = io.BytesIO()
    as_mode(drawn_one(), mode).save(buf, format=fmt)
    out = mnist_like(open_image(buf.getvalue()))
    assert np.corrcoef(out.ravel().astype(float), reference.ravel().astype(float))[0, 1] > 0.95


def test_16bit_png_with_a_transparent_key_is_not_blank():
    buf = io.BytesIO()
    as_mode(drawn_one(), "I;16").save(buf, format="PNG", transparency=65000)  # tRNS: a gray value that is absent
    assert mnist_like(open_image(buf.getvalue())).max() > 200


@pytest.mark.parametrize("image", [Image.new("L", (50, 50), 255), Image.new("I;16", (50, 50), 40000),
                                   Image.new("F", (50, 50), 0.5), Image.new("RGBA", (50, 50), (0, 0, 0, 0))])
def test_blank_images_are_recognised(image):
    from tinydigits.preprocess import is_blank

    assert is_blank(mnist_like(image)) and not is_blank(mnist_like(drawn_one()))
