"""HTTP checks of `mskx serve`, standard library only; prints PASS/FAIL lines.

  http_client.py wait URL SECONDS         until GET /v1/health answers 200
  http_client.py suite URL PID FIXDIR     endpoints, bad uploads, limits, load, RSS
  http_client.py sigterm URL PID FIXDIR   SIGTERM while a request is in progress
  http_client.py slowloris URL PID FIXDIR slow clients; the server runs with
                                          --max-per-ip 8 --header-timeout 2 --min-rate 1000
  http_client.py framing URL PID FIXDIR   ambiguous body framing is refused
  http_client.py body_budget URL PID FIXDIR  --max-body 200000 --max-buffered 300000

FIXDIR holds the fixtures serve_test.sh writes (study/, ref.json, ...). The
server under `suite` runs with --max-body 2000000 --max-images 4
--max-pixels 100000 --max-concurrent 2 --timeout 2 --max-per-ip 64.
Slow-client checks are bounded in time and use loopback only; other loopback
addresses (127.0.0.2, 127.0.0.3: all of 127/8 is loopback on Linux) stand
for other machines.
Test tooling only.
"""
import base64
import http.client
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import zlib

FAILED = 0


def check(name, ok, detail=""):
    global FAILED
    if ok:
        print("PASS " + name, flush=True)
    else:
        FAILED += 1
        print("FAIL %s: %s" % (name, str(detail)[:500]), flush=True)


def request(url, method, path, body=None, headers=None, timeout=30):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def multipart(parts, boundary="mskxBoundary7MA4YWxkTrZu0gW"):
    """parts: (field, filename or None, content type or None, bytes)."""
    out = []
    for field, filename, ctype, data in parts:
        d = 'Content-Disposition: form-data; name="%s"' % field
        if filename is not None:
            d += '; filename="%s"' % filename
        out.append(b"--" + boundary.encode() + b"\r\n" + d.encode() + b"\r\n")
        if ctype:
            out.append(b"Content-Type: " + ctype.encode() + b"\r\n")
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def post_study(url, files, query="", extra=()):
    parts = [("images", os.path.basename(p), "image/png", open(p, "rb").read()) for p in files]
    body, ctype = multipart(parts + list(extra))
    return request(url, "POST", "/v1/predict" + query, body, {"Content-Type": ctype})


def as_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def png_info(data):
    """Validates a PNG fully (signature, chunk CRCs, zlib stream, scanline
    count) and returns (width, height, colour type)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(kind + chunk) == crc, "bad CRC in " + kind.decode()
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
        if kind == b"IEND":
            break
    w, h, depth, ctype = ihdr[0], ihdr[1], ihdr[2], ihdr[3]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    assert depth == 8 and len(raw) == h * (1 + w * channels), "bad pixel data size"
    return w, h, ctype


def png_size(path):
    d = open(path, "rb").read(24)
    return struct.unpack(">II", d[16:24])


def metrics(url):
    s, h, b = request(url, "GET", "/metrics")
    vals = {}
    for line in b.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', line)
        assert m, "bad metrics line: " + line
        vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return s, h, vals


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_connect(url, source=None):
    u = urllib.parse.urlsplit(url)
    return socket.create_connection((u.hostname, u.port), timeout=10,
                                    source_address=(source, 0) if source else None)


def request_from(source, url, method, path, body=None, headers=None, timeout=10):
    """request() from another loopback address."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def closed_by_server(sock):
    """True when the server has closed sock (end of file or reset); never blocks."""
    sock.setblocking(False)
    try:
        return sock.recv(1000) == b""
    except BlockingIOError:
        return False
    except OSError:   # reset
        return True
    finally:
        sock.setblocking(True)


def read_response(sock):
    """Status, headers and body of one response on a raw socket."""
    f = sock.makefile("rb")
    r = http.client.HTTPResponse(sock)
    r.fp = f
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def wait(url, seconds):
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            if request(url, "GET", "/v1/health", timeout=2)[0] == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.1)
    print("FAIL server_ready: no answer from %s/v1/health within %s s" % (url, seconds))
    return 1


# ---------------------------------------------------------------- suite parts

