#!/usr/bin/env python3
"""How long a host takes to seat N plain peers that all arrive at once.

Usage: benches/joins.py [N]   (default 10000; needs a release build: cargo build --release)

Starts `tchat --host --headless` on a free loopback port with the per-address limits off
(every peer comes from 127.0.0.1), opens N connections, has each say a blank line (which
seats a plain peer at once and says nothing to the room), and times until every one has
its welcome. Prints the time and the host's CPU and memory.
"""
import os
import selectors
import socket
import subprocess
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCHAT = os.path.join(ROOT, "target", "release", "tchat")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_ready(sel, pending, timeout):
    """Read every connection that has something; a welcomed one is done (buffer None)."""
    for key, _ in sel.select(timeout=timeout):
        sock, buf = pending[key.fd]
        buf += sock.recv(65536)
        if b"*** you are" in buf:
            sel.unregister(sock)
            buf = None
        pending[key.fd] = (sock, buf)


def main():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host = subprocess.Popen(
        [TCHAT, "--host", "--headless", "--bind", "127.0.0.1", "--port", "0",
         "--max-peers", str(N + 10), "--max-per-address", "0", "--joins-per-minute", "0",
         "--addr-burst", "0"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TCHAT_CONFIG": "/dev/null"})
    line = host.stderr.readline()
    addr = line.strip().rsplit(" ", 1)[-1]
    ip, port = addr.rsplit(":", 1)
    # The host logs every join to stderr: read it away on a thread.
    import threading
    threading.Thread(target=lambda: [None for _ in host.stderr], daemon=True).start()
    cpu0 = cpu_seconds(host.pid)
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    pending = {}
    for _ in range(N):
        s = socket.create_connection((ip, int(port)))
        s.setblocking(False)
        s.sendall(b"\n")
        pending[s.fileno()] = (s, b"")
        sel.register(s, selectors.EVENT_READ)
        # Keep the kernel's accept queue from overflowing: read what is ready.
        read_ready(sel, pending, 0)
    while any(buf is not None for _, buf in pending.values()):
        read_ready(sel, pending, 30)
    took = time.monotonic() - started
    print(f"joins={N} seconds={took:.2f} host_cpu_s={cpu_seconds(host.pid) - cpu0:.2f} "
          f"host_rss_kb={rss_kb(host.pid)}")
    host.terminate()
    host.wait()


if __name__ == "__main__":
    main()
