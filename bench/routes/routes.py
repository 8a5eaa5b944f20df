#!/usr/bin/env python3
"""The driver of bench/routes/run.sh (see there): starts `sluice proxy`, loads N routes, measures.

usage: routes.py SLUICE TMPDIR UPSTREAM_A_PORT UPSTREAM_B_PORT   (settings in the environment)
"""
import http.client, json, os, re, socket, statistics, subprocess, sys, threading, time

sluice, tmp, upa, upb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
N, MODE, WORKERS = int(os.environ['N']), os.environ['MODE'], int(os.environ['WORKERS'])
ROUNDS, DURATION, RATE = int(os.environ['ROUNDS']), int(os.environ['DURATION']), int(os.environ['RATE'])
STATE, CONNS = os.environ['STATE'] == '1', int(os.environ['CONNS'])


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


def admin_cpu_ms(pid):
    """CPU time of the proxy's admin thread (the main thread: it runs the admin loop)."""
    f = open('/proc/%d/task/%d/stat' % (pid, pid)).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000.0 / os.sysconf('SC_CLK_TCK')


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float('nan')


admin, shared = free_port(), free_port()
cfg = {'admin': '127.0.0.1:%d' % admin, 'workers': WORKERS, 'routes': []}
with open(os.path.join(tmp, 'proxy.json'), 'w') as f:
    json.dump(cfg, f)
args = [sluice, 'proxy', '--config', os.path.join(tmp, 'proxy.json')]
if STATE:
    args += ['--state', os.path.join(tmp, 'routes-state.json')]
log = open(os.path.join(tmp, 'proxy.log'), 'w')
proc = subprocess.Popen(args, stdout=log, stderr=log)


class Admin:
    def __init__(self):
        self.c = http.client.HTTPConnection('127.0.0.1', admin, timeout=10)

    def call(self, method, path, body=None):
        for attempt in range(2):
            try:
                self.c.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={'Content-Type': 'application/json'})
                r = self.c.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = http.client.HTTPConnection('127.0.0.1', admin, timeout=10)
                if attempt:
                    raise


def route(i, port):
    r = {'listen': '127.0.0.1:%d' % port,
         'versions': [{'version': 'v1', 'weight': 1, 'backends': ['127.0.0.1:%d' % port_of[i]]}]}
    if MODE == 'shared':
        r['hosts'] = ['svc%d.bench' % i]
    return r


def probe(i, port):
    """One request to route i through the proxy on a new connection: the answering backend."""
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.sendall(b'GET / HTTP/1.1\r\nHost: svc%d.bench\r\nConnection: close\r\n\r\n' % i)
    data = b''
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data[-2:-1]


