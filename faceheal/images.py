"""Reading and writing photos without losing what an archive cares about.

All colour and bit-depth handling lives here. The rest of faceheal sees a `Picture`: the pixels as
stored (uint8 or uint16; gray, gray+alpha, RGB or RGBA), the format and the metadata needed to write
the file back the same way, plus helpers to get float RGB in [0, 1] for detection and the model.
Pillow does the metadata (EXIF, ICC, DPI, XMP, JPEG tables, TIFF compression); 16-bit colour, which
Pillow cannot hold, is decoded by OpenCV (PNG) or tifffile (TIFF). Writes go to a temporary file in
the same folder and are renamed into place, so no half-written image ever has the final name.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import cv2
import numpy as np
from PIL import Image, ImageFile

from faceheal.errors import OutputError, UnreadableImage

ImageFile.LOAD_TRUNCATED_IMAGES = False
# faceheal applies its own limit (`--max-pixels`, default one gigapixel): archives scan far beyond
# Pillow's built-in 89-megapixel warning
Image.MAX_IMAGE_PIXELS = None
DEFAULT_MAX_PIXELS = 1_000_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")
_FORMAT_BY_EXT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF",
                  ".bmp": "BMP", ".webp": "WEBP", ".gif": "GIF"}
# ITU-R BT.601 luma, the weights Pillow uses for RGB -> L: gray in, gray out, with no colour cast.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# EXIF orientation -> (operation to display, operation back to storage)
_ORIENT = {
    2: (lambda a: a[:, ::-1], lambda a: a[:, ::-1]),
    3: (lambda a: a[::-1, ::-1], lambda a: a[::-1, ::-1]),
    4: (lambda a: a[::-1], lambda a: a[::-1]),
    5: (lambda a: np.swapaxes(a, 0, 1), lambda a: np.swapaxes(a, 0, 1)),
    6: (lambda a: np.rot90(a, -1), lambda a: np.rot90(a, 1)),
    7: (lambda a: np.rot90(a, 1)[::-1], lambda a: np.rot90(a[::-1], -1)),
    8: (lambda a: np.rot90(a, 1), lambda a: np.rot90(a, -1)),
}


@dataclass
class StoredMode:
    """A file whose colour mode the model cannot take as it is (1-bit, palette, CMYK, LAB): its pixels in
    that mode, so that writing it back keeps every unchanged pixel exactly and converts only the
    repaired ones into the mode (bilevel by threshold, palette by the nearest of its own colours)."""

    mode: str  # Pillow mode: "1", "P", "CMYK" or "LAB"
    array: np.ndarray  # (H, W) bool for "1", (H, W) palette indices for "P", (H, W, 4|3) for CMYK/LAB
    palette: np.ndarray | None = None  # (N, 3) uint8 RGB entries of a palette
    palette_bytes: tuple[str, bytes] | None = None  # (rawmode, data) to put the palette back as it was


@dataclass
class Picture:
    """A decoded photo.

    pixels: stored pixels, (H, W) or (H, W, C) with C in {2, 3, 4} (gray+alpha, RGB, RGBA), uint8/uint16.
    format: Pillow format name (JPEG, PNG, TIFF, BMP, WEBP, GIF); info: metadata to write back.
    orientation: EXIF orientation (1 = none); `display()` applies it, `store()` undoes it.
    stored: the file's own mode when `pixels` are a conversion of it (see StoredMode).
    frames: pages or animation frames in the file; only the first is decoded, and a file of several is
    never written back changed (it would lose the others): it is copied when nothing changes, else refused.
    """

    pixels: np.ndarray
    format: str
    info: dict = field(default_factory=dict)
    orientation: int = 1
    stored: StoredMode | None = None
    frames: int = 1
    jpeg_bytes: bytes | None = None  # a JPEG's own file: repairs replace its blocks, not the whole file

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2 or self.pixels.shape[2] == 2

    def display(self, array: np.ndarray | None = None) -> np.ndarray:
        """Pixels (or a same-shaped array) as a viewer shows them, EXIF orientation applied."""
        a = self.pixels if array is None else array
        op = _ORIENT.get(self.orientation)
        return np.ascontiguousarray(op[0](a)) if op else a

    def store(self, array: np.ndarray) -> np.ndarray:
        """Inverse of `display`: back to the stored orientation."""
        op = _ORIENT.get(self.orientation)
        return np.ascontiguousarray(op[1](array)) if op else array


def to_float_rgb(pixels: np.ndarray) -> np.ndarray:
    """Stored pixels -> (H, W, 3) float32 RGB in [0, 1] (gray repeated, alpha dropped)."""
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    colour = pixels[..., :1] if pixels.shape[2] in (1, 2) else pixels[..., :3]
    rgb = colour.astype(np.float32) / scale
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb


def as_float_rgb(pixels: np.ndarray) -> np.ndarray:
    """`pixels` as (H, W, 3) float32 RGB in [0, 1]: float RGB as it is (no copy), stored pixels
    (uint8/uint16, gray or colour) converted by `to_float_rgb`; for code given either."""
    if pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    return to_float_rgb(pixels)


def to_rgb8(pixels: np.ndarray, rows: int = 1024) -> np.ndarray:
    """Stored pixels -> (H, W, 3) uint8 RGB (detector input, overlays), in integer arithmetic and in
    blocks of rows: a 100-megapixel scan never gets a float copy (1.2 GB) just to be looked at."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    colour = pixels[..., :1] if pixels.shape[2] in (1, 2) else pixels[..., :3]
    out = np.empty(colour.shape[:2] + (3,), np.uint8)
    for y in range(0, colour.shape[0], rows):
        block = colour[y:y + rows]
        if block.dtype != np.uint8:  # 16-bit: round(v * 255 / 65535), exactly
            block = ((block.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        out[y:y + rows] = block  # a gray channel broadcasts to all three
    return out


def from_float_rgb(rgb: np.ndarray, like: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Quantise float RGB back into a copy of `like` (stored pixels), only where `where` is True.

    Gray pictures take the luma of the restored RGB; alpha is kept as it was. Pixels outside `where`
    are the original values bit for bit.
    """
    out = like.copy()
    if not where.any():
        return out
    scale = 65535.0 if like.dtype == np.uint16 else 255.0
    vals = rgb[where]  # (N, 3)
    if like.ndim == 2 or like.shape[2] in (1, 2):
        vals = (vals @ LUMA)[:, None]
    q = np.clip(np.rint(vals * scale), 0, scale).astype(like.dtype)
    if like.ndim == 2:
        out[where] = q[:, 0]
    else:
        out[where, : q.shape[1]] = q
    return out


MONOCHROME_TOLERANCE = 0.025  # see monotone_tone


def monotone_tone(rgb: np.ndarray, known: np.ndarray | None = None, bins: int = 32,
                  tolerance: float = MONOCHROME_TOLERANCE) -> np.ndarray | None:
    """The tone curve of a monochrome print (gray, sepia, cyanotype...): (bins, 3) mean RGB per luma
    bin, or None when the photo has real colour. Repairs are re-toned through it (`apply_tone`), so a
    sepia print gets sepia repairs, not the model's idea of skin colour.

    A print is monochrome when its colour is a function of its brightness: the 95th percentile of the
    chroma left after subtracting the mean chroma at each luma is under `tolerance`. Measured
    (benchmarks/monochrome.py): gray, sepia and toned prints score 0.000-0.021, colour faces 0.043 and up
    (CelebA-HQ 0.05+); a heavily stained sepia print (0.048) is then taken for colour, the cheap mistake
    (its repairs keep the model's colours), never the reverse (grey-blue skin on a colour photo)."""
    pix = rgb[known] if known is not None else rgb.reshape(-1, 3)
    if len(pix) > 200_000:
        pix = pix[:: len(pix) // 200_000]
    luma = pix @ LUMA
    pix, luma = pix[(luma > 0.08) & (luma < 0.92)], luma[(luma > 0.08) & (luma < 0.92)]  # clipped tones carry no hue
    if len(pix) < 100:
        return None
    idx = np.clip((luma * bins).astype(int), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    lut = np.stack([np.bincount(idx, weights=pix[:, c], minlength=bins) for c in range(3)], 1)
    filled = counts > 0
    lut[filled] /= counts[filled, None]
    centres = (np.arange(bins) + 0.5) / bins
    for c in range(3):
        lut[:, c] = np.interp(centres, centres[filled], lut[filled, c])
    chroma = pix - luma[:, None]
    residual = np.linalg.norm(chroma - (lut - (lut @ LUMA)[:, None])[idx], axis=1)
    return lut.astype(np.float32) if np.percentile(residual, 95) < tolerance else None


def apply_tone(lut: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Give (..., 3) RGB the print's colour at its own brightness: the repair's luma is kept, only its
    chroma is replaced by the tone curve's (from `monotone_tone`) at that luma."""
    bins = len(lut)
    centres = (np.arange(bins) + 0.5) / bins
    luma = rgb @ LUMA
    offset = lut - (lut @ LUMA)[:, None]  # the curve's chroma per luma bin
    toned = luma[..., None] + np.stack([np.interp(luma, centres, offset[:, c]) for c in range(3)], -1)
    return np.clip(toned, 0, 1).astype(np.float32)


def _sniff_format(img: Image.Image, path: Path) -> str:
    return img.format or _FORMAT_BY_EXT.get(path.suffix.lower(), "PNG")


def _lab_transform(to_rgb: bool):
    from PIL import ImageCms

    lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
    if to_rgb:
        return ImageCms.buildTransformFromOpenProfiles(lab, srgb, "LAB", "RGB")
    return ImageCms.buildTransformFromOpenProfiles(srgb, lab, "RGB", "LAB")


def _writable(img: Image.Image, band_bytes: int = 16 << 20) -> np.ndarray:
    """Pillow's pixels in a writable array of their own (restore repairs them in place; the array
    Pillow hands out is read-only), copied in bands of rows: never Pillow's image and two whole copies."""
    w, h = img.size
    row = np.asarray(img.crop((0, 0, w, 1)))
    rows = max(1, band_bytes // max(row.nbytes, 1))
    out = np.empty((h,) + row.shape[1:], row.dtype)
    for y in range(0, h, rows):
        out[y:y + rows] = np.asarray(img.crop((0, y, w, min(h, y + rows))))
    return out


def _pillow_pixels(img: Image.Image) -> tuple[np.ndarray, StoredMode | None]:
    """Pixels for the model and, for modes it cannot take as they are, the file's own (StoredMode)."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA", "LA"):
        return _writable(img), None
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16), None
    if mode == "I":
        arr = np.asarray(img)
        if arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), None
        raise UnreadableImage("32-bit integer images are not supported")
    if mode == "1":
        return _writable(img.convert("L")), StoredMode("1", np.asarray(img).copy())
    if mode == "P":
        rawmode, data = img.palette.getdata()
        rgb = img.convert("RGBA" if "transparency" in img.info else "RGB")
        palette = np.asarray(img.getpalette("RGB") or [0, 0, 0], np.uint8).reshape(-1, 3)
        return _writable(rgb), StoredMode("P", np.asarray(img).copy(), palette, (rawmode, data))
    if mode == "CMYK":
        return _writable(img.convert("RGB")), StoredMode("CMYK", np.asarray(img).copy())
    if mode == "LAB":
        from PIL import ImageCms

        return _writable(ImageCms.applyTransform(img, _lab_transform(True))), StoredMode("LAB", np.asarray(img).copy())
    raise UnreadableImage(f"unsupported colour mode {mode}")


_BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32)


def descreened(picture: Picture, display: np.ndarray) -> np.ndarray:
    """What faces and damage are looked for in: a bilevel (1-bit) photo's dither or halftone smoothed
    into grays first, or every dot would look like a speck of dust; other photos as they are."""
    if picture.stored is None or picture.stored.mode != "1":
        return display
    # and kept off pure white: on a bilevel print white is the paper, not paint (the detectors take
    # exactly white strokes for painted-over damage)
    return np.clip(cv2.GaussianBlur(display, (0, 0), 1.5), 1, 254)


def _changed(picture: Picture, pixels: np.ndarray, changed: np.ndarray | None) -> np.ndarray:
    """(H, W) bool: where `pixels` differ from the file as decoded: given, or against `picture.pixels`,
    which is right only while those still hold the decoded file (restore repairs them in place, so it
    always passes `changed`; without it a palette or JPEG output would silently drop the repairs)."""
    if changed is not None:
        return changed
    d = pixels != picture.pixels
    return d.any(-1) if d.ndim == 3 else d


def _into_stored_mode(stored: StoredMode, changed: np.ndarray, pixels: np.ndarray) -> Image.Image:
    """The file's own mode back: unchanged pixels exactly as stored, changed ones converted."""
    arr = stored.array.copy()
    if changed.any():
        new = pixels[changed]
        if stored.mode == "1":  # ordered (Bayer) dither: a bilevel print's repair is dithered like its grays
            ys, xs = np.nonzero(changed)
            gray = (new if new.ndim == 1 else new[:, 0]).astype(np.float32)
            arr[changed] = gray > (_BAYER4[ys % 4, xs % 4] + 0.5) * 16
        elif stored.mode == "P":
            rgb = new[:, :3].astype(np.int32)
            d = ((rgb[:, None, :] - stored.palette[None, :, :].astype(np.int32)) ** 2).sum(-1)
            arr[changed] = d.argmin(1).astype(arr.dtype)
        elif stored.mode == "CMYK":
            arr[changed] = np.asarray(Image.fromarray(np.ascontiguousarray(new[None, :, :3])).convert("CMYK"))[0]
        elif stored.mode == "LAB":
            from PIL import ImageCms

            patch = Image.fromarray(np.ascontiguousarray(new[None, :, :3]))
            arr[changed] = np.asarray(ImageCms.applyTransform(patch, _lab_transform(False)))[0]
    img = Image.fromarray(arr, stored.mode) if stored.mode != "1" else Image.fromarray(arr)
    if stored.mode == "P" and stored.palette_bytes is not None:
        img.putpalette(stored.palette_bytes[1], stored.palette_bytes[0])
    return img


def _tiff_metadata_exif(exif: Image.Exif) -> bytes:
    """The descriptive tags of a TIFF (orientation, make, model, dates, artist, copyright, EXIF and GPS
    sub-IFDs) as EXIF bytes for Pillow's TIFF writer; structural tags are the writer's business."""
    keep = Image.Exif()
    for tag in (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298, 700, 33723):  # ... XMP, IPTC
        if tag in exif:
            keep[tag] = exif[tag]
    for ifd in (0x8769, 0x8825):
        sub = exif.get_ifd(ifd)
        if sub:
            keep.get_ifd(ifd).update(sub)
    return keep.tobytes()


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


def _decode_direct(data: bytes, fmt: str) -> np.ndarray | None:
    """Pixels Pillow cannot give as stored: 16-bit colour (Pillow truncates it to 8 bits) and TIFFs
    in their stored orientation (Pillow rotates TIFFs on load). None: let Pillow decode."""
    if fmt == "PNG":
        if len(data) > 25 and data[24] == 16 and data[25] in (2, 6):  # IHDR bit depth, colour type
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if arr is None:
                raise UnreadableImage("corrupt 16-bit PNG")
            return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        return None
    if fmt == "TIFF":
        # the stream closed by us: tifffile leaves a stream it was given open, and its pages' cycles
        # would keep the file's bytes alive until the garbage collector runs
        with io.BytesIO(data) as stream:
            return _decode_tiff(stream)
    return None


def _decode_tiff(source) -> np.ndarray | None:
    """A TIFF's first page as stored (orientation, depth), from a path or a stream; None: Pillow's."""
    import tifffile

    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        if page.bitspersample in (8, 16) and page.photometric in (0, 1, 2) and page.planarconfig == 1:
            arr = page.asarray(buffersize=32 << 20)  # stored orientation, any depth; read 32 MB at a time (not 256)
            if page.photometric == 0:  # min-is-white
                arr = np.iinfo(arr.dtype).max - arr
            return arr
    return None


def _pillow_error(e: Exception) -> UnreadableImage:
    """Pillow raises many types for bad data: one clear message for each kind of trouble."""
    if isinstance(e, Image.DecompressionBombError):
        return UnreadableImage(f"refused as a decompression bomb ({e})")
    msg = str(e) or type(e).__name__
    if "cannot identify image file" in msg:
        msg = "not an image (or an unsupported format)"
    elif "truncated" in msg or "broken data stream" in msg:
        msg = "truncated or corrupt image data"
    return UnreadableImage(msg)


_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def c_library_quiet(active: bool = True):
    """libtiff and libjpeg write their warnings about odd files ("TIFFFetchNormalTag: ... custom tag",
    "Read error on strip", "Caution: quantization tables are too coarse") straight to the process's
    stderr from C, where Python cannot filter them: hundreds of lines on a folder of archival TIFFs,
    burying faceheal's one line per file. So while such a library works,
    file descriptor 2 goes to a temporary file; afterwards every line of it that is faceheal's own
    (another thread may have written one meanwhile) is written back, and libtiff's are dropped: a file
    the library cannot read still gets its one faceheal error line."""
    if not active:
        yield
        return
    with _FD2_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable stderr: nothing to keep clean
            yield
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if line.startswith("faceheal")]
                if kept:
                    sys.stderr.write("".join(kept))


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> Picture:
    """Decode a photo, keeping bit depth, mode and metadata; raise `UnreadableImage` with the cause."""
    opened: list[Image.Image] = []
    try:
        return _read_image(Path(path), max_pixels, opened)
    finally:  # PIL's image and its EXIF hold each other: closed, the file (a TIFF is read from it) and
        for img in opened:  # its bytes go now, not when the garbage collector runs
            img.close()


def _read_image(path: Path, max_pixels: int | None, opened: list) -> Picture:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        # a TIFF (often the huge scan) is decoded from the file itself: its bytes never sit in memory
        # beside its pixels; other formats are read whole (JPEG keeps them for block splicing)
        data = None if head in _TIFF_MAGIC else path.read_bytes()
    except IsADirectoryError:
        raise UnreadableImage("is a directory") from None
    except OSError as e:
        raise UnreadableImage(e.strerror or str(e)) from None
    if not head:
        raise UnreadableImage("empty file")
    try:
        img = Image.open(path if data is None else io.BytesIO(data))
        opened.append(img)
        if max_pixels and img.width * img.height > max_pixels:
            raise UnreadableImage(f"{img.width}x{img.height} is over --max-pixels {max_pixels}")
        fmt = _sniff_format(img, path)
        png_rawmode = getattr(getattr(img, "png", None), "im_rawmode", None)  # gone once loaded (getexif loads a PNG)
        # read before load(): Pillow rotates TIFFs on load and then drops their orientation tag
        exif = img.getexif()
        orientation = int(exif.get(0x0112, 1) or 1)
        tiff_exif = _tiff_metadata_exif(exif) if fmt == "TIFF" else None
        if fmt != "TIFF":  # TIFF pixels come from tifffile when it can (below): not decoded twice
            img.load()
    except UnreadableImage:
        raise
    except Exception as e:
        raise _pillow_error(e) from None
    info = {k: img.info[k] for k in ("icc_profile", "exif", "dpi", "xmp", "compression", "transparency", "progressive")
            if k in img.info}
    if fmt == "JPEG":
        info["quantization"] = getattr(img, "quantization", None)
        try:
            from PIL import JpegImagePlugin
            info["subsampling"] = JpegImagePlugin.get_sampling(img)
        except Exception:
            pass
    if tiff_exif is not None:
        info["exif"] = tiff_exif
    if png_rawmode in ("L;2", "L;4"):  # 2- and 4-bit gray: written back at that depth
        info["png_bits"] = int(png_rawmode[2:])
    if data is None and fmt != "TIFF":  # TIFF's magic, but Pillow read it as something else
        data = path.read_bytes()
    pixels = None
    try:
        pixels = _decode_tiff(path) if data is None else _decode_direct(data, fmt)
    except UnreadableImage:
        raise
    except Exception as e:
        raise UnreadableImage(f"corrupt {fmt} data ({e})") from None
    stored = None
    if pixels is None:
        try:
            with c_library_quiet(fmt == "TIFF"):
                img.load()
        except Exception as e:
            raise _pillow_error(e) from None
        pixels, stored = _pillow_pixels(img)
    frames = int(getattr(img, "n_frames", 1) or 1)
    return Picture(pixels=np.ascontiguousarray(pixels), format=fmt, info=info,
                   orientation=orientation if orientation in _ORIENT else 1, stored=stored,
                   frames=frames, jpeg_bytes=data if fmt == "JPEG" else None)


def encode_image(picture: Picture, pixels: np.ndarray, jpeg_quality: int | None = None,
                 changed: np.ndarray | None = None) -> bytes:
    """Encode `pixels` (stored orientation, same dtype/shape as the picture) like the original file.
    `changed` ((H, W) bool, stored orientation): the pixels that differ from the file as decoded, where
    `picture.pixels` no longer holds them (restore repairs in place); default: `pixels != picture.pixels`."""
    buf = io.BytesIO()
    encode_into(buf, picture, pixels, jpeg_quality, changed)
    return buf.getvalue()


def encode_into(out: BinaryIO, picture: Picture, pixels: np.ndarray, jpeg_quality: int | None = None,
                changed: np.ndarray | None = None) -> None:
    """`encode_image` written straight into a seekable binary file: a 100-megapixel scan's encoding is
    never held in memory as well (a retry starts the file again)."""
    fmt = picture.format
    info = picture.info
    if picture.frames > 1:
        raise OutputError(f"{picture.frames} frames (a multi-page or animated file): faceheal restores single "
                          f"images and would drop the others, so this file was not restored (split its frames first)")
    if pixels.dtype == np.uint16 and pixels.ndim == 3 and pixels.shape[2] >= 3:
        if fmt == "TIFF":
            import tifffile

            comp = {"tiff_lzw": "lzw", "tiff_adobe_deflate": "zlib", "tiff_deflate": "zlib"}.get(info.get("compression"))
            extratags = [(34675, 7, len(info["icc_profile"]), info["icc_profile"], True)] if info.get("icc_profile") else []
            if picture.orientation != 1:
                extratags.append((274, "H", 1, picture.orientation, True))
            kw = {"resolution": tuple(info["dpi"]), "resolutionunit": 2} if info.get("dpi") else {}
            tifffile.imwrite(out, pixels, photometric="rgb", compression=comp, extratags=extratags, **kw)
            return
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
        ok, enc = cv2.imencode(".png", bgr)
        if not ok:
            raise OutputError("could not encode 16-bit PNG")
        out.write(enc.data)
        return
    if picture.stored is not None:
        img = _into_stored_mode(picture.stored, _changed(picture, pixels, changed), pixels)
    elif pixels.dtype == np.uint16:
        img = Image.fromarray(np.ascontiguousarray(pixels if pixels.ndim == 2 else pixels[..., 0]))  # I;16
    else:
        img = Image.fromarray(pixels)
    kw: dict = {}
    for key in ("icc_profile", "dpi", "exif"):
        if info.get(key):
            kw[key] = info[key]
    if fmt in ("JPEG", "WEBP") and info.get("xmp"):
        kw["xmp"] = info["xmp"] if isinstance(info["xmp"], bytes) else str(info["xmp"]).encode()
    if fmt == "JPEG":
        if jpeg_quality:
            kw["quality"] = int(jpeg_quality)
        elif info.get("quantization"):
            kw["qtables"] = info["quantization"]
        if info.get("subsampling", -1) not in (-1, None):
            kw["subsampling"] = info["subsampling"]
    elif fmt == "TIFF":
        if info.get("compression") and info["compression"] != "raw":
            # JPEG inside a TIFF would be re-encoded whole, changing pixels far from any repair: such a
            # file is written with lossless deflate instead, so only the repaired pixels differ
            lossy = info["compression"] in ("jpeg", "tiff_jpeg")
            kw["compression"] = "tiff_adobe_deflate" if lossy else info["compression"]
    elif fmt == "PNG":
        if info.get("xmp"):
            from PIL import PngImagePlugin
            meta = PngImagePlugin.PngInfo()
            xmp = info["xmp"]
            meta.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp)
            kw["pnginfo"] = meta
        if "transparency" in info and img.mode in ("L", "RGB", "P"):
            kw["transparency"] = info["transparency"]
        if info.get("png_bits") and img.mode == "L":
            # repaired pixels onto the file's own 4 or 16 gray levels (the others are on them already)
            step = 255 / (2 ** info["png_bits"] - 1)
            img = Image.fromarray((np.round(np.asarray(img) / step) * step + 0.5).astype(np.uint8))
            kw["bits"] = info["png_bits"]
    elif fmt == "WEBP":
        kw["lossless"] = True
    if fmt == "JPEG" and info.get("progressive"):
        kw["progressive"] = True
    attempts = [kw]
    if fmt == "TIFF":  # e.g. WebP-compressed TIFFs, tags libtiff refuses: lossless deflate, then without those tags
        attempts += [{**kw, "compression": "tiff_adobe_deflate"},
                     {**{k: v for k, v in kw.items() if k != "exif"}, "compression": "tiff_adobe_deflate"}]
    repair_jpeg = fmt == "JPEG" and picture.jpeg_bytes is not None
    dest = io.BytesIO() if repair_jpeg else out  # a JPEG is spliced with its original's blocks first
    start = dest.tell()
    for i, options in enumerate(attempts):
        try:
            with c_library_quiet(fmt in ("TIFF", "JPEG")):
                # a retry saves a copy: Pillow merges each save's options into the image's own
                (img.copy() if i else img).save(dest, format=fmt, **options)
            break
        except Exception as e:  # Pillow raises many types here
            if i == len(attempts) - 1:
                raise OutputError(f"cannot write this {fmt} back ({type(e).__name__}: {e})") from None
            dest.seek(start)
            dest.truncate()
    if repair_jpeg:
        with c_library_quiet():
            out.write(_as_jpeg_repair(picture, pixels, dest.getvalue(), not jpeg_quality, changed))


def _as_jpeg_repair(picture: Picture, pixels: np.ndarray, encoded: bytes, same_tables: bool,
                    changed: np.ndarray | None) -> bytes:
    """A repaired JPEG: the original's blocks wherever no pixel changed, and all its markers
    (faceheal/jpeg_blocks.py). With --jpeg-quality the tables differ and the whole file is re-encoded."""
    from faceheal import jpeg_blocks

    try:
        if same_tables and picture.stored is None:
            spliced = jpeg_blocks.splice(picture.jpeg_bytes, encoded, _changed(picture, pixels, changed))
            if spliced is not None:
                return spliced
        return jpeg_blocks.with_markers_of(picture.jpeg_bytes, encoded)
    except (ValueError, OSError):  # an odd file jpeglib cannot take: Pillow's encode as it is
        return encoded
    except ImportError:  # jpeglib missing (a bare environment; it is a declared dependency): whole re-encode
        return jpeg_blocks.with_markers_of(picture.jpeg_bytes, encoded)


def _default_mode() -> int:
    """What a new file gets under this process's umask (read once: changing the umask is not thread-safe)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


DEFAULT_FILE_MODE = _default_mode()


def mode_of(path: str | os.PathLike) -> int | None:
    """The permission bits of an existing file (an output takes its input's), or None."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return None


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None], mode: int | None = None) -> None:
    """Write bytes to `path` through a temp file + rename; on failure nothing appears under `path`.
    `data` may instead be a function that writes into the open temp file (an encoder, so a huge image's
    encoding is not held in memory). The file gets `mode` (an input's permission bits), else what the
    umask gives a new file, never the temp file's private 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write to {path.parent}: {e.strerror or e}") from None
    try:
        # opened by name too (encoders such as tifffile want a file that has one), while still the
        # private 0600 file mkstemp made, and checked to be that very file; the output's mode (which may
        # be read-only, as archival masters often are) is set only once it is written
        with open(tmp, "r+b") as f:
            if not os.path.sameopenfile(f.fileno(), fd):
                raise OSError(f"{tmp} was replaced while being written")
            os.close(fd)
            fd = -1
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), DEFAULT_FILE_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as e:  # an encoder's error too: no temp file is left behind
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """An 8-bit mask, overlay or layout (gray, or RGB) as a PNG, atomically: the one way faceheal writes
    its own pictures."""
    arr = np.ascontiguousarray(pixels[..., ::-1] if pixels.ndim == 3 else pixels)
    ok, enc = cv2.imencode(".png", arr)
    if not ok:
        raise OutputError(f"could not encode {path}")
    write_atomic(path, enc.tobytes())


def write_image(path: str | os.PathLike, picture: Picture, pixels: np.ndarray, jpeg_quality: int | None = None,
                mode: int | None = None) -> None:
    write_atomic(path, lambda f: encode_into(f, picture, pixels, jpeg_quality), mode)