def check_basics(url, fx, root):
    s, h, b = request(url, "GET", "/v1/health")
    check("health", s == 200 and as_json(b) == {"status": "ok"} and h["content-type"] == "application/json", (s, b))
    s, h, b = request(url, "HEAD", "/v1/health")
    check("health_head", s == 200 and b == b"", (s, b))
    s, h, b = request(url, "GET", "/")
    page = open(os.path.join(root, "src/serve/viewer.html"), "rb").read()
    check("viewer_served_is_viewer_html", s == 200 and b == page and h["content-type"].startswith("text/html"),
          (s, len(b), len(page)))
    check("viewer_csp_forbids_outside", "default-src 'none'" in h.get("content-security-policy", ""), h)
    outside = re.findall(rb'(?:src|href|action)\s*=\s*["\']?\s*(?:https?:)?//|url\(\s*["\']?(?:https?:)?//|@import', page)
    check("viewer_has_no_outside_resources", not outside, outside)
    s, h, b = request(url, "GET", "/v1/model")
    m = as_json(b) or {}
    meta = m.get("metadata", {})
    check("model_info", s == 200 and m.get("kind") == "model" and m.get("arch") == meta.get("arch") and
          m.get("size") == 64 and m.get("threshold") == 0.5 and m.get("parts") == ["all"] and
          meta.get("format") == "mskx-model-1" and m.get("file") == "tiny.safetensors", m)


def check_predict(url, fx, study):
    ref = json.load(open(os.path.join(fx, "ref.json")))[0]
    s, h, b = post_study(url, study)
    r = as_json(b) or {}
    imgs = r.get("images", [])
    check("predict_multipart_200", s == 200 and h["content-type"] == "application/json", (s, b[:300]))
    check("predict_keys", set(r) >= {"probability", "decision", "threshold", "part", "images", "model", "elapsed_ms"}, r.keys())
    check("predict_images", [i.get("name") for i in imgs] == [os.path.basename(p) for p in study] and
          all(0 <= i["probability"] <= 1 and "overlay" not in i for i in imgs), imgs)
    p = r.get("probability", -1)
    check("predict_probability_is_mean", 0 <= p <= 1 and len(imgs) == 3 and
          abs(p - sum(i["probability"] for i in imgs) / 3) < 1e-12, r)
    check("predict_decision_matches_threshold", r.get("threshold") == 0.5 and
          r.get("decision") == ("abnormal" if p > 0.5 else "normal") and r.get("abnormal") == (p > 0.5), r)
    check("predict_equals_cli", abs(p - ref["probability"]) < 1e-6 and r["decision"] == ref["decision"] and
          all(abs(a["probability"] - b["probability"]) < 1e-6 for a, b in zip(imgs, ref["images"])), (r, ref))
    check("predict_model_and_time", r.get("model", {}).get("arch") == ref_arch(url) and r.get("elapsed_ms", -1) >= 0, r)
    # Raw bodies: a PNG, and a JPEG checked against `mskx predict` on the same file.
    s, h, b = request(url, "POST", "/v1/predict?name=first.png", open(study[0], "rb").read(), {"Content-Type": "image/png"})
    r1 = as_json(b) or {}
    check("predict_raw_png", s == 200 and r1["images"][0]["name"] == "first.png" and
          abs(r1["probability"] - ref["images"][0]["probability"]) < 1e-6, (s, b[:300]))
    jref = json.load(open(os.path.join(fx, "ref_jpeg.json")))[0]
    s, h, b = request(url, "POST", "/v1/predict", open(os.path.join(fx, "photo.jpg"), "rb").read(), {"Content-Type": "image/jpeg"})
    r2 = as_json(b) or {}
    check("predict_raw_jpeg_equals_cli", s == 200 and abs(r2.get("probability", -1) - jref["probability"]) < 1e-6, (s, b[:300], jref))
    # Part: query parameter, form field, invalid.
    s, h, b = post_study(url, study, "?part=wrist")
    check("predict_part_query", s == 200 and as_json(b)["part"] == "XR_WRIST", b[:200])
    s, h, b = post_study(url, study, extra=[("part", None, None, b"XR_HAND")])
    check("predict_part_field", s == 200 and as_json(b)["part"] == "XR_HAND", b[:200])
    s, h, b = post_study(url, study)
    check("predict_no_part_is_null", s == 200 and as_json(b)["part"] is None, b[:200])
    return ref


def ref_arch(url):
    return as_json(request(url, "GET", "/v1/model")[2])["arch"]


