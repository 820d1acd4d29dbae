"""Checks of `mskx serve`'s prediction queue and dynamic batching, standard
library only; prints PASS/FAIL lines (uses http_client.py's helpers).

  queue_client.py held URL PID FIXDIR   the server runs with --queue 4
      --max-batch 64 --max-delay-ms 1500: the scheduler holds the oldest
      study 1.5 s for others, so the queue stays occupied for that long
      (queue full, deadline, a client that leaves, readiness, batching)
  queue_client.py many URL PID FIXDIR   32 concurrent clients, default queue

FIXDIR holds ref.json (`mskx predict --json` of study/), ref_N.json for the
single images, and study/. Every check is bounded in time, loopback only.
Test tooling only.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_client as hc  # noqa: E402

check = hc.check
MADE = [1]   # requests sent: queue_test.sh's start-up wait (GET /v1/health), then this client's
LOCK = threading.Lock()


def counted(fn, *a, **k):
    with LOCK:
        MADE[0] += 1
    return fn(*a, **k)


def post(url, files, headers=None, query=""):
    parts = [("images", os.path.basename(p), "image/png", open(p, "rb").read()) for p in files]
    body, ctype = hc.multipart(parts)
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return counted(hc.request, url, "POST", "/v1/predict" + query, body, h)


def metrics(url):
    return counted(hc.metrics, url)[2]


def in_threads(fns):
    out = [None] * len(fns)

    def run(i):
        try:
            out[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 - a transport failure is an outcome to report
            out[i] = ("exception", repr(e), b"")
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def settled(url, seconds=5.0):
    """Metrics once only the /metrics read itself is in flight."""
    end = time.time() + seconds
    while True:
        v = metrics(url)
        if v["mskx_http_requests_in_flight"] == 1 or time.time() > end:
            return v
        time.sleep(0.05)


def adds_up(url, name):
    """answered + refused + failed == every request this client sent (the
    read in progress is not finished, so not counted yet)."""
    v = settled(url)
    total = sum(v['mskx_requests_total{outcome="%s"}' % o] for o in ("answered", "refused", "failed"))
    codes = sum(x for k, x in v.items() if k.startswith("mskx_http_requests_total{")) + v["mskx_http_requests_aborted_total"]
    check(name, total == MADE[0] - 1 and codes == total, (total, codes, MADE[0] - 1))
    return v


def held(url, pid, fx):
    study = [os.path.join(fx, "study", n) for n in ("image1.png", "image2.png", "image3.png")]
    ref = json.load(open(os.path.join(fx, "ref.json")))[0]
    singles = [json.load(open(os.path.join(fx, "ref_%d.json" % i)))[0] for i in (1, 2, 3)]
    before = metrics(url)

    # Batched answers equal unbatched: four studies (3, 1, 1, 1 images) sent
    # at once are held together and computed in one forward pass of 6 inputs.
    res = in_threads([lambda: post(url, study)] + [lambda i=i: post(url, [study[i]]) for i in range(3)])
    ok = all(r[0] == 200 for r in res)
    got = [hc.as_json(r[2]) if r[0] == 200 else None for r in res]
    tol = 1e-5
    same = ok and abs(got[0]["probability"] - ref["probability"]) < tol and all(
        abs(a["probability"] - b["probability"]) < tol for a, b in zip(got[0]["images"], ref["images"])) and all(
        abs(got[1 + i]["probability"] - singles[i]["probability"]) < tol for i in range(3))
    check("batched_answers_equal_unbatched", same, [(r[0], r[2][:200]) for r in res])
    after = metrics(url)
    batches = after["mskx_batch_size_count"] - before["mskx_batch_size_count"]
    images = after["mskx_batch_size_sum"] - before["mskx_batch_size_sum"]
    check("four_studies_one_batch", batches == 1 and images == 6, (batches, images))

    # Queue full: four studies held (--queue 4), a fifth gets 503 + Retry-After
    # (the queue's estimated wait: 1 s for this tiny model), and readiness
    # says not ready meanwhile.
    t = threading.Thread(target=lambda: held.res.extend(in_threads([lambda: post(url, study)] * 4)))
    held.res = []
    t.start()
    time.sleep(0.5)
    s, h, b = post(url, study)
    msg = (hc.as_json(b) or {}).get("error", "")
    check("queue_full_503_retry_after", s == 503 and h.get("retry-after") == "1" and "queue is full" in msg, (s, h, b[:200]))
    # Refused from the headers while the queue is full: a client waiting for
    # 100 Continue is answered at once without sending its 8 MB body, then
    # the connection is closed; a client that sends its body at once has it
    # drained unparsed (2 MB that would be a 400 if parsed) and gets the 503
    # on a connection that stays open.
    sk = hc.raw_connect(url)
    with LOCK:
        MADE[0] += 1
    t0 = time.time()
    sk.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (8 << 20)).encode())
    s, h, b = hc.read_response(sk)
    dt = time.time() - t0
    closed = False
    while not closed and time.time() < t0 + 2:
        closed = hc.closed_by_server(sk)
        time.sleep(0.02)
    sk.close()
    check("queue_full_from_headers_expect_100", s == 503 and h.get("retry-after", "").isdigit() and
          "queue is full" in (hc.as_json(b) or {}).get("error", "") and dt < 1.0 and closed, (s, h, b[:200], dt, closed))
    sk = hc.raw_connect(url)
    with LOCK:
        MADE[0] += 2
    garbage = b"x" * (2 << 20)
    sk.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: %d\r\n\r\n" % len(garbage)).encode() + garbage)
    s, h, b = hc.read_response(sk)
    sk.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    s2, _, _ = hc.read_response(sk)
    sk.close()
    check("queue_full_from_headers_body_drained_unparsed", s == 503 and h.get("retry-after", "").isdigit() and
          "queue is full" in (hc.as_json(b) or {}).get("error", "") and "close" not in h.get("connection", "") and
          s2 == 200, (s, h, b[:200], s2))
    # A refused body with no Content-Length (chunked) is not drained for as
    # long as it comes: past SERVE_DRAIN_MAX (16 MiB) the server closes the
    # connection; the client stops being read well before 64 MiB.
    sk = hc.raw_connect(url)
    with LOCK:
        MADE[0] += 1
    sk.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % (1 << 20) + b"y" * (1 << 20) + b"\r\n"
    sent, closed = 0, False
    try:
        while sent < 64 and not closed:
            sk.sendall(chunk)
            sent += 1
            closed = hc.closed_by_server(sk)
    except OSError:
        closed = True
    t0 = time.time()
    while not closed and time.time() < t0 + 2:
        closed = hc.closed_by_server(sk)
        time.sleep(0.02)
    sk.close()
    check("queue_full_chunked_body_not_drained_forever", closed and 16 <= sent < 64, (sent, closed))
    s, h, b = counted(hc.request, url, "GET", "/v1/health/ready")
    check("not_ready_while_queue_full", s == 503 and (hc.as_json(b) or {}).get("ready") is False, (s, b[:200]))
    s, _, _ = counted(hc.request, url, "GET", "/v1/health/live")
    check("live_while_queue_full", s == 200, s)
    t.join(30)
    check("held_studies_answered", [r[0] for r in held.res] == [200] * 4, [(r[0], r[2][:100]) for r in held.res])
    s, _, b = counted(hc.request, url, "GET", "/v1/health/ready")
    check("ready_again", s == 200 and hc.as_json(b)["ready"] is True, (s, b[:200]))

    # Deadline: a 300 ms deadline while the scheduler holds the study 1.5 s.
    t0 = time.time()
    s, h, b = post(url, study, {"X-Request-Timeout-Ms": "300"})
    dt = time.time() - t0
    msg = (hc.as_json(b) or {}).get("error", "")
    check("deadline_503_retry_after", s == 503 and h.get("retry-after") == "1" and "deadline" in msg and dt < 1.2,
          (s, h, msg, dt))
    s, _, b = post(url, study, {"X-Request-Timeout-Ms": "soon"})
    check("bad_timeout_header_400", s == 400 and "X-Request-Timeout-Ms" in b.decode(), (s, b[:200]))

    # A client that leaves while queued is dropped, never computed.
    mid = settled(url)
    parts = [("images", os.path.basename(p), "image/png", open(p, "rb").read()) for p in study]
    body, ctype = hc.multipart(parts)
    sk = hc.raw_connect(url)
    with LOCK:
        MADE[0] += 1
    sk.sendall(("POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (ctype, len(body))).encode() + body)
    time.sleep(0.4)
    sk.close()
    time.sleep(1.8)   # past the 1.5 s hold
    end = adds_up(url, "metrics_add_up_held")
    d = lambda k: end[k] - mid[k]  # noqa: E731
    check("client_gone_dropped_not_computed",
          d('mskx_predict_rejected_total{reason="client_gone"}') == 1 and d("mskx_images_processed_total") == 0 and
          d("mskx_batch_size_count") == 0 and d('mskx_requests_total{outcome="failed"}') == 1,
          {k: d(k) for k in end if "rejected_total" in k or "batch_size_count" in k or "images_processed" in k})
    fin = metrics(url)
    # queue full: the plain 503, the 100-continue, the drained and the chunked request
    check("refusals_counted_by_reason", fin['mskx_predict_rejected_total{reason="queue_full"}'] == 4 and
          fin['mskx_predict_rejected_total{reason="deadline"}'] == 1, {k: v for k, v in fin.items() if "rejected" in k})
    waits = [fin[k] for k in fin if k.startswith("mskx_queue_wait_seconds_bucket")]
    check("queue_wait_histogram", waits == sorted(waits) and fin['mskx_queue_wait_seconds_bucket{le="+Inf"}'] ==
          fin["mskx_queue_wait_seconds_count"] > 0 and fin["mskx_queue_wait_seconds_sum"] > 1.0, fin.get("mskx_queue_wait_seconds_sum"))


def many(url, pid, fx):
    study = [os.path.join(fx, "study", n) for n in ("image1.png", "image2.png", "image3.png")]
    ref = json.load(open(os.path.join(fx, "ref.json")))[0]

    def client():
        out = []
        for _ in range(4):
            try:
                s, h, b = post(url, study)
            except OSError as e:
                print("info: %r" % e)
                out.append(False)
                continue
            j = hc.as_json(b) or {}
            out.append(s == 200 and abs(j.get("probability", -1) - ref["probability"]) < 1e-5)
            if s != 200:
                print("info: %d %s" % (s, b[:200]))
        return out
    res = in_threads([client] * 32)
    good = sum(sum(r) for r in res if isinstance(r, list))
    check("clients_32_all_answered", good == 128, "%d of 128 answered 200 with the reference probability" % good)
    v = adds_up(url, "metrics_add_up_many")
    check("clients_32_none_refused", v['mskx_requests_total{outcome="refused"}'] == 0, v)
    check("clients_32_batched", v["mskx_batch_size_sum"] == 384 and v["mskx_batch_size_count"] <= 128, v["mskx_batch_size_count"])
    print("info: 32 clients x 4 studies: %d batches, %.1f images per batch" %
          (v["mskx_batch_size_count"], v["mskx_batch_size_sum"] / max(1, v["mskx_batch_size_count"])))


def main():
    url, pid, fx = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    {"held": held, "many": many}[sys.argv[1]](url, pid, fx)
    return 1 if hc.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
