// Differential test: sluice's strict parser (through http-parse-dump) against llhttp: the parser
// inside node (process.versions.llhttp), driven through node's HTTPParser binding, and, when
// built, Debian's node-llhttp package (its generated C, through llhttp-c-dump).
//
// 1. Generates valid request variations (seeded, so runs repeat) that both parsers must accept,
//    and checks they agree on method, target, version, header fields, trailers, body framing
//    (the decoded body and where the message ends) and keep-alive. Any disagreement fails.
// 2. Feeds every case of tests/unit/http/cases/reject.txt to llhttp and reports, for
//    information, which of our rejections llhttp accepts.
//
// usage: node llhttp-diff.js PATH/http-parse-dump PATH/reject.txt [count [PATH/llhttp-c-dump]]
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');

const [dumper, rejectFile, countArg, cDumper] = process.argv.slice(2);
const COUNT = Number(countArg || process.env.LLHTTP_DIFF_COUNT || 400);
const { HTTPParser, methods } = require('_http_common');

// ---- llhttp side ----
function llhttpParse(buf) {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 0, 0); // no lenient flags: llhttp's strict defaults
  const r = { ok: false, headers: [], trailers: [], body: [], urlParts: [] };
  let headersDone = false, done = -1, off = 0;
  const pairs = (h, into) => { for (let i = 0; i < h.length; i += 2) into.push([h[i], h[i + 1]]); };
  p[HTTPParser.kOnHeaders] = (h, url) => {
    if (url) r.urlParts.push(url);
    pairs(h || [], headersDone ? r.trailers : r.headers);
  };
  p[HTTPParser.kOnHeadersComplete] = (maj, min, h, method, url, sc, sm, upgrade, ka) => {
    pairs(h || [], r.headers);
    r.method = methods[method];
    r.target = url || r.urlParts.join('');
    r.version = `${maj}.${min}`;
    r.keep_alive = !!ka;
    r.upgrade = !!upgrade;
    headersDone = true;
    return 0;
  };
  p[HTTPParser.kOnBody] = (b, start, len) => {
    r.body.push(Buffer.from(start === undefined ? b : b.subarray(start, start + len)));
  };
  p[HTTPParser.kOnMessageComplete] = () => { if (done < 0) done = off + 1; };
  // one byte at a time, so the end of the message is known exactly
  for (off = 0; off < buf.length && done < 0; off++) {
    const e = p.execute(buf.subarray(off, off + 1));
    if (e instanceof Error) {
      r.error = `${e.code}: ${e.reason || e.message}`;
      p.close();
      return r;
    }
  }
  p.close();
  if (done < 0) {
    r.error = 'incomplete';
    return r;
  }
  r.ok = true;
  r.consumed = done;
  r.body = Buffer.concat(r.body).toString('latin1');
  return r;
}

// ---- dumper programs: one process for all messages, one JSON line each ----
function runDumper(prog, bufs) {
  const input = Buffer.concat(bufs.flatMap(b => [Buffer.from(`${b.length}\n`), b]));
  const out = execFileSync(prog, [], { input, maxBuffer: 64 << 20 }).toString('utf8');
  return out.trim().split('\n').map(l => JSON.parse(l));
}
const oursParse = bufs => runDumper(dumper, bufs);

const engines = [{ name: `llhttp ${process.versions.llhttp} (inside node ${process.version})`,
  parse: bufs => bufs.map(llhttpParse) }];
if (cDumper && fs.existsSync(cDumper)) {
  const v = execFileSync(cDumper, ['--version']).toString().trim();
  // llhttp 8 hands values over with their trailing whitespace (RFC 9110 5.5 says it is not
  // part of the value; llhttp 9 and we remove it): trimmed here before comparing.
  const trim = pairs => (pairs || []).map(([k, v]) => [k, v.replace(/[ \t]+$/, '')]);
  engines.push({ name: `llhttp ${v} (Debian node-llhttp, its generated C, strict mode)`,
    parse: bufs => runDumper(cDumper, bufs).map(r => r.ok ? { ...r, headers: trim(r.headers), trailers: trim(r.trailers) } : r) });
}

// ---- generator ----
let seed = 0x51ce;
function rnd() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = a => a[Math.floor(rnd() * a.length)];
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const VCHAR = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('');

function token(n) { let s = ''; for (let i = 0; i < n; i++) s += pick(TCHAR); return s; }
function value() {
  const kind = int(0, 9);
  if (kind === 0) return '';
  let s = '';
  const n = int(1, 30);
  for (let i = 0; i < n; i++) {
    const c = int(0, 19);
    s += c === 0 ? ' ' : c === 1 ? '\t' : c === 2 && kind > 7 ? String.fromCharCode(int(0x80, 0xff)) : pick(VCHAR);
  }
  return s;
}
function ows() { return pick(['', '', ' ', '  ', '\t', ' \t']); }

