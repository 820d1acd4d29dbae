"""Decompression-amplification checks of `mskx serve` (issue 12 item 2),
standard library only; prints PASS/FAIL lines.

  bomb_client.py png PATH W H                  writes an all-zero 8-bit grey PNG
  bomb_client.py rss URL PID PNG N LIMIT_MB    POSTs N copies of PNG as one study;
                                               the server's peak RSS (VmHWM) must
                                               stay under LIMIT_MB
  bomb_client.py busy URL PNG N                POSTs N copies; expects 503 with
                                               Retry-After (decode budget spent)
Test tooling only.
"""
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_client import check, multipart, request, as_json  # noqa: E402


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path, w, h):
    """Streams the zlib data so the generator never holds the raw pixels."""
    z = zlib.compressobj(9)
    row = b"\0" * (1 + w)
    rows_per = max(1, (1 << 22) // len(row))
    idat = []
    y = 0
    while y < h:
        k = min(rows_per, h - y)
        idat.append(z.compress(row * k))
        y += k
    idat.append(z.flush())
    data = b"".join(idat)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
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
    check("bomb_peak_rss_under_%d_mb" % limit_mb, after < limit_mb * 1024,
          "VmHWM %d kB, limit %d MB" % (after, limit_mb))


def png_dims(path):
    d = open(path, "rb").read(24)
    return struct.unpack(">II", d[16:24])


def busy(url, png, n):
    s, h, b = post_copies(url, png, n)
    check("budget_spent_gives_503", s == 503, "status %d: %s" % (s, b[:300]))
    check("budget_503_has_retry_after", h.get("retry-after", "").isdigit(), str(h))
    j = as_json(b) or {}
    check("budget_503_says_why", "budget" in j.get("error", ""), b[:300])


def main():
    cmd = sys.argv[1]
    if cmd == "png":
        write_png(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    if cmd == "rss":
        rss(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "busy":
        busy(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
