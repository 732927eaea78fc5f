"""Images are read as a viewer shows them, by every reader of the project alike."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from qdet.data.dataset import load_image
from qdet.data.raw import image_size, parse_voc
from qdet.data.records import Report
from qdet.serving.image_input import EXIF_ORIENTATION, ImageReadError, displayed_size, read_image


def _jpeg_turned(path, orientation: int = 6) -> None:
    """A 60x40 JPEG stored sideways with a bright top-left corner as stored."""
    array = np.zeros((40, 60, 3), np.uint8)
    array[:10, :10] = 255
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(array).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_by_every_reader(tmp_path):
    path = tmp_path / "turned.jpg"
    _jpeg_turned(path)
    image = read_image(str(path))
    assert image.shape == (3, 60, 40)  # orientation 6: turned 90 degrees clockwise for display
    assert image[:, :10, -10:].mean() > 0.9 and image[:, :10, :10].mean() < 0.1
    assert torch.equal(load_image(path), image)  # training and evaluation read the same pixels
    assert displayed_size(str(path)) == ((40, 60), (60, 40))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    image = read_image(str(path))
    assert image.shape == (3, 4, 4)
    assert np.allclose(image[0, 0].numpy(), values[0] / 65535.0, atol=1e-4)
    assert image.std() > 0.3  # convert("RGB") would have made it all white


def test_transparency_is_laid_over_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # hidden red under fully transparent pixels
    rgba[:4, :, 3] = 255  # top half opaque red
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(str(path))
    assert torch.allclose(image[:, 6, 0], torch.ones(3))  # transparent: white, as displayed
    assert image[0, 0, 0] == pytest.approx(200 / 255) and image[1, 0, 0] == 0
    palette = Image.fromarray(rgba[..., :3]).convert("P")
    palette.info["transparency"] = palette.getpixel((0, 6))
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=palette.getpixel((0, 6)))
    assert torch.allclose(read_image(io.BytesIO(buffer.getvalue()))[:, 6, 0], torch.ones(3))


def test_a_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # a small file claiming 144 megapixels
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageReadError, match=r"\(144 megapixels\) is above the limit of 40"):
        read_image(str(path))
    with pytest.raises(ImageReadError, match="above the limit of 1 megapixels"):
        read_image(str(path), max_pixels=1_000_000)
    report = Report()
    assert image_size(path, report) is None and "144 megapixels" in report.skipped[0]


def test_truncated_and_foreign_files_are_one_reason(tmp_path):
    path = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cannot be decoded|not a readable image"):
        read_image(str(path))
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ImageReadError, match="not a readable image"):
        read_image(str(tmp_path / "text.png"))


def _voc(root, name: str, size: tuple[int, int], classes: list[str]) -> None:
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>{c}</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax>"
        "</bndbox></object>"
        for c in classes
    )
    (root / "Annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.jpg</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height></size>{objects}</annotation>"
    )


def test_voc_image_labelled_upright_keeps_its_boxes_and_sideways_is_skipped(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    _jpeg_turned(root / "JPEGImages" / "upright.jpg")
    _jpeg_turned(root / "JPEGImages" / "sideways.jpg")
    _voc(root, "upright", (40, 60), ["sign"])  # labelled as displayed
    _voc(root, "sideways", (60, 40), ["sign"])  # labelled on the stored pixels
    report = Report()
    records = parse_voc(root, 2.0, report)
    assert [(r.file_name, r.width, r.height, len(r.boxes)) for r in records] == [("upright.jpg", 40, 60, 1)]
    assert "sideways.jpg" in report.skipped[0] and "EXIF orientation" in report.skipped[0]


def test_class_names_differing_in_case_or_spaces_are_reported(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(root / "JPEGImages" / "a.jpg")
    _voc(root, "a", (40, 40), ["Stop", "stop", "yield", "give  way", "give way"])
    report = Report()
    parse_voc(root, 2.0, report)
    found = [w for w in report.warnings if "differ only in case or spaces" in w]
    assert len(found) == 2, report.warnings
    assert "'Stop'" in found[0] + found[1] and "'give  way'" in found[0] + found[1]
    assert not any("yield" in w for w in found)


def test_eight_bit_images_read_bit_for_bit_as_float_samples_over_255(tmp_path):
    """The fast path (an RGB image without orientation or transparency: no transposed or converted
    copy, one pass to float) gives exactly what converting to RGB and dividing by 255 gives."""
    import warnings

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    files = {"rgb.ppm": Image.fromarray(pixels), "rgb.jpg": Image.fromarray(pixels)}
    files |= {
        "grey.png": Image.fromarray(pixels[:, :, 0]),
        "palette.png": Image.fromarray(pixels).convert("P"),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
        with Image.open(tmp_path / name) as opened:
            expected = np.asarray(opened.convert("RGB"), dtype=np.float32) / 255.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. torch's warning about a read-only array
            tensor = read_image(tmp_path / name)
        assert tensor.dtype == torch.float32 and tensor.is_contiguous()
        assert torch.equal(tensor, torch.from_numpy(expected).permute(2, 0, 1)), name