const NAMES = ['Accept', 'User-Agent', 'X-Request-Id', 'Cookie', 'Authorization', 'Cache-Control',
  'If-None-Match', 'Accept-Encoding', 'X-Forwarded-For', 'Content-Type', 'Via', 'Referer'];
const METHODS = ['GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'PROPFIND', 'PURGE', 'REPORT', 'MKCOL'];
const TARGETS = ['/', '/v1/services', '/a/b/c', '/a?x=1&y=%20z', '/~user/%7Efile.txt', "/p;m=1/q?a=b&c=!$'()*,;=",
  '/search?q=a+b&lang=en', 'http://svc.example:8080/path?q=1', '/' + 'x'.repeat(200)];

function hexSize(n) {
  let h = n.toString(16);
  if (rnd() < 0.3) h = h.toUpperCase();
  if (rnd() < 0.2) h = '0'.repeat(int(1, 3)) + h;
  return h;
}
function bodyBytes(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += rnd() < 0.05 ? '\r\n' : String.fromCharCode(int(0, 255));
  return s.slice(0, n);
}

function generate() {
  let method = pick(METHODS);
  let target = pick(TARGETS);
  if (rnd() < 0.05) { method = 'OPTIONS'; target = '*'; }
  if (rnd() < 0.03) { method = 'CONNECT'; target = 'svc.example:443'; }
  const v10 = rnd() < 0.15;
  const lines = [];
  const fields = [];
  if (!v10 || rnd() < 0.5) fields.push(['Host', pick(['svc.example', 'svc.example:8080', '127.0.0.1:9000', '[::1]:80', 'a-b.c_d'])]);
  const n = int(0, 8);
  for (let i = 0; i < n; i++) fields.push([rnd() < 0.6 ? pick(NAMES) : 'X-' + token(int(1, 12)), value()]);
  if (rnd() < 0.3) fields.push(['Connection', pick(v10 ? ['keep-alive', 'close', 'Keep-Alive'] : ['close', 'keep-alive', 'Close'])]);
  // framing; CONNECT and 1.0 chunked are left out (refused or tunnelled)
  let framing = method === 'CONNECT' ? 0 : int(0, 2);
  if (v10 && framing === 2) framing = 1;
  let body = '';
  if (framing === 1) {
    const len = int(0, 60);
    body = bodyBytes(len);
    fields.push([pick(['Content-Length', 'content-length', 'CONTENT-LENGTH']), (rnd() < 0.1 ? '00' : '') + body.length]);
  } else if (framing === 2) {
    fields.push([pick(['Transfer-Encoding', 'transfer-encoding']), pick(['chunked', 'Chunked', 'CHUNKED'])]);
    const k = int(0, 4);
    for (let i = 0; i < k; i++) {
      const d = bodyBytes(int(1, 40));
      // (two extensions on one chunk, ";a=1;b=2", and whitespace before the ";" are valid
      // but llhttp 8 strict / llhttp 9 refuse them: listed with the known differences below)
      const ext = rnd() < 0.2 ? pick([';a=b', ';name', ';q="x y"']) : '';
      body += hexSize(d.length) + ext + '\r\n' + d + '\r\n';
    }
    body += '0' + (rnd() < 0.1 ? ';last' : '') + '\r\n';
    if (rnd() < 0.25) body += `X-Checksum: ${int(0, 99999)}\r\n`;
    body += '\r\n';
  }
  // shuffle the fields a little (Host first is not required)
  for (let i = fields.length - 1; i > 0; i--) {
    if (rnd() < 0.3) { const j = int(0, i); [fields[i], fields[j]] = [fields[j], fields[i]]; }
  }
  lines.push(`${method} ${target} HTTP/1.${v10 ? 0 : 1}`);
  // llhttp refuses whitespace after a Content-Length or Transfer-Encoding value and does not
  // see "close" in "Connection: close\t" (RFC 9110 strips it; we do), so these fields get
  // leading whitespace only: see the known differences printed at the end.
  const framingField = k => /^(content-length|transfer-encoding|connection)$/i.test(k);
  for (const [k, v] of fields) lines.push(`${k}:${ows()}${v}${v === '' || framingField(k) ? '' : ows()}`);
  const head = lines.join('\r\n') + '\r\n\r\n';
  // a following pipelined request must not change anything
  const next = rnd() < 0.2 ? 'GET /next HTTP/1.1\r\nHost: n\r\n\r\n' : '';
  return Buffer.from(head + body + next, 'latin1');
}

// ---- compare ----
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }
function show(buf) { return JSON.stringify(buf.toString('latin1')).slice(0, 400); }

