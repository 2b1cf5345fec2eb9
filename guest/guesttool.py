#!/usr/bin/env python3
"""Small helper for guest/smoke.sh and for measuring the guest by hand.

  guesttool.py wait-http URL TIMEOUT_S [SINCE_EPOCH_S]
        poll URL until it answers JSON; print {"after_s": ..., "answer": {...}}
  guesttool.py get URL                       print the JSON answer
  guesttool.py poll URL SECONDS INTERVAL_MS  poll like a monitoring client; print
        {"requests", "failures", "max_latency_ms", "max_gap_ms", "first", "last"}
  guesttool.py qmp SOCKET COMMAND [ARGS_JSON]  run one QMP command, print its return
  guesttool.py qmp-wait-event SOCKET EVENT TIMEOUT_S  wait for a QMP event
"""
import json
import socket
import sys
import time
import urllib.parse


def http_get(url, timeout=2.0, connect_timeout=None):
    u = urllib.parse.urlsplit(url)
    host, port = u.hostname, u.port or 80
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    s = socket.create_connection((host, port), timeout=connect_timeout or timeout)
    try:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"bad status: {status!r}")
    return json.loads(body)


def wait_http(url, timeout, since=None):
    t0 = since if since is not None else time.time()
    deadline = time.time() + timeout
    last_err = None
    while time.time() < deadline:
        try:
            ans = http_get(url, timeout=1.0, connect_timeout=0.2)
            print(json.dumps({"after_s": round(time.time() - t0, 3), "answer": ans}))
            return 0
        except Exception as e:  # not up yet
            last_err = e
            time.sleep(0.02)
    print(json.dumps({"error": f"no answer from {url} in {timeout}s: {last_err}"}))
    return 1


def poll(url, seconds, interval_ms):
    end = time.time() + seconds
    n = fails = 0
    max_lat = max_gap = 0.0
    first = last = None
    last_ok = time.time()
    while time.time() < end:
        t = time.time()
        try:
            ans = http_get(url, timeout=2.0)
            lat = time.time() - t
            max_lat = max(max_lat, lat)
            max_gap = max(max_gap, time.time() - last_ok)
            last_ok = time.time()
            first = first or ans
            last = ans
        except Exception:
            fails += 1
        n += 1
        time.sleep(max(0.0, interval_ms / 1000.0 - (time.time() - t)))
    print(json.dumps({"requests": n, "failures": fails, "max_latency_ms": round(max_lat * 1000, 1),
                      "max_gap_ms": round(max_gap * 1000, 1), "first": first, "last": last}))
    return 0 if fails == 0 else 1


class QMP:
    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"no QMP greeting: {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r.get("return")

    def wait_event(self, name, timeout):
        deadline = time.time() + timeout
        for e in self.events:
            if e["event"] == name:
                return e
        while time.time() < deadline:
            self.s.settimeout(max(0.05, deadline - time.time()))
            try:
                r = self._read()
            except (socket.timeout, TimeoutError):
                break
            except RuntimeError:
                return None  # QEMU exited
            if r.get("event") == name:
                return r
        return None


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = argv[1]
    if cmd == "wait-http":
        return wait_http(argv[2], float(argv[3]), float(argv[4]) if len(argv) > 4 else None)
    if cmd == "get":
        print(json.dumps(http_get(argv[2])))
        return 0
    if cmd == "poll":
        return poll(argv[2], float(argv[3]), float(argv[4]))
    if cmd == "qmp":
        q = QMP(argv[2])
        print(json.dumps(q.cmd(argv[3], json.loads(argv[4]) if len(argv) > 4 else None)))
        return 0
    if cmd == "qmp-wait-event":
        q = QMP(argv[2])
        e = q.wait_event(argv[3], float(argv[4]))
        print(json.dumps(e))
        return 0 if e else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
