"""mskx for Python: the mskx C library (libmskx.so) through ctypes.

    import mskx
    model = mskx.Model("model.safetensors", threads=4)
    result = model.predict(["study/image1.png", "study/image2.png"], cam=True)
    result["probability"], result["decision"], result["images"][0]["cam"]

Inputs of one study (one call) are all of one kind: image file paths (str or
os.PathLike), encoded PNG/JPEG bytes (bytes or bytearray), or pixel arrays:
any buffer (a numpy array, or memoryview(data).cast("B", (h, w))) of shape
(H, W), (H, W, 1) or (H, W, 3) with 8-bit ("B", numpy uint8) or 16-bit ("H",
numpy uint16, native byte order) samples. RGB is reduced to grey with BT.601
luma and 16-bit samples to 8 bits exactly as mskx decodes PNG files.

Errors the library reports are raised as mskx.Error with the library's
message (.message) and status code (.code, .status). numpy is optional: with
it, class activation maps are float32 arrays of shape (H, W); without it they
are array.array("f") of H*W values, row-major.

Threads: the library computes without the GIL (ctypes releases it during every
foreign call), and one Model may be used from several threads at once; it
keeps up to max_contexts prediction contexts (each a copy of the network) and
further calls wait for a free one. Results are bit-identical to sequential
calls. Do not close a model while another thread predicts with it.

The library is found, in order, at $MSKX_LIBRARY, next to this package
(libmskx.so*), or by the system loader (libmskx.so.0.1, then libmskx.so).
"""
import array
import ctypes as C
import glob
import json
import os
import sys

__all__ = ["Model", "Error", "library_version", "ABI_VERSION"]

# The SONAME's version: any 0.x release may change the ABI, so the binding
# accepts exactly the major.minor it was written for.
ABI_VERSION = "0.1"

class Error(Exception):
    """An error reported by libmskx: .code (MSKX_E* value), .status (its name), .message."""

    def __init__(self, code, message, status):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self):
        return "%s (%s)" % (self.message, self.status)


class _Err(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * 1024)]


class _LoadOptions(C.Structure):
    _fields_ = [("threads", C.c_int), ("precision", C.c_int), ("max_batch", C.c_int), ("max_contexts", C.c_int),
                ("max_pixels", C.c_ulonglong), ("max_decode_bytes", C.c_ulonglong), ("decode_wait_ms", C.c_int),
                ("dicom_window", C.c_char_p), ("dicom_first_frame", C.c_int)]


class _Info(C.Structure):
    _fields_ = [("kind", C.c_int), ("kind_name", C.c_char_p), ("path", C.c_char_p), ("arch", C.c_char_p),
                ("size", C.c_int), ("parts", C.c_char_p), ("threshold", C.c_double), ("n_members", C.c_int),
                ("method", C.c_char_p), ("metadata_json", C.c_char_p), ("precision", C.c_char_p)]


class _PredictOptions(C.Structure):
    _fields_ = [("agg", C.c_int), ("tta_flip", C.c_int), ("want_cam", C.c_int), ("want_overlay", C.c_int),
                ("overlay_alpha", C.c_float), ("want_image", C.c_int)]


class _Encoded(C.Structure):
    _fields_ = [("bytes", C.c_void_p), ("len", C.c_size_t), ("name", C.c_char_p)]


class _Pixels(C.Structure):
    _fields_ = [("pixels", C.c_void_p), ("width", C.c_int), ("height", C.c_int), ("channels", C.c_int),
                ("stride", C.c_int), ("name", C.c_char_p), ("bits_per_sample", C.c_int)]


class _ImageResult(C.Structure):
    _fields_ = [("name", C.c_char_p), ("width", C.c_int), ("height", C.c_int), ("probability", C.c_double),
                ("cam_width", C.c_int), ("cam_height", C.c_int), ("cam", C.POINTER(C.c_float)), ("overlay_png", C.POINTER(C.c_ubyte)), ("overlay_png_len", C.c_size_t),
                ("image_png", C.POINTER(C.c_ubyte)), ("image_png_len", C.c_size_t)]


class _Result(C.Structure):
    _fields_ = [("probability", C.c_double), ("abnormal", C.c_int), ("threshold", C.c_double),
                ("part", C.c_char * 32), ("model_used", C.c_char_p), ("n_images", C.c_int),
                ("images", C.POINTER(_ImageResult)), ("n_members", C.c_int),
                ("member_probabilities", C.POINTER(C.c_double)), ("study_uid", C.c_char * 65),
                ("part_from_dicom", C.c_int)]


def _candidates():
    env = os.environ.get("MSKX_LIBRARY")
    if env:
        return [env]  # an explicit choice is not second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    local = sorted(glob.glob(os.path.join(here, "libmskx.so*")), key=len)
    return local + ["libmskx.so." + ABI_VERSION, "libmskx.so"]