try:
    a = Admin()
    for _ in range(100):
        try:
            if a.call('GET', '/healthz')[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    # the serving process (with --state, proc.pid is its keeper, which only holds the listeners)
    spid = json.loads(a.call('GET', '/healthz')[1])['pid']
    rss0 = rss_kib(spid)
    port_of = [upa] * N
    listen = {}
    cpu0 = admin_cpu_ms(spid)
    t0 = time.time()
    put_ms = []
    for i in range(N):
        t = time.perf_counter()
        st, body = a.call('PUT', '/v1/routes/svc%d.production.r1' % i, route(i, shared if MODE == 'shared' else 0))
        put_ms.append((time.perf_counter() - t) * 1000)
        if st != 200:
            sys.exit('PUT route %d: %d %s' % (i, st, body[:300]))
        if MODE == 'own':
            listen[i] = int(json.loads(body)['listen'].rsplit(':', 1)[1])
        else:
            listen[i] = shared
    load_s = time.time() - t0
    load_cpu = admin_cpu_ms(spid) - cpu0
    time.sleep(0.5)
    rss1 = rss_kib(spid)
    t = time.perf_counter()
    st, body = a.call('GET', '/v1/metrics')
    metrics_ms = (time.perf_counter() - t) * 1000
    print('== %d routes, %s listener%s, %d workers, --state %s' % (
        N, MODE, '' if MODE == 'shared' else 's', WORKERS, 'on' if STATE else 'off'))
    print('load: %d PUTs in %.2f s; PUT of a new route: median %.2f ms, p99 %.2f ms, last 100 median %.2f ms'
          % (N, load_s, statistics.median(put_ms), pct(put_ms, 0.99), statistics.median(put_ms[-100:])))
    print('admin thread CPU while loading: %.0f ms, %.0f us per PUT (parse, build, index, answer)'
          % (load_cpu, load_cpu * 1000 / N))
    print('memory: RSS %.1f MiB empty, %.1f MiB with %d routes: %.2f KiB per route'
          % (rss0 / 1024, rss1 / 1024, N, (rss1 - rss0) / N))
    print('GET /v1/metrics: %d KiB in %.1f ms (the admin thread answers nothing else meanwhile)'
          % (len(body) // 1024, metrics_ms))
    if probe(0, listen[0]) != b'a':
        sys.exit('route 0 does not answer through the proxy')

    # updates: replace routes 1..N-1 in turn (backend a <-> b), RATE per second
    upd = {'put': [], 'apply': [], 'stale': 0, 'err': 0}
    stop = threading.Event()

    def updater(control=False):
        """control: the same loop (admin call, probes) with a GET instead of the PUT, so that the
        driver's own CPU is told apart from what the replacements cost the route under load."""
        ua = Admin()
        k, period = 1, 1.0 / RATE
        nxt = time.perf_counter()
        while not stop.is_set():
            if not control:
                port_of[k] = upb if port_of[k] == upa else upa
            want = b'a' if port_of[k] == upa else b'b'
            t = time.perf_counter()
            if control:
                st, _ = ua.call('GET', '/v1/routes/svc%d.production.r1' % k)
            else:
                st, _ = ua.call('PUT', '/v1/routes/svc%d.production.r1' % k, route(k, listen[k]))
            t1 = time.perf_counter()
            if st != 200:
                upd['err'] += 1
            if control:
                probe(k, listen[k])
                k = k + 1 if k + 1 < N else 1
                nxt += period
                time.sleep(max(0, nxt - time.perf_counter()))
                continue
            got = probe(k, listen[k])
            while got != want and time.perf_counter() - t < 1:
                upd['stale'] += 1
                got = probe(k, listen[k])
            t2 = time.perf_counter()
            upd['put'].append((t1 - t) * 1000)
            upd['apply'].append((t2 - t) * 1000)
            k = k + 1 if k + 1 < N else 1
            nxt += period
            time.sleep(max(0, nxt - time.perf_counter()))

    def wrk():
        out = subprocess.run(['wrk', '-t1', '-c%d' % CONNS, '-d%ds' % DURATION, '--latency',
                              '-H', 'Host: svc0.bench', 'http://127.0.0.1:%d/' % listen[0]],
                             capture_output=True, text=True).stdout
        def unit(v, u):
            return float(v) * {'us': 0.001, 'ms': 1, 's': 1000}[u]
        m = re.search(r'99%\s+([\d.]+)(us|ms|s)', out)
        p50 = re.search(r'50%\s+([\d.]+)(us|ms|s)', out)
        rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
        reqs = int(re.search(r'(\d+) requests in', out).group(1))
        non2 = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
        se = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)', out)
        failed = (int(non2.group(1)) if non2 else 0) + (sum(int(x) for x in se.groups()) if se else 0)
        return {'rps': rps, 'p50': unit(*p50.groups()), 'p99': unit(*m.groups()), 'reqs': reqs,
                'failed': failed}

    res = {'quiet': [], 'control': [], 'updates': []}
    for r in range(ROUNDS):
        for kind in (('quiet', 'control', 'updates') if r % 2 == 0 else ('updates', 'control', 'quiet')):
            if kind != 'quiet':
                stop.clear()
                th = threading.Thread(target=updater, args=(kind == 'control',))
                n0 = len(upd['put'])
                c0 = admin_cpu_ms(spid)
                th.start()
            w = wrk()
            if kind != 'quiet':
                stop.set()
                th.join()
                w['n'] = len(upd['put']) - n0
                if kind == 'updates':
                    upd.setdefault('cpu', []).append((admin_cpu_ms(spid) - c0, w['n']))
            res[kind].append(w)
    print('wrk on route svc0 (-t1 -c%d, %d s, %d rounds, medians; updates: the other routes replaced at %d/s,'
          % (CONNS, DURATION, ROUNDS, RATE))
    print('  each followed by probe requests; control: the same driver with a GET instead of the PUT):')
    print('  %-8s %9s %9s %9s %9s %8s' % ('', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'failed'))
    for kind in ('quiet', 'control', 'updates'):
        xs = res[kind]
        print('  %-8s %9.0f %9.2f %9.2f %9d %8d' % (
            kind, statistics.median(x['rps'] for x in xs), statistics.median(x['p50'] for x in xs),
            statistics.median(x['p99'] for x in xs), sum(x['reqs'] for x in xs), sum(x['failed'] for x in xs)))
    q, c, u = (statistics.median(x['p99'] for x in res[k]) for k in ('quiet', 'control', 'updates'))
    print('  p99 with updates / control: %.2f, / quiet: %.2f; p99 per round: quiet %s; control %s; updates %s' % (
        u / c, u / q, ' '.join('%.2f' % x['p99'] for x in res['quiet']),
        ' '.join('%.2f' % x['p99'] for x in res['control']),
        ' '.join('%.2f' % x['p99'] for x in res['updates'])))
    P, A = upd['put'], upd['apply']
    print('route updates: %d (PUT errors %d); PUT answered: median %.2f ms, p99 %.2f ms, max %.2f ms'
          % (len(P), upd['err'], statistics.median(P), pct(P, 0.99), max(P)))
    print('  applied (PUT sent -> first request through the proxy reaching the new backend): '
          'median %.2f ms, p99 %.2f ms, max %.2f ms; probes that still saw the old backend: %d'
          % (statistics.median(A), pct(A, 0.99), max(A), upd['stale']))
    print('  updates over 10 ms to apply: %d of %d' % (sum(1 for x in A if x > 10), len(A)))
    cpu = sum(c for c, _ in upd['cpu']); n = sum(k for _, k in upd['cpu'])
    print('  admin thread CPU during the update rounds: %.0f us per replacement (the rest of the '
          'wall time is waiting for a core)' % (cpu * 1000 / max(n, 1)))
    # the same replacements with no other traffic: the cost of an update itself
    P0, A0 = len(upd['put']), len(upd['apply'])
    stop.clear()
    th = threading.Thread(target=updater)
    th.start()
    time.sleep(DURATION)
    stop.set()
    th.join()
    P, A = upd['put'][P0:], upd['apply'][A0:]
    print('without traffic: %d updates; PUT answered: median %.2f ms, p99 %.2f ms; applied: median %.2f ms, '
          'p99 %.2f ms, max %.2f ms; over 10 ms: %d' % (len(P), statistics.median(P), pct(P, 0.99),
          statistics.median(A), pct(A, 0.99), max(A), sum(1 for x in A if x > 10)))
    rss2 = rss_kib(spid)
    print('memory after the updates: RSS %.1f MiB' % (rss2 / 1024))
finally:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