def check_cam(url, study, ref):
    s, h, b = post_study(url, study, "?cam=1")
    r = as_json(b) or {}
    ok, detail = s == 200, (s, b[:200])
    for img, path in zip(r.get("images", []), study):
        try:
            w, hgt, ct = png_info(base64.b64decode(img["overlay"], validate=True))
            ok = ok and (w, hgt) == png_size(path) and (img["width"], img["height"]) == (w, hgt) and ct == 2
            detail = (w, hgt, png_size(path), ct)
        except Exception as e:  # noqa: BLE001 - any decoding problem fails the check
            ok, detail = False, repr(e)
    check("cam_overlays_are_rgb_pngs_of_image_size", ok and len(r.get("images", [])) == 3, detail)
    check("cam_does_not_change_probabilities", abs(r.get("probability", -1) - ref["probability"]) < 1e-6, r.get("probability"))
    s1, _, b1 = post_study(url, study[:1], "?cam=1&alpha=1")
    check("cam_alpha_changes_overlay", s1 == 200 and as_json(b1)["images"][0]["overlay"] != r["images"][0]["overlay"], s1)


def check_bad(url, fx, study):
    good = open(study[0], "rb").read()
    text = b"this is not an image\n" * 10
    mp = lambda parts: multipart(parts)  # noqa: E731
    body_ok, ct_ok = mp([("images", "a.png", "image/png", good)])
    cases = [
        ("bad_not_an_image", 400, "POST", "/v1/predict", *mp([("images", "notes.png", "image/png", text)]), "notes.png"),
        ("bad_truncated_png", 400, "POST", "/v1/predict", *mp([("images", "cut.png", "image/png", good[:200])]), "cut.png"),
        ("bad_zero_bytes", 400, "POST", "/v1/predict", *mp([("images", "empty.png", "image/png", b"")]), "empty"),
        ("bad_raw_empty", 400, "POST", "/v1/predict", b"", "image/png", "empty"),
        ("bad_raw_text_body", 400, "POST", "/v1/predict", text, "image/png", "not a PNG or JPEG"),
        ("bad_content_type", 415, "POST", "/v1/predict", good, "text/plain", "Content-Type"),
        ("bad_no_content_type", 415, "POST", "/v1/predict", good, None, "Content-Type"),
        ("bad_part_content_type", 415, "POST", "/v1/predict", *mp([("images", "a.txt", "text/plain", good)]), "text/plain"),
        ("bad_multipart_unterminated", 400, "POST", "/v1/predict", body_ok[:-40], ct_ok, "multipart"),
        ("bad_multipart_no_boundary", 400, "POST", "/v1/predict", body_ok, "multipart/form-data", "boundary"),
        ("bad_multipart_garbage", 400, "POST", "/v1/predict", b"\x00\x01garbage" * 50, ct_ok, "multipart"),
        ("bad_multipart_no_disposition", 400, "POST", "/v1/predict",
         b"--mskxBoundary7MA4YWxkTrZu0gW\r\nContent-Type: image/png\r\n\r\n" + good + b"\r\n--mskxBoundary7MA4YWxkTrZu0gW--\r\n",
         ct_ok, "Content-Disposition"),
        ("bad_no_images", 400, "POST", "/v1/predict", *mp([("part", None, None, b"XR_HAND")]), "no images"),
        ("bad_too_many_images", 413, "POST", "/v1/predict", *mp([("images", "%d.png" % i, "image/png", good) for i in range(5)]), "at most 4"),
        # Past the parser's part limit (images + 16 fields): the message names the real limit.
        ("bad_too_many_parts", 413, "POST", "/v1/predict", *mp([("images", "%d.png" % i, "image/png", good) for i in range(30)]), "at most 4 images"),
        ("bad_too_many_pixels", 413, "POST", "/v1/predict", *mp([("images", "big.png", "image/png", open(os.path.join(fx, "big.png"), "rb").read())]), "above the limit"),
        ("bad_cam_value", 400, "POST", "/v1/predict?cam=maybe", body_ok, ct_ok, "cam"),
        ("bad_alpha_value", 400, "POST", "/v1/predict?cam=1&alpha=2", body_ok, ct_ok, "alpha"),
        ("bad_part_value", 400, "POST", "/v1/predict?part=XR_%27;drop", body_ok, ct_ok, "part"),
        ("unknown_path_404", 404, "GET", "/v2/nothing", None, None, "/v2/nothing"),
        # An error cut at its size limit inside a UTF-8 character stays valid JSON (UTF-8).
        ("long_utf8_path_404", 404, "GET", "/x" + "%C3%A9" * 300, None, None, "no such endpoint: /x\u00e9"),
        ("wrong_method_get_predict_405", 405, "GET", "/v1/predict", None, None, "GET"),
        ("wrong_method_post_health_405", 405, "POST", "/v1/health", b"{}", "application/json", "POST"),
        ("wrong_method_delete_model_405", 405, "DELETE", "/v1/model", None, None, "DELETE"),
    ]
    n400 = 0
    for name, want, method, path, body, ctype, needle in cases:
        hdr = {"Content-Type": ctype} if ctype else {}
        s, h, b = request(url, method, path, body, hdr)
        e = (as_json(b) or {}).get("error", "")
        check(name, s == want and h.get("content-type") == "application/json" and needle in e, (s, b[:300]))
        n400 += s == 400
    s, h, _ = request(url, "GET", "/v1/predict")
    check("method_405_has_allow", h.get("allow") == "POST", h)
    # Oversize with Content-Length: answered from the headers alone, quickly.
    sock = raw_connect(url)
    t0 = time.time()
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 3000000\r\n\r\n")
    s, h, b = read_response(sock)
    sock.close()
    check("oversize_body_413_quickly", s == 413 and "limit" in (as_json(b) or {}).get("error", "") and time.time() - t0 < 1.0,
          (s, b, time.time() - t0))
    # Oversize without Content-Length (chunked): counted while it arrives.
    chunks = (b"x" * 500000 for _ in range(5))
    s, h, b = request(url, "POST", "/v1/predict", chunks, {"Content-Type": "image/png"})   # no length: chunked
    check("oversize_chunked_413", s == 413 and "limit" in (as_json(b) or {}).get("error", ""), (s, b[:200]))
    s, h, b = request(url, "GET", "/v1/health")
    check("serving_after_bad_requests", s == 200, s)
    return n400


