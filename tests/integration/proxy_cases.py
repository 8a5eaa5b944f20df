#!/usr/bin/env python3
"""Declarative request/response cases for `sluice proxy` (data: proxy-cases.txt).

Starts the proxy with two scripted upstreams ("a" and "b") on 127.0.0.1 ephemeral ports. For each
case a fresh client connection sends the exact `client` bytes; each scripted upstream step checks
the exact bytes the proxy forwarded (`upstream [NAME]`) and answers with `reply [NAME]` (or stays
silent for `reply [NAME]: @silent`, or closes that connection without answering for
`reply [NAME]: @close`); the client must then receive exactly the `response` bytes, and, with
`close: yes`, see the connection closed. After the response, no upstream may have received a
byte beyond the steps (a request is forwarded exactly as often as the steps say). With
`pooled: yes`, the first step must arrive on an upstream connection accepted before the case
began (one the proxy kept alive in its pool from an earlier case). Section bodies are written with escapes
(\\r \\n \\t \\xHH \\\\), one or more lines each indented by exactly two spaces (the
indentation and the line breaks of the file are not part of the bytes).

usage: proxy_cases.py SLUICE_BINARY CASES_FILE
"""
import json, os, re, select, shutil, socket, subprocess, sys, tempfile, time, urllib.request

TIMEOUT = 3.0


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == '\\' and i + 1 < len(s):
            n = s[i + 1]
            if n == 'r': out += b'\r'; i += 2; continue
            if n == 'n': out += b'\n'; i += 2; continue
            if n == 't': out += b'\t'; i += 2; continue
            if n == '\\': out += b'\\'; i += 2; continue
            if n == 'x': out.append(int(s[i + 2:i + 4], 16)); i += 4; continue
        out += c.encode()
        i += 1
    return bytes(out)


def load_cases(path):
    cases, case, target = [], None, None
    for raw in open(path, encoding='utf-8'):
        line = raw.rstrip('\n')
        if line.startswith('#'):
            continue
        m = re.match(r'^=== (.*)$', line)
        if m:
            case = {'name': m.group(1), 'steps': [], 'route': 'main', 'close': False,
                    'client': b'', 'response': b'', 'pause': 0.0, 'pooled': False}
            cases.append(case)
            target = None
            continue
        m = re.match(r'^(client|upstream|reply|response|route|close|pause|pooled)( [ab])?:(.*)$', line)
        if m and case is not None:
            key, who, rest = m.group(1), (m.group(2) or ' a').strip(), m.group(3).strip()
            target = None
            if key == 'route':
                case['route'] = rest
            elif key == 'close':
                case['close'] = rest == 'yes'
            elif key == 'pooled':
                case['pooled'] = rest == 'yes'
            elif key == 'pause':
                case['pause'] = float(rest)
            elif key == 'upstream':
                case['steps'].append({'who': who, 'upstream': b'', 'reply': b''})
                target = (case['steps'][-1], 'upstream')
            elif key == 'reply':
                if rest in ('@silent', '@close'):
                    case['steps'][-1]['reply'] = None
                    case['steps'][-1]['close'] = rest == '@close'
                else:
                    target = (case['steps'][-1], 'reply')
            else:
                target = (case, key)
            if target and rest:
                target[0][target[1]] += unescape(rest)
            continue
        if target is not None and line.startswith('  '):
            target[0][target[1]] += unescape(line[2:])
    return cases


class Upstream:
    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.pending = {}

    def poll(self, t):
        r, _, _ = select.select([self.ls] + self.conns, [], [], t)
        for s in r:
            if s is self.ls:
                c, _ = self.ls.accept()
                self.conns.append(c)
                self.pending[c] = b''
            else:
                try:
                    d = s.recv(65536)
                except OSError:
                    d = b''
                if not d:
                    self.conns.remove(s)
                    self.pending.pop(s, None)
                    s.close()
                else:
                    self.pending[s] += d

    def expect(self, want, deadline):
        """Waits until one connection received len(want) bytes; returns (conn, bytes)."""
        while time.time() < deadline:
            for c, got in self.pending.items():
                if len(got) >= len(want) and got:
                    self.pending[c] = got[len(want):]
                    return c, got[:len(want)]
            self.poll(0.02)
        for c, got in self.pending.items():
            if got:
                return c, got
        return None, b''

    def drop(self, c):
        """Closes connection c (after reading a request: the server went away without answering)."""
        self.conns.remove(c)
        self.pending.pop(c, None)
        c.close()

    def idle_bytes(self):
        self.poll(0.05)
        return b''.join(self.pending.values())


