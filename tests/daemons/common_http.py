#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the metrics endpoint of ctl_testd (see common_http.sh).

    common_http.py PORT first|second VERSION

"first": the counters of the feed, no reload, no save (last snapshot 0),
and the HTTP behaviour: 200, 404, 405, 400, a request that is too long,
slow clients that do not hold others up and are dropped after 5 seconds.
"second": after one bad reload, one good reload and a save.
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenario  # noqa: E402

PORT = int(sys.argv[1])
# The library's version, as include/obspam.h says it.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "include", "obspam.h")) as _h:
    _HEADER = _h.read()
VERSION = ".".join(
    re.search(rf"^#define OBSPAM_VERSION_{part} +(\d+)$", _HEADER,
              re.M).group(1) for part in ("MAJOR", "MINOR", "PATCH"))
STAGE = sys.argv[2]
VERSION = sys.argv[3]  # libobspam's, as obspam_build_info says it


def request(data, timeout=10.0):
    """Sends raw bytes, returns (status line, headers, body) of the answer."""
    raw = scenario.exchange(("127.0.0.1", PORT), data, timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        headers[k.lower()] = v
    return lines[0], headers, body


def get(path="/metrics", version="HTTP/1.0"):
    return request(f"GET {path} {version}\r\nHost: localhost\r\n\r\n".encode())


def check_format(text):
    """Prometheus text format 0.0.4: HELP and TYPE before each family's
    samples, sample lines NAME{LABELS} VALUE."""
    sample = re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
        r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
        r'(-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?|[-+]Inf|NaN)$')
    assert text.endswith("\n"), "no final newline"
    helped, typed = set(), {}
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name in helped, f"TYPE before HELP: {line}"
            typed[name] = kind
        else:
            m = sample.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            family = re.sub(r"_(bucket|sum|count)$", "", name) \
                if name not in typed else name
            assert family in typed, f"sample before its TYPE: {line}"


def metrics():
    status, headers, body = get()
    assert status == "HTTP/1.0 200 OK", status
    assert headers["content-type"] == \
        "text/plain; version=0.0.4; charset=utf-8", headers
    assert int(headers["content-length"]) == len(body), headers
    text = body.decode("utf-8")
    check_format(text)
    return text


def has(text, line):
    assert ("\n" + line + "\n") in ("\n" + text), \
        f"missing line {line!r} in:\n{text}"


def value(text, name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    assert m, f"no {name} in:\n{text}"
    return float(m.group(1))


def first():
    text = metrics()
    for line in [
            'obspam_decisions_total{action="accept"} 3',
            'obspam_decisions_total{action="refuse"} 3',
            'obspam_decisions_total{action="exempt"} 1',
            'obspam_decisions_total{action="unknown"} 2',
            'obspam_refusals_total{level="subscription"} 0',
            'obspam_refusals_total{level="domain"} 1',
            'obspam_refusals_total{level="mailbox"} 2',
            "obspam_connections_open 2",
            "obspam_connections_total 3",
            "obspam_requests_bad_total 2",
            'obspam_request_duration_seconds_bucket{le="+Inf"} 9',
            "obspam_request_duration_seconds_count 9",
            'obspam_config_reloads_total{result="ok"} 0',
            'obspam_config_reloads_total{result="failed"} 0',
            'obspam_snapshot_saves_total{result="ok"} 0',
            'obspam_snapshot_saves_total{result="failed"} 0',
            "obspam_snapshot_last_success_timestamp_seconds 0",
            "obspam_notices_total 0",
            f'obspam_build_info{{daemon="ctl_testd",version="{VERSION}"}} 1']:
        has(text, line)
    # The buckets never decrease, and end at the count.
    buckets = [int(v) for v in re.findall(
        r'^obspam_request_duration_seconds_bucket\{le="[^"]+"\} (\d+)$',
        text, re.M)]
    assert len(buckets) == 13 and buckets == sorted(buckets), buckets
    assert buckets[-1] == 9, buckets

    # HTTP/1.1 and a query string are fine; the answer is HTTP/1.0 and the
    # connection closes after it.
    status, _, body = get("/metrics?x=1", "HTTP/1.1")
    assert status == "HTTP/1.0 200 OK" and body.startswith(b"# HELP"), status
    for path in ("/", "/metricsx", "/metrics/", "/favicon.ico"):
        status, _, body = get(path)
        assert status == "HTTP/1.0 404 Not Found", (path, status)
        assert body == b"404 Not Found\n", body
    for method in ("POST", "HEAD", "PUT", "get"):
        status, headers, _ = request(
            f"{method} /metrics HTTP/1.0\r\n\r\n".encode())
        assert status == "HTTP/1.0 405 Method Not Allowed", (method, status)
        assert headers["allow"] == "GET", headers
    for junk in (b"hello\r\n\r\n", b"GET /metrics\r\n\r\n",
                 b"GET /metrics FTP/1.0\r\n\r\n", b"\n\n"):
        status, _, body = request(junk)
        assert status == "HTTP/1.0 400 Bad Request", (junk, status)
    # A request that never ends its headers within 4096 bytes.
    status, _, _ = request(b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 5000)
    assert status == "HTTP/1.0 400 Bad Request", status

    # Slow clients: idle connections do not hold up another client, and
    # are closed by the server after 5 seconds.
    idle = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", PORT), 10)
        s.sendall(b"GET /met")
        idle.append(s)
    t = time.monotonic()
    metrics()
    assert time.monotonic() - t < 2, "a scrape waited for idle clients"
    t = time.monotonic()
    for s in idle:
        assert s.recv(100) == b"", "an idle client got an answer"
        s.close()
    took = time.monotonic() - t
    assert took < 8, took
    # The endpoint's bad requests are not the mail traffic's.
    text = metrics()
    has(text, "obspam_requests_bad_total 2")


def second():
    text = metrics()
    has(text, 'obspam_config_reloads_total{result="ok"} 1')
    has(text, 'obspam_config_reloads_total{result="failed"} 1')
    has(text, 'obspam_snapshot_saves_total{result="ok"} 1')
    has(text, 'obspam_snapshot_saves_total{result="failed"} 0')
    saved = value(text, "obspam_snapshot_last_success_timestamp_seconds")
    assert 0 <= time.time() - saved <= 5, saved
    has(text, 'obspam_decisions_total{action="accept"} 3')


{"first": first, "second": second}[STAGE]()
print(f"metrics endpoint: {STAGE} checks passed")