def settled_metrics(url, seconds=3.0):
    """Metrics once every earlier request is counted: a request's completion
    is recorded just after its response is sent, so a client can read
    /metrics a moment early. Only this client talks to the server, so
    in_flight == 1 (the /metrics request itself) means all others are done.
    Also returns how many earlier /metrics reads (each a 200) it took."""
    end, extra = time.time() + seconds, 0
    while True:
        s, h, vals = metrics(url)
        if vals["mskx_http_requests_in_flight"] == 1 or time.time() > end:
            return s, h, vals, extra
        extra += 1
        time.sleep(0.05)


def check_metrics_move(url, study, before, n400):
    code = lambda v, c: v.get('mskx_http_requests_total{code="%d"}' % c, 0)  # noqa: E731
    s, h, after, _ = settled_metrics(url)
    check("metrics_format", s == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), h)
    check("metrics_400_counted", code(after, 400) - code(before, 400) == n400, (code(after, 400) - code(before, 400), n400))
    check("metrics_in_flight_counts_itself", after["mskx_http_requests_in_flight"] == 1, after["mskx_http_requests_in_flight"])
    s, _, _ = post_study(url, study)
    _, _, again, extra = settled_metrics(url)
    # 200s in between: the previous /metrics read, the prediction, and any retries.
    check("metrics_images_and_requests_move", s == 200 and
          again["mskx_images_processed_total"] - after["mskx_images_processed_total"] == 3 and
          code(again, 200) - code(after, 200) == 2 + extra and
          again["mskx_predict_duration_seconds_count"] - after["mskx_predict_duration_seconds_count"] == 1,
          (extra, after, again))
    buckets = [again[k] for k in again if k.startswith("mskx_predict_duration_seconds_bucket")]
    check("metrics_histogram_consistent", again['mskx_predict_duration_seconds_bucket{le="+Inf"}'] ==
          again["mskx_predict_duration_seconds_count"] and buckets == sorted(buckets) and len(buckets) == 13, again)