def free_ports(n):
    """n distinct free ports: all bound at once, then released (one at a time, two calls could
    be given the same port)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def show(b):
    return repr(b)[2:-1]


def main():
    sluice, cases_file = sys.argv[1], sys.argv[2]
    cases = load_cases(cases_file)
    ups = {'a': Upstream(), 'b': Upstream()}
    # nothing listens there: connect failures. The socket stays bound (not listening) for the
    # whole run, so no listener the proxy opens on port 0 can be given this port (it once was:
    # the "down" route then proxied to the proxy itself, and the looping request grew to a 431)
    dead_sock = socket.socket()
    dead_sock.bind(('127.0.0.1', 0))
    dead = dead_sock.getsockname()[1]
    admin, shared = free_ports(2)  # shared: one listener, two routes told apart by Host and path prefix
    cfg = {
        'admin': '127.0.0.1:%d' % admin, 'workers': 1,
        'limits': {'max_head': 1024, 'max_headers': 10, 'max_body': 1000,
                   'client_timeout_ms': 600, 'upstream_timeout_ms': 600},
        'routes': [
            {'name': 'main', 'listen': '127.0.0.1:0', 'pin_header': 'X-Sluice-Version',
             'versions': [{'version': 'v1', 'weight': 1, 'backends': ['127.0.0.1:%d' % ups['a'].port]},
                          {'version': 'v2', 'weight': 0, 'backends': ['127.0.0.1:%d' % ups['b'].port]}]},
            {'name': 'down', 'listen': '127.0.0.1:0',
             'versions': [{'version': 'v1', 'weight': 1, 'backends': ['127.0.0.1:%d' % dead]}]},
            {'name': 'retry', 'listen': '127.0.0.1:0',
             'versions': [{'version': 'v1', 'weight': 1,
                           'backends': ['127.0.0.1:%d' % dead, '127.0.0.1:%d' % ups['a'].port]}]},
            {'name': 'vh-a', 'listen': '127.0.0.1:%d' % shared, 'hosts': ['a.test', '*.wild.test'],
             'versions': [{'version': 'v1', 'weight': 1, 'backends': ['127.0.0.1:%d' % ups['a'].port]}]},
            {'name': 'vh-b', 'listen': '127.0.0.1:%d' % shared, 'hosts': ['B.test', 'A.test'],
             'path_prefix': '/b',
             'versions': [{'version': 'v1', 'weight': 1, 'backends': ['127.0.0.1:%d' % ups['b'].port]}]},
        ]}
    tmp = tempfile.mkdtemp(prefix='sluice-proxy-cases-')
    with open(os.path.join(tmp, 'proxy.json'), 'w') as f:
        json.dump(cfg, f)
    log = open(os.path.join(tmp, 'proxy.log'), 'w')
    proc = subprocess.Popen([sluice, 'proxy', '--config', os.path.join(tmp, 'proxy.json')],
                            stderr=log, stdout=log)
    fails = 0
    try:
        base = 'http://127.0.0.1:%d' % admin
        for _ in range(200):  # 10 s: a sanitizer build on a busy machine starts slowly
            try:
                urllib.request.urlopen(base + '/healthz', timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        if proc.poll() is not None:
            log.flush()
            print('FAIL: the proxy exited at start (%s):\n%s' % (proc.returncode,
                  open(os.path.join(tmp, 'proxy.log')).read()))
            return 1
        routes = json.loads(urllib.request.urlopen(base + '/v1/routes').read())['routes']
        ports = {r['name']: int(r['listen'].rsplit(':', 1)[1]) for r in routes}
        for case in cases:
            err = run_case(case, ports, ups)
            if err:
                fails += 1
                print('FAIL: %s\n  %s' % (case['name'], err))
            else:
                print('ok:   %s' % case['name'])
        m = json.loads(urllib.request.urlopen(base + '/v1/metrics').read())
        down = m['routes']['down']['versions']['v1']
        if down['upstream_errors'] < 1 or down['responses']['5xx'] < 1:
            fails += 1
            print('FAIL: metrics: connect failures must count as upstream errors and 5xx: %s' %
                  json.dumps({k: down[k] for k in ('requests', 'responses', 'upstream_errors')}))
        else:
            print('ok:   metrics count the upstream errors of route "down"')
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            fails += 1
            print('FAIL: the proxy did not exit within 5 s of SIGTERM')
    if proc.returncode not in (0, None) and proc.returncode != -9:
        print('FAIL: proxy exit status %s' % proc.returncode)
        fails += 1
    log.close()
    text = open(os.path.join(tmp, 'proxy.log'), errors='replace').read()
    if re.search(r'AddressSanitizer|LeakSanitizer|runtime error', text):
        print('FAIL: sanitizer report in the proxy log')
        fails += 1
    if fails:
        print('proxy log: %s' % os.path.join(tmp, 'proxy.log'))
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print('%d cases, %d failed' % (len(cases) + 1, fails))
    return 1 if fails else 0


def run_case(case, ports, ups):
    for u in ups.values():
        stray = u.idle_bytes()
        if stray:
            return 'upstream got bytes before the case started: %s' % show(stray)
    before = {w: set(u.conns) for w, u in ups.items()}
    c = socket.create_connection(('127.0.0.1', ports[case['route']]))
    c.sendall(case['client'])
    if case['pause']:
        time.sleep(case['pause'])
    got = b''
    deadline = time.time() + TIMEOUT
    for i, st in enumerate(case['steps']):
        u = ups[st['who']]
        conn, data = u.expect(st['upstream'], deadline)
        if data != st['upstream']:
            c.close()
            return 'upstream %s received:\n    %s\n  expected:\n    %s' % (st['who'], show(data), show(st['upstream']))
        if i == 0 and case['pooled'] and conn not in before[st['who']]:
            c.close()
            return 'the request came on a new upstream connection, not on a pooled one'
        if st.get('close'):
            u.drop(conn)
        elif st.get('reply') is not None:
            conn.sendall(st['reply'])
    want = case['response']
    c.settimeout(0.1)
    closed = False
    while time.time() < deadline and len(got) < len(want):
        try:
            d = c.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not d:
            closed = True
            break
        got += d
    if got != want:
        c.close()
        return 'client received:\n    %s\n  expected:\n    %s' % (show(got), show(want))
    for w, u in ups.items():
        extra = u.idle_bytes()
        if extra:
            c.close()
            return 'upstream %s received more than the case expects:\n    %s' % (w, show(extra))
    if case['close'] and not closed:
        try:
            c.settimeout(TIMEOUT)
            d = c.recv(1)
            closed = d == b''
        except (socket.timeout, ConnectionResetError):
            closed = not isinstance(sys.exc_info()[1], socket.timeout)
        if not closed:
            c.close()
            return 'the proxy did not close the connection'
    c.close()
    return None


if __name__ == '__main__':
    sys.exit(main())
