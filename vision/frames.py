"""Opening a frame's bytes as an image, refusing what is not one or is too large."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from streams.codec import Rejected


def open_frame(data: bytes, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise Rejected("oversized", f"image of {width}x{height} pixels exceeds the {max_pixels}-pixel limit")
            image.load()
    except Rejected:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected("not_an_image", f"frame bytes are not a readable JPEG/PNG image: {exc}") from exc
    return image.convert("RGB")