def check_concurrency(url, study, ref):
    results, lock = [], threading.Lock()

    def one():
        try:
            s, h, b = post_study(url, study)
            out = (s, h.get("retry-after"), as_json(b))
        except Exception as e:  # noqa: BLE001 - any transport failure is an outcome to report
            out = ("exception", repr(e), None)
        with lock:
            results.append(out)

    ts = [threading.Thread(target=one) for _ in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    ok200 = [r for r in results if r[0] == 200 and abs(r[2]["probability"] - ref["probability"]) < 1e-6]
    busy = [r for r in results if r[0] == 503 and r[1] == "1" and "busy" in (r[2] or {}).get("error", "")]
    other = [r for r in results if r not in ok200 and r not in busy]
    check("concurrent_50_clients_200_or_503", len(results) == 50 and not other and ok200,
          "%d ok, %d busy, others: %s" % (len(ok200), len(busy), other[:3]))
    print("info: 50 concurrent clients: %d answered 200, %d answered 503" % (len(ok200), len(busy)))


def check_slow_uploads_hold_no_slot(url, study):
    """Three uploads stalled mid-body (more than --max-concurrent 2) hold no
    prediction slot: a prediction sent meanwhile is answered 200."""
    body, ctype = multipart([("images", "a.png", "image/png", open(study[0], "rb").read())])
    head = ("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, len(body))).encode()
    socks = []
    for _ in range(3):
        sk = raw_connect(url)
        sk.sendall(head + body[:100])
        socks.append(sk)
    time.sleep(0.3)
    s, h, b = post_study(url, study)
    check("slow_uploads_hold_no_prediction_slot", s == 200, (s, h, b[:200]))
    done = []
    for sk in socks:
        sk.sendall(body[100:])
        done.append(read_response(sk)[0])
        sk.close()
    check("slow_uploads_finish", done == [200, 200, 200], done)

def check_slow_client(url, study, timeout_s=2.0):
    slow = raw_connect(url)
    slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n" + b"\x89PNG")
    half = raw_connect(url)
    half.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")   # headers never finished
    t0 = time.time()
    served = []
    for _ in range(4):
        served.append(request(url, "GET", "/v1/health", timeout=5)[0])
        served.append(post_study(url, study)[0])
    check("others_served_during_slow_client", served == [200, 200] * 4 and time.time() - t0 < timeout_s, (served, time.time() - t0))
    cut = []
    for sk in (slow, half):
        sk.settimeout(timeout_s + 5)
        try:
            data = sk.recv(1000)
            cut.append((data == b"", time.time() - t0, data[:80]))
        except socket.timeout:
            cut.append((False, time.time() - t0, "still open"))
        except OSError as e:   # a reset is a cut too
            cut.append((True, time.time() - t0, repr(e)))
        sk.close()
    check("slow_clients_cut_by_timeout", all(c[0] and timeout_s - 0.5 < c[1] < timeout_s + 4 for c in cut), cut)


def check_rss(url, pid, study):
    for _ in range(20):
        post_study(url, study, "?cam=1")
    before = rss_kb(pid)
    bad, ctype = multipart([("images", "x.png", "image/png", b"junk" * 100)])
    codes = set()
    for i in range(200):
        if i % 4 == 3:
            codes.add(request(url, "POST", "/v1/predict", bad, {"Content-Type": ctype})[0])
        else:
            codes.add(post_study(url, study, "?cam=1" if i % 2 else "")[0])
    after = rss_kb(pid)
    check("rss_bounded_after_200_requests", codes == {200, 400} and after - before < 50 * 1024,
          "VmRSS %d kB -> %d kB, codes %s" % (before, after, codes))
    print("info: VmRSS %d kB before, %d kB after 200 requests" % (before, after))


def latency(url, study):
    best = None
    for _ in range(5):
        t0 = time.time()
        s, _, b = post_study(url, study)
        dt = (time.time() - t0) * 1e3
        best = dt if best is None or dt < best else best
    print("info: one 3-image study request, best of 5: %.1f ms wall (server elapsed_ms %s)" % (best, as_json(b)["elapsed_ms"]))


def suite(url, pid, fx):
    root = os.environ.get("MSKX_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    study = [os.path.join(fx, "study", n) for n in ("image1.png", "image2.png", "image3.png")]
    check_basics(url, fx, root)
    ref = check_predict(url, fx, study)
    check_cam(url, study, ref)
    _, _, before = metrics(url)
    n400 = check_bad(url, fx, study)
    check_metrics_move(url, study, before, n400)
    check_slow_uploads_hold_no_slot(url, study)
    check_concurrency(url, study, ref)
    check_slow_client(url, study)
    check_rss(url, pid, study)
    latency(url, study)


def sigterm(url, pid, fx):
    study = [os.path.join(fx, "study", n) for n in ("image1.png", "image2.png", "image3.png")]
    parts = [("images", os.path.basename(p), "image/png", open(p, "rb").read()) for p in study]
    body, ctype = multipart(parts)
    u = urllib.parse.urlsplit(url)
    idle = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    idle.request("GET", "/v1/health")   # a kept-alive idle connection must not delay the exit
    idle.getresponse().read()
    sk = raw_connect(url)
    sk.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, len(body))).encode() + body[:1000])
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    try:
        request(url, "GET", "/v1/health", timeout=2)
        refused = "a new connection was still served"
    except (ConnectionRefusedError, ConnectionResetError):
        refused = True
    except OSError as e:   # e.g. a timeout: left waiting in the backlog
        refused = repr(e)
    check("sigterm_stops_accepting", refused is True, refused)
    sk.sendall(body[1000:])
    s, h, b = read_response(sk)
    sk.close()
    r = as_json(b) or {}
    check("sigterm_in_flight_request_finishes", s == 200 and len(r.get("images", [])) == 3, (s, b[:200]))
    idle.close()


