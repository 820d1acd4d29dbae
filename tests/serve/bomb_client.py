"""Decompression-amplification checks of `mskx serve` (issue 12 item 2),
standard library only; prints PASS/FAIL lines.

  bomb_client.py png PATH W H [interlaced]     writes an all-zero 8-bit grey PNG
  bomb_client.py rss URL PID PNG N LIMIT_MB    POSTs N copies of PNG as one study;
                                               the server's peak RSS (VmHWM) must
                                               stay under LIMIT_MB
  bomb_client.py busy URL PNG N                a study of N copies, and meanwhile one
                                               more: 503 with Retry-After (budget spent;
                                               the server runs --decode-wait 0)
  bomb_client.py too_big URL PNG               one image above the whole budget: 413
Test tooling only.
"""
import base64
import os
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_client import check, multipart, request, as_json  # noqa: E402


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, w, h, interlaced=False):
    """Streams the zlib data so the generator never holds the raw pixels.
    All-zero pixels with filter 0 are all-zero bytes; only the count matters:
    one filter byte per row, of every Adam7 pass when interlaced."""
    z = zlib.compressobj(9)
    passes = ADAM7 if interlaced else [(0, 0, 1, 1)]
    idat = []
    for x0, y0, dx, dy in passes:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw <= 0 or ph <= 0:
            continue
        row = b"\0" * (1 + pw)
        rows_per = max(1, (1 << 22) // len(row))
        y = 0
        while y < ph:
            k = min(rows_per, ph - y)
            idat.append(z.compress(row * k))
            y += k
    idat.append(z.flush())
    data = b"".join(idat)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1 if interlaced else 0)))
        for i in range(0, len(data), 1 << 20):
            f.write(chunk(b"IDAT", data[i:i + (1 << 20)]))
        f.write(chunk(b"IEND", b""))


def hwm_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def post_copies(url, png, n, query=""):
    data = open(png, "rb").read()
    parts = [("images", "zero%d.png" % i, "image/png", data) for i in range(n)]
    body, ctype = multipart(parts)
    return request(url, "POST", "/v1/predict" + query, body, {"Content-Type": ctype}, timeout=600)


def rss(url, pid, png, n, limit_mb):
    before = hwm_kb(pid)
    s, h, b = post_copies(url, png, n, "?cam=1")
    after = hwm_kb(pid)
    j = as_json(b) or {}
    print("bomb: %d images, status %d, VmHWM %d kB before, %d kB after" % (n, s, before, after), flush=True)
    ok = s == 200 and len(j.get("images", [])) == n
    check("bomb_study_answered", ok, "status %d: %s" % (s, b[:300]))
    if ok:
        im = j["images"][0]
        check("bomb_reports_original_size", (im.get("width"), im.get("height")) == png_dims(png), str(im)[:300])
        ov = base64.b64decode(im.get("overlay", ""))
        dims = struct.unpack(">II", ov[16:24]) if len(ov) >= 24 else None
        check("bomb_overlay_at_display_size", dims == (1024, 1024), "overlay %s" % (dims,))
    check("bomb_peak_rss_under_%d_mb" % limit_mb, after < limit_mb * 1024,
          "VmHWM %d kB, limit %d MB" % (after, limit_mb))


def png_dims(path):
    d = open(path, "rb").read(24)
    return struct.unpack(">II", d[16:24])


def busy(url, png, n):
    """A study of n interlaced images keeps one image's worth of the budget
    in use for its whole run; a second study posted meanwhile finds the
    budget spent and gets 503 + Retry-After (the server runs --decode-wait 0)."""
    first = {}
    t = threading.Thread(target=lambda: first.update(r=post_copies(url, png, n)))
    t.start()
    time.sleep(1.0)
    s, h, b = post_copies(url, png, 1)
    t.join()
    check("budget_spent_gives_503", s == 503, "status %d: %s" % (s, b[:300]))
    check("budget_503_has_retry_after", h.get("retry-after", "").isdigit(), str(h))
    j = as_json(b) or {}
    check("budget_503_says_why", "budget" in j.get("error", ""), b[:300])
    s1 = first["r"][0]
    check("budget_first_study_served", s1 == 200, "status %d: %s" % (s1, first["r"][2][:300]))


def too_big(url, png):
    """An image that alone needs more than the whole budget: 413, no retry."""
    s, h, b = post_copies(url, png, 1)
    check("budget_image_above_budget_gives_413", s == 413, "status %d: %s" % (s, b[:300]))
    check("budget_413_says_why", "budget" in (as_json(b) or {}).get("error", ""), b[:300])


def main():
    cmd = sys.argv[1]
    if cmd == "png":
        write_png(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), len(sys.argv) > 5 and sys.argv[5] == "interlaced")
        return 0
    if cmd == "rss":
        rss(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "busy":
        busy(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "too_big":
        too_big(sys.argv[2], sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