const msgs = [];
for (let i = 0; i < COUNT; i++) msgs.push(generate());
const ours = oursParse(msgs);
let failures = 0;
for (const eng of engines) {
  const theirs = eng.parse(msgs);
  let diffs = 0;
  const failure = (i, what, a, b) => {
    diffs++;
    if (diffs <= 10) console.log(`DIFF [${eng.name}] #${i} ${what}\n  ours:   ${JSON.stringify(a)}\n  llhttp: ${JSON.stringify(b)}\n  input:  ${show(msgs[i])}`);
  };
  for (let i = 0; i < msgs.length; i++) {
    const o = ours[i], l = theirs[i];
    if (!o.ok || !l.ok) {
      if (o.ok !== l.ok) failure(i, 'acceptance', o.ok ? 'accepted' : o.error, l.ok ? 'accepted' : l.error);
      else failure(i, 'both refused a message generated as valid', o.error, l.error);
      continue;
    }
    for (const k of ['method', 'target', 'version', 'headers', 'trailers', 'body', 'consumed']) {
      if (!same(o[k], l[k])) failure(i, k, o[k], l[k]);
    }
    if (!l.upgrade && o.keep_alive !== l.keep_alive) failure(i, 'keep_alive', o.keep_alive, l.keep_alive);
  }
  console.log(`${eng.name}: ${msgs.length} valid variations, ${diffs} disagreements`);
  failures += diffs;
}

// ---- information: our rejections as llhttp sees them ----
function unescape(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\') { out.push(s.charCodeAt(i) & 0xff); continue; }
    const c = s[++i];
    if (c === 'x') { out.push(parseInt(s.substr(i + 1, 2), 16)); i += 2; }
    else out.push({ r: 13, n: 10, t: 9, 0: 0, '\\': 92 }[c]);
  }
  return out;
}
if (rejectFile && fs.existsSync(rejectFile)) {
  const text = fs.readFileSync(rejectFile, 'latin1');
  const cases = [];
  for (const c of text.split('\n=== ').slice(1)) {
    const name = c.split('\n')[0];
    const m = /<<<\n([\s\S]*?)\n>>>\n(.*)/.exec(c);
    if (!m || !m[2].startsWith('error')) continue;
    if (/max_head|max_headers|max_body/.test(c.split('<<<')[0])) continue; // limits are ours to choose
    const bytes = [];
    for (const line of m[1].split('\n')) {
      if (line.startsWith('@repeat ')) {
        const [, n, t] = line.match(/^@repeat (\d+) (.*)$/);
        const one = unescape(t);
        for (let k = 0; k < Number(n); k++) bytes.push(...one);
      } else bytes.push(...unescape(line));
    }
    cases.push({ name, code: m[2].slice(6), buf: Buffer.from(bytes) });
  }
  for (const eng of engines) {
    const res = eng.parse(cases.map(c => c.buf));
    const accepted = [];
    cases.forEach((c, i) => {
      const l = res[i];
      const waits = !l.ok && /incomplete/i.test(`${l.error} ${l.reason || ''}`);
      if (l.ok || waits) accepted.push(`${c.name} (ours: ${c.code}; llhttp: ${l.ok ? 'accepted' : 'waits for more'})`);
    });
    console.log(`information: ${eng.name} accepts ${accepted.length} of our ${cases.length} rejection cases:`);
    for (const a of accepted) console.log(`  - ${a}`);
  }
}
// Known differences the other way (llhttp refuses what we accept), for information.
const known = {
  'trailing tab after Content-Length': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\t\r\n\r\nabc',
  'trailing whitespace after Transfer-Encoding': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n',
  'trailing tab after Connection: close (keep-alive differs)': 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\t\r\n\r\n',
  'extension method': 'FOO / HTTP/1.1\r\nHost: a\r\n\r\n',
  'whitespace before a chunk extension (BWS, RFC 9112 7.1.1)': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=b\r\nx\r\n0\r\n\r\n',
  'two chunk extensions': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=1;b=2\r\nx\r\n0\r\n\r\n',
  'empty line before the request': '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n',
};
const kinput = Object.values(known).map(s => Buffer.from(s, 'latin1'));
const kours = oursParse(kinput);
const ka = r => r.ok ? ` (keep-alive ${r.keep_alive})` : '';
for (const eng of engines) {
  const kl = eng.parse(kinput);
  console.log(`information: inputs we accept, as ${eng.name} sees them:`);
  Object.keys(known).forEach((name, i) => {
    const l = kl[i];
    console.log(`  - ${name}: ours ${kours[i].ok ? 'accepted' : kours[i].error}${ka(kours[i])}; llhttp ${l.ok ? 'accepted' : l.error}${ka(l)}`);
  });
}
process.exit(failures ? 1 : 0);