def trickle_headers(url, source, n):
    """n connections that each send the first bytes of a request line."""
    out = []
    for _ in range(n):
        try:
            sk = raw_connect(url, source)
            sk.sendall(b"GET /v1/hea")
            out.append(sk)
        except OSError:
            out.append(None)   # refused outright: as good as closed
    return out


def slowloris(url, pid, fx):
    """The server runs with --max-per-ip 8 --header-timeout 2 --min-rate 1000
    --timeout 30 --max-connections 64 (the idle timeout alone would never
    close a client that sends a byte every 0.5 s)."""
    study = [os.path.join(fx, "study", n) for n in ("image1.png", "image2.png", "image3.png")]
    t0 = time.time()
    socks = trickle_headers(url, "127.0.0.1", 20)
    closed = set()
    while len(closed) < 12 and time.time() - t0 < 1.5:   # well before the 2 s header deadline
        time.sleep(0.1)
        closed |= {i for i, sk in enumerate(socks) if i not in closed and (sk is None or closed_by_server(sk))}
    check("per_ip_limit_closes_excess_connections", len(closed) == 12, "%d of 20 closed at once" % len(closed))
    held = [sk for i, sk in enumerate(socks) if i not in closed]
    # Another client address is served at once while they trickle.
    t1 = time.time()
    try:
        s1 = request_from("127.0.0.2", url, "GET", "/v1/health", timeout=5)[0]
        body, ctype = multipart([("images", os.path.basename(p), "image/png", open(p, "rb").read()) for p in study])
        s2 = request_from("127.0.0.2", url, "POST", "/v1/predict", body, {"Content-Type": ctype}, timeout=5)[0]
    except OSError as e:
        s1 = s2 = repr(e)
    check("other_client_served_during_slowloris", (s1, s2) == (200, 200) and time.time() - t1 < 3,
          (s1, s2, time.time() - t1))
    # The held ones keep trickling (never idle) but are cut at the header deadline.
    cut_after = {}
    while time.time() - t0 < 6 and len(cut_after) < len(held):
        for i, sk in enumerate(held):
            if i in cut_after:
                continue
            if closed_by_server(sk):
                cut_after[i] = time.time() - t0
                continue
            try:
                sk.sendall(b"l")
            except OSError:
                cut_after[i] = time.time() - t0
        time.sleep(0.5)
    times = sorted(cut_after.values())
    check("header_deadline_closes_trickling_connections", len(held) == 8 and len(times) == 8 and
          all(1.5 < t < 4.5 for t in times), (len(held), times))
    for sk in socks:
        if sk is not None:
            sk.close()
    # A body sent at 100 bytes/s (below --min-rate 1000) is cut after about
    # 2 s + received/1000 s; one sent at 4000 bytes/s is answered.
    slow = raw_connect(url, "127.0.0.3")
    slow.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
    t2, cut = time.time(), None
    while time.time() - t2 < 6:
        try:
            slow.sendall(b"x" * 10)
        except OSError:
            cut = time.time() - t2
            break
        if closed_by_server(slow):
            cut = time.time() - t2
            break
        time.sleep(0.1)
    slow.close()
    check("min_rate_closes_slow_body", cut is not None and 1.8 < cut < 4.5, cut)
    # One image padded to 14000 bytes with a form field the server ignores:
    # at 4000 bytes/s it lasts 3.5 s, past the 2 s header timeout.
    img = open(study[0], "rb").read()
    body, ctype = multipart([("images", "a.png", "image/png", img), ("pad", None, None, b"p" * max(0, 14000 - len(img)))])
    ok = raw_connect(url, "127.0.0.3")
    ok.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (ctype, len(body))).encode())
    t3, step = time.time(), 400
    for i in range(0, len(body), step):   # 4000 bytes/s
        ok.sendall(body[i:i + step])
        time.sleep(0.1)
    s3 = read_response(ok)[0]
    ok.close()
    check("slow_but_sufficient_body_answered", s3 == 200, (s3, len(body), time.time() - t3))
    print("info: a %d-byte body sent at 4000 bytes/s took %.1f s" % (len(body), time.time() - t3))
    _, _, vals = metrics(url)
    check("metrics_count_cut_connections", vals.get('mskx_http_connections_cut_total{reason="headers"}', 0) >= 8 and
          vals.get('mskx_http_connections_cut_total{reason="body"}', 0) >= 1, vals)


