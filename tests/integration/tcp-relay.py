#!/usr/bin/env python3
"""A TCP relay for the network-cut tests: LISTEN_PORT on 127.0.0.1 -> TARGET_HOST:TARGET_PORT.

The test cuts the network with it: SIGSTOP freezes every connection (bytes are accepted by the
kernel but go nowhere, as on a partitioned link), SIGCONT resumes it; killing it resets every
connection and refuses new ones until it is started again. Nothing else: no parsing, no delay.
Usage: tcp-relay.py LISTEN_PORT TARGET_HOST TARGET_PORT
"""
import selectors
import socket
import sys

BUF = 65536


def main():
    lport, thost, tport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(64)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    peer = {}

    def close(s):
        for x in (s, peer.pop(s, None)):
            if x is None:
                continue
            peer.pop(x, None)
            try:
                sel.unregister(x)
            except (KeyError, ValueError):
                pass
            x.close()

    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept()
                try:
                    u = socket.create_connection((thost, tport), timeout=5)
                except OSError:
                    c.close()
                    continue
                for x in (c, u):
                    x.setblocking(True)  # a slow side blocks the relay: it only tests cuts
                    sel.register(x, selectors.EVENT_READ, None)
                peer[c], peer[u] = u, c
                continue
            if s not in peer:
                continue
            try:
                data = s.recv(BUF)
                if data:
                    peer[s].sendall(data)
                    continue
            except OSError:
                pass
            close(s)


if __name__ == "__main__":
    main()
