"""Every image as its user sees it, read the same way by training, evaluation, predict and the
served model: EXIF orientation applied, high bit depths scaled (not clipped), transparency laid
over white, oversized images refused before they are decoded.

Ships inside the registered model beside the pyfunc and beside the deploy loader, which runs
without torch: imports nothing of qdet, and torch only to return a tensor.
"""

from __future__ import annotations

import warnings
from typing import IO, TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

MAX_PIXELS = 40_000_000  # about 160 MB as float RGB: larger headers are refused before decoding

# Pillow modes whose samples go beyond 8 bits, with the full-scale value of each
_HIGH_BIT_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "I": 65535.0}


EXIF_ORIENTATION = 0x0112  # the tag ImageOps.exif_transpose reads


class ImageReadError(ValueError):
    """An image that cannot be read as displayed; the message says why (no path: callers add it)."""


def open_checked(source: str | IO[bytes], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image with its header read and its size checked, not yet decoded.

    Pillow's own bomb check only warns up to 2x its limit (silenced here: this check replaces
    it); anything above ``max_pixels`` is refused, so a small file that claims 100000x100000
    pixels never allocates them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"decompression bomb refused ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(f"not a readable image ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageReadError(
            f"{width}x{height} pixels ({width * height / 1e6:.0f} megapixels) is above the "
            f"limit of {max_pixels / 1e6:.0f} megapixels (decompression bomb or a scan too large to run)"
        )
    return image


def displayed_size(
    source: str | IO[bytes], max_pixels: int = MAX_PIXELS
) -> tuple[tuple[int, int], tuple[int, int]]:
    """((width, height) as displayed, (width, height) as stored): they differ when the EXIF
    orientation turns the image by 90 degrees. Decodes the pixels, so a truncated file fails here."""
    with open_checked(source, max_pixels) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageReadError(f"image cannot be decoded ({error})") from None
        stored = image.size
        turned = _orientation(image) in (5, 6, 7, 8)
    return ((stored[1], stored[0]) if turned else stored), stored


def _orientation(image: Image.Image) -> int:
    return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """HxWx3 as displayed: uint8 samples of an 8-bit image, float32 in [0, 1] of a deeper one (the
    image must be open and readable)."""
    if image.mode == "RGB" and "transparency" not in image.info and _orientation(image) == 1:
        return np.array(image, dtype=np.uint8)  # as stored: no transposed or converted copy
    image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_BIT_MODES or image.mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        if image.mode in _HIGH_BIT_MODES:  # 16-bit: convert("RGB") would clip every value above 255
            grey = grey / _HIGH_BIT_MODES[image.mode]
        elif grey.size and grey.max() > 1.0:  # float samples: [0, 1] as they are, else by their peak
            grey = grey / float(grey.max())
        return np.repeat(np.clip(grey, 0.0, 1.0)[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    ):  # transparent pixels as a viewer shows them: over white, not their hidden colour
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def decoded(source: str | IO[bytes], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file (path or binary stream) -> HxWx3 as displayed (:func:`to_rgb_array`)."""
    with open_checked(source, max_pixels) as image:
        try:
            return to_rgb_array(image)
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageReadError(f"image cannot be decoded ({error})") from None


def read_image(source: str | IO[bytes], max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """An image file (path or binary stream) -> 3xHxW float tensor in [0, 1], as displayed."""
    import torch  # here only: the deploy loader (qdet_deploy.py) reads images without torch

    tensor = torch.from_numpy(decoded(source, max_pixels)).permute(2, 0, 1)
    if tensor.dtype == torch.uint8:  # 8-bit samples: one pass to float, [0, 1], channels first
        return tensor.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    return tensor.contiguous()


def read_array(source: str | IO[bytes], max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`read_image` as numpy, the same values (float32 division by 255): for the deploy
    loader, which runs without torch."""
    array = np.ascontiguousarray(decoded(source, max_pixels).transpose(2, 0, 1))
    return array.astype(np.float32) / np.float32(255.0) if array.dtype == np.uint8 else array