def body_budget(url, pid, fx):
    """The server runs with --max-body 200000 --max-buffered 300000: while
    one upload holds 250000 bytes of body, a second gets 503 + Retry-After
    as soon as its body would pass the budget; both get answers, and the
    budget is all given back."""
    head = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
    first = raw_connect(url)
    first.sendall((head % 190000).encode() + b"x" * 150000)
    time.sleep(0.3)
    _, _, mid = metrics(url)
    second = raw_connect(url)
    second.sendall((head % 150000).encode() + b"y" * 150000)
    s2, h2, b2 = read_response(second)
    second.close()
    check("body_budget_503", s2 == 503 and h2.get("retry-after") == "1" and
          "request bodies in memory" in (as_json(b2) or {}).get("error", ""), (s2, b2[:200]))
    first.sendall(b"x" * 40000)
    s1, _, b1 = read_response(first)
    first.close()
    check("body_budget_first_answered", s1 == 400 and "not a PNG" in (as_json(b1) or {}).get("error", ""), (s1, b1[:200]))
    time.sleep(0.3)
    _, _, after = metrics(url)
    check("body_budget_counted_and_released", mid.get("mskx_http_request_body_bytes", 0) >= 150000 and
          after.get("mskx_http_request_body_bytes") == 0, (mid.get("mskx_http_request_body_bytes"), after.get("mskx_http_request_body_bytes")))


def framing(url, pid, fx):
    """Requests whose body length a proxy could read differently get 400 and
    the connection is closed: a request smuggled behind them is never run."""
    smuggled = b"GET /v1/nothing-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = [
        ("two_content_lengths_400", b"Content-Length: 5\r\nContent-Length: 6\r\n", b"abcde", "two different Content-Length"),
        ("length_and_chunked_400", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n", "both Content-Length"),
        ("unknown_transfer_coding_400", b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n", "Transfer-Encoding"),
    ]
    for name, headers, body, needle in cases:
        sk = raw_connect(url)
        sk.settimeout(3)
        sk.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n" + headers + b"\r\n" + body + smuggled)
        try:
            s, h, b = read_response(sk)
            rest = sk.recv(1000)
        except OSError as e:   # no answer, or the connection stayed open
            s, b, rest = None, b"", repr(e).encode()
        sk.close()
        e = (as_json(b) or {}).get("error", "")
        check(name, s == 400 and needle in e and rest == b"", (s, b[:200], rest[:200]))
    # Equal duplicates are allowed (RFC 7230 3.3.2).
    sk = raw_connect(url)
    sk.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n")
    s, h, b = read_response(sk)
    sk.close()
    check("equal_content_lengths_allowed", s == 200, (s, b[:200]))


def main():
    cmd = sys.argv[1]
    if cmd == "wait":
        return wait(sys.argv[2], sys.argv[3])
    url, pid, fx = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    {"suite": suite, "sigterm": sigterm, "slowloris": slowloris, "framing": framing,
     "body_budget": body_budget}[cmd](url, pid, fx)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