def _load_library():
    tried = []
    for name in _candidates():
        try:
            lib = C.CDLL(name)  # CDLL (not PyDLL): the GIL is released during calls
        except OSError as ex:
            tried.append("%s (%s)" % (name, ex))
            continue
        lib.mskx_version.restype = C.c_char_p
        got = lib.mskx_version().decode()
        if ".".join(got.split(".")[:2]) != ABI_VERSION:
            raise ImportError("mskx: %s is libmskx %s; this binding needs %s.x" % (name, got, ABI_VERSION))
        return lib
    raise ImportError("mskx: cannot load libmskx (set MSKX_LIBRARY to its path); tried: " + "; ".join(tried))


_lib = _load_library()
_P = C.POINTER
_lib.mskx_status_name.restype = C.c_char_p
_lib.mskx_status_name.argtypes = [C.c_int]
_lib.mskx_model_load.argtypes = [C.c_char_p, _P(_LoadOptions), _P(C.c_void_p), _P(_Err)]
_lib.mskx_model_free.argtypes = [C.c_void_p]
_lib.mskx_model_free.restype = None
_lib.mskx_model_info.argtypes = [C.c_void_p, _P(_Info)]
for _fn, _t in (("mskx_predict_files", _P(C.c_char_p)), ("mskx_predict_encoded", _P(_Encoded)),
                ("mskx_predict_pixels", _P(_Pixels))):
    getattr(_lib, _fn).argtypes = [C.c_void_p, _t, C.c_int, C.c_char_p, _P(_PredictOptions), _P(_P(_Result)), _P(_Err)]
_lib.mskx_result_free.argtypes = [_P(_Result)]
_lib.mskx_result_free.restype = None

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None


def library_version():
    """The loaded libmskx's version string."""
    return _lib.mskx_version().decode()


def _raise(rc, err):
    status = _lib.mskx_status_name(rc).decode()  # the library's name for the code
    raise Error(rc, err.msg.decode("utf-8", "replace") or status, status)


def _enc(s):
    return None if s is None else os.fsencode(s)


_PRECISIONS = {"fp32": 0, "bf16": 1, "auto": 2}
_AGGS = {"mean": 0, "max": 1}


_NATIVE = "<" if sys.byteorder == "little" else ">"


def _pixel_view(a, i):
    """A C-contiguous memoryview of shape (H, W, C) and the bits per sample."""
    if _np is not None and isinstance(a, _np.ndarray):
        if a.dtype.kind != "u" or a.dtype.itemsize not in (1, 2):
            raise TypeError("image %d: pixel arrays must be uint8 or uint16, got %s" % (i, a.dtype))
        a = _np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    try:
        mv = memoryview(a)
    except TypeError:
        raise TypeError("image %d: expected a path, encoded bytes or a pixel array, got %s" % (i, type(a).__name__))
    f = mv.format
    if f in ("B", "@B", "=B", "<B", ">B", "!B"):
        bits = 8
    elif f in ("H", "@H", "=H", _NATIVE + "H"):
        bits = 16
    else:
        raise TypeError("image %d: samples must be 8-bit (B) or 16-bit in native byte order (H), got format %r"
                        % (i, f))
    if mv.ndim == 2:
        h, w, c = mv.shape[0], mv.shape[1], 1
    elif mv.ndim == 3 and mv.shape[2] in (1, 3):
        h, w, c = mv.shape
    else:
        raise ValueError("image %d: pixel arrays must have shape (H, W), (H, W, 1) or (H, W, 3), got %s"
                         % (i, mv.shape))
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())  # tobytes() is in logical (C) order
    return mv, h, w, c, bits


def _address(x, keep):
    """The address of the first byte of buffer x; keep holds what must
    outlive the call (nothing is copied unless x is read-only and not bytes)."""
    if isinstance(x, bytes):
        keep.append(x)
        return C.cast(C.c_char_p(x), C.c_void_p).value
    mv = memoryview(x)
    if mv.readonly:
        return _address(mv.tobytes(), keep)
    arr = (C.c_ubyte * mv.nbytes).from_buffer(mv.cast("B"))
    keep.append(arr)
    return C.addressof(arr)


