"""Opening a frame's bytes as an image, refusing what is not one or is too large."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from streams.codec import Rejected

FORMATS = ["JPEG", "PNG"]
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def open_frame(data: bytes, max_pixels: int) -> Image.Image:
    """The frame as an upright 8-bit RGB image. Only JPEG and PNG are decoded: no other Pillow decoder ever
    sees camera bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise Rejected("oversized", f"image of {width}x{height} pixels exceeds the {max_pixels}-pixel limit")
            image.load()
    except Rejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected("oversized", f"image exceeds the {max_pixels}-pixel limit: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Rejected("not_an_image", f"frame bytes are not a readable JPEG/PNG image: {exc}") from exc
    return ImageOps.exif_transpose(_eight_bit(image)).convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float images (thermal cameras) scaled to 0..255; Pillow's convert would clip them to white."""
    if image.mode not in _WIDE_MODES:
        return image
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    eight = Image.fromarray(scaled.round().astype(np.uint8))
    eight.info = image.info
    return eight