class Model:
    """A model file (.safetensors), per-part bundle or ensemble (.json), loaded once.

    threads: compute threads per prediction context (0 = all cores);
    precision: "fp32", "bf16" or "auto" (the faster here, timed at load; info["precision"]
    says which); max_batch: images per forward pass (0 = 16);
    max_contexts: predictions computed in parallel when the model is shared by
    threads (0 = cores / threads); max_pixels: per image (0 = 16384^2);
    max_decode_bytes: memory image decoding may hold at once across all
    calls (0 = a quarter of RAM); decode_wait_ms: how long a call waits for
    that budget before raising an Error with status "busy" (0 = 30000,
    negative = at once)."""

    def __init__(self, path, threads=0, precision="fp32", max_batch=0, max_contexts=0, max_pixels=0,
                 max_decode_bytes=0, decode_wait_ms=0):
        if precision not in _PRECISIONS:
            raise ValueError("precision must be 'fp32', 'bf16' or 'auto', got %r" % (precision,))
        self._h = None
        opt = _LoadOptions(int(threads), _PRECISIONS[precision], int(max_batch), int(max_contexts), int(max_pixels),
                           int(max_decode_bytes), int(decode_wait_ms))
        h, err = C.c_void_p(), _Err()
        rc = _lib.mskx_model_load(_enc(os.fspath(path)), C.byref(opt), C.byref(h), C.byref(err))
        if rc:
            _raise(rc, err)
        self._h = h
        info = _Info()
        _lib.mskx_model_info(h, C.byref(info))
        s = lambda b: b.decode("utf-8", "replace") if b is not None else None  # noqa: E731
        self.info = {"kind": s(info.kind_name), "path": s(info.path), "arch": s(info.arch), "size": info.size,
                     "parts": s(info.parts), "threshold": info.threshold, "n_members": info.n_members,
                     "method": s(info.method), "metadata": json.loads(s(info.metadata_json) or "{}"),
                     "precision": s(info.precision),
                     "library_version": library_version()}

    @property
    def threshold(self):
        """The decision threshold (bundles: -1 when the members' differ)."""
        return self.info["threshold"]

    def close(self):
        """Frees the model now (also done when it is garbage-collected)."""
        if self._h is not None:
            _lib.mskx_model_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if _lib is not None:
            self.close()

    def predict(self, images, part=None, cam=False, overlay=False, tta_flip=False, agg="mean", names=None):
        """Predicts one study from its images (a list, or one image).

        part: "XR_WRIST" etc. (routes bundles; for files it defaults to an
        XR_* folder in the first path). cam: per-image class activation maps;
        overlay: per-image PNG bytes of the map over the radiograph; names:
        labels for array/bytes inputs. Returns a dict: probability, abnormal,
        decision, threshold, part, model, n_images, images (name, width,
        height, probability[, cam][, overlay_png]) and, for ensembles,
        member_probabilities."""
        if self._h is None:
            raise ValueError("the model is closed")
        if agg not in _AGGS:
            raise ValueError("agg must be 'mean' or 'max', got %r" % (agg,))
        if isinstance(images, (str, bytes, bytearray, os.PathLike)) or \
                (_np is not None and isinstance(images, _np.ndarray)) or isinstance(images, memoryview):
            images = [images]
        images = list(images)
        if not images:
            raise ValueError("a study needs at least one image")
        if names is not None and len(names) != len(images):
            raise ValueError("names must have one entry per image")
        keep = []
        n = len(images)
        if all(isinstance(x, (str, os.PathLike)) for x in images):
            fn = _lib.mskx_predict_files
            arg = (C.c_char_p * n)(*[_enc(os.fspath(x)) for x in images])
        elif all(isinstance(x, (bytes, bytearray)) for x in images):
            fn = _lib.mskx_predict_encoded
            arg = (_Encoded * n)()
            for i, x in enumerate(images):
                arg[i] = _Encoded(_address(x, keep), len(x), _enc(names[i]) if names else None)
        elif not any(isinstance(x, (str, os.PathLike, bytes, bytearray)) for x in images):
            fn = _lib.mskx_predict_pixels
            arg = (_Pixels * n)()
            for i, x in enumerate(images):
                mv, h, w, c, bits = _pixel_view(x, i)
                arg[i] = _Pixels(_address(mv, keep), w, h, c, 0, _enc(names[i]) if names else None, bits)
        else:
            raise TypeError("the images of one study must all be paths, all encoded bytes or all pixel arrays")
        po = _PredictOptions(_AGGS[agg], int(bool(tta_flip)), int(bool(cam)), int(bool(overlay)), 0.0)
        res, err = _P(_Result)(), _Err()
        rc = fn(self._h, arg, n, _enc(part), C.byref(po), C.byref(res), C.byref(err))
        if rc:
            _raise(rc, err)
        try:
            return _to_dict(res.contents)
        finally:
            _lib.mskx_result_free(res)


def _to_dict(r):
    out = {"probability": r.probability, "abnormal": bool(r.abnormal),
           "decision": "abnormal" if r.abnormal else "normal", "threshold": r.threshold,
           "part": r.part.decode() or None, "model": r.model_used.decode("utf-8", "replace"),
           "n_images": r.n_images, "images": []}
    if r.n_members:
        out["member_probabilities"] = [r.member_probabilities[i] for i in range(r.n_members)]
    for i in range(r.n_images):
        im = r.images[i]
        d = {"name": im.name.decode("utf-8", "replace"), "width": im.width, "height": im.height,
             "probability": im.probability}
        if im.cam or im.overlay_png:
            d["cam_width"], d["cam_height"] = im.cam_width, im.cam_height   # display size, longest side <= 1024
        if im.cam:
            raw = C.string_at(im.cam, im.cam_width * im.cam_height * 4)
            if _np is not None:
                d["cam"] = _np.frombuffer(raw, dtype=_np.float32).reshape(im.cam_height, im.cam_width).copy()
            else:
                d["cam"] = array.array("f", raw)
        if im.overlay_png:
            d["overlay_png"] = C.string_at(im.overlay_png, im.overlay_png_len)
        out["images"].append(d)
    return out
