// sluice dashboard: plain JavaScript, no build step. Talks to the /v1 API with the token the
// user gives (kept in sessionStorage, sent as a bearer header, never a cookie), follows
// deployments through the server-sent events stream (GET /v1/events/stream, read with fetch so
// that the token goes in a header), and draws charts with the vendored uPlot.
'use strict';

const PAGE = 50; // services per page
const TOKEN_KEY = 'sluice.token';
let token = sessionStorage.getItem(TOKEN_KEY);
let who = null;       // GET /v1/whoami
let view = null;      // the current view's cleanup (aborts its stream, stops its timers)

// ---- helpers ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);
// replaceChildren without the holes (null, false) that conditional children leave
const fill = (el, ...kids) => el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
const main = () => $('#main');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function when(ms) {
  if (!ms) return '-';
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

function ago(ms) {
  if (!ms) return '-';
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + ' s';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 120) return m + ' min ' + s + ' s';
  return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
}

class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token };
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, credentials: 'omit', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (r.status === 401) { signOut('the token was refused: ' + ((j && j.error) || 'unknown')); throw new ApiError(401, 'signed out'); }
  if (!r.ok) throw new ApiError(r.status, (j && j.error) || ('HTTP ' + r.status));
  return j;
}

function showError(e) {
  if (e && e.status === 401) return;
  const box = h('p', { class: 'error', role: 'alert', text: String(e && e.message ? e.message : e) });
  main().prepend(box);
}

function setLive(on) {
  const el = $('#live');
  el.className = 'live ' + (on ? 'on' : 'off');
  el.textContent = on ? 'live' : 'offline';
}

// Follows GET /v1/events/stream (params: service, deployment) and calls onEvent for each event;
// reconnects with Last-Event-ID after an interruption, until signal aborts.
async function follow(params, after, onEvent, signal) {
  let last = after;
  const qs = new URLSearchParams(params).toString();
  while (!signal.aborted) {
    try {
      const headers = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
      if (last !== null && last !== undefined) headers['Last-Event-ID'] = String(last);
      const r = await fetch('/v1/events/stream' + (qs ? '?' + qs : ''), { headers, signal, credentials: 'omit', cache: 'no-store' });
      if (r.status === 401) { signOut('the token was refused'); return; }
      if (r.ok && r.body) {
        setLive(true);
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const msg = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let data = null;
            for (const line of msg.split('\n')) {
              if (line.startsWith('id: ')) last = Number(line.slice(4));
              else if (line.startsWith('data: ')) data = line.slice(6);
            }
            if (data) {
              try { onEvent(JSON.parse(data)); } catch (e) { /* a bad message: skip it */ }
            }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    setLive(false);
    await sleep(1000);
  }
}

// ---- sign in ----

function signOut(why) {
  token = null;
  who = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (view) { view(); view = null; }
  renderLogin(why);
}

function renderLogin(why) {
  $('#nav').hidden = true;
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', placeholder: 'slc_…', 'aria-label': 'token' });
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      try {
        await start();
      } catch (e) { showError(e); }
    },
  }, input, h('button', { type: 'submit', class: 'primary', id: 'signin', text: 'sign in' }));
  fill(main(), h('div', { class: 'login' },
    h('h1', { text: 'Sign in' }),
    h('p', { text: 'Paste an API token (sluice token create NAME --scope read:*:*). It stays in this tab (sessionStorage) and is sent as a bearer header.' }),
    why ? h('p', { class: 'error', text: why }) : null,
    form));
  input.focus();
}

async function start() {
  who = await api('GET', '/v1/whoami');
  $('#nav').hidden = false;
  const changes = ['deploy', 'rollback', 'retry'].some((a) => who.may[a]);
  $('#who').textContent = 'token ' + who.name + (changes ? '' : ' (read-only)');
  route();
}

// ---- views ----

// May the token do `action` on service in env? (asked of the server: the scopes are its to judge)
async function may(service, env) {
  const q = new URLSearchParams({ service });
  if (env) q.set('env', env);
  return (await api('GET', '/v1/whoami?' + q.toString())).may;
}

function deploymentChip(d) {
  if (!d) return null;
  const step = d.step ? ' step ' + d.step + '/' + d.steps : '';
  return h('a', { class: 'chip st-' + d.state, href: '#/deployment/' + d.id, text: '#' + d.id + ' ' + d.version + ' ' + d.state + step });
}

async function viewServices(ctl, query) {
  const st = await api('GET', '/v1/status');
  let page = 0;
  let q = query || '';
  const search = h('input', { type: 'search', id: 'search', placeholder: 'filter services', value: q, 'aria-label': 'filter services' });
  const body = h('tbody');
  const pager = h('span', { class: 'muted', id: 'pager' });
  const prev = h('button', { type: 'button', id: 'prev', text: '← previous' });
  const next = h('button', { type: 'button', id: 'next', text: 'next →' });
  let services = st.services || [];
  const draw = () => {
    const shown = services.filter((s) => s.service.includes(q.trim().toLowerCase()));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    if (page >= pages) page = pages - 1;
    body.replaceChildren(...shown.slice(page * PAGE, page * PAGE + PAGE).map((s) => {
      const envs = (s.envs || []).map((e) => h('div', {},
        h('strong', { text: e.env + ': ' }),
        (e.regions || []).map((r) => h('span', { class: 'chip', title: 'stable release in ' + r.region, text: r.region + ' ' + (r.stable || '—') })),
      ));
      const inflight = [];
      const seen = new Set();
      for (const e of s.envs || []) for (const r of e.regions || []) {
        if (r.deployment && !seen.has(r.deployment.id)) { seen.add(r.deployment.id); inflight.push(deploymentChip(r.deployment)); }
      }
      return h('tr', { 'data-service': s.service },
        h('td', {}, h('a', { href: '#/service/' + encodeURIComponent(s.service), text: s.service })),
        h('td', {}, envs),
        h('td', {}, inflight.length ? inflight : h('span', { class: 'muted', text: 'none' })));
    }));
    pager.textContent = shown.length + ' service(s) · page ' + (page + 1) + ' of ' + pages;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  search.addEventListener('input', () => { q = search.value; page = 0; draw(); });
  prev.addEventListener('click', () => { page--; draw(); });
  next.addEventListener('click', () => { page++; draw(); });
  fill(main(), 
    h('h1', { text: 'Services' }),
    h('div', { class: 'bar' }, search, prev, next, pager),
    h('table', { id: 'services' },
      h('thead', {}, h('tr', {}, h('th', { text: 'service' }), h('th', { text: 'stable release per region' }), h('th', { text: 'deployment in flight' }))),
      body));
  draw();
  // any event may change what is stable or in flight: refresh, at most twice a second
  let pending = false;
  follow({}, null, () => {
    if (pending) return;
    pending = true;
    setTimeout(async () => {
      pending = false;
      try { services = (await api('GET', '/v1/status')).services || []; draw(); } catch (e) { /* next event */ }
    }, 500);
  }, ctl.signal);
}

async function viewService(ctl, name) {
  const [deps, rels] = await Promise.all([
    api('GET', '/v1/deployments?service=' + encodeURIComponent(name)),
    api('GET', '/v1/services/' + encodeURIComponent(name) + '/releases'),
  ]);
  const report = h('pre', { class: 'report', id: 'gate-report', hidden: true });
  const gate = async (version, env) => {
    report.hidden = false;
    report.textContent = 'asking the gate…';
    try {
      const q = new URLSearchParams({ service: name, version, env });
      report.textContent = JSON.stringify(await api('GET', '/v1/can-i-deploy?' + q.toString()), null, 2);
    } catch (e) { report.textContent = String(e.message); }
  };
  const envs = [...new Set((deps.deployments || []).map((d) => d.env))];
  const rb = [];
  for (const env of envs) {
    const m = await may(name, env);
    if (m.rollback) {
      rb.push(h('button', {
        type: 'button', class: 'danger', 'data-rollback': env, text: 'roll back in ' + env,
        onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            const r = await api('POST', '/v1/services/' + encodeURIComponent(name) + '/rollback', { env });
            if (r && r.id) location.hash = '#/deployment/' + r.id;
          } catch (e) { showError(e); ev.target.disabled = false; }
        },
      }));
    }
  }
  fill(main(), 
    h('h1', {}, 'Service ', h('code', { text: name })),
    rb.length ? h('div', { class: 'bar' }, rb) : null,
    h('h2', { text: 'Deployments' }),
    h('table', { id: 'deployments' },
      h('thead', {}, h('tr', {}, ['id', 'kind', 'version', 'environment', 'phase', 'reason', 'created'].map((t) => h('th', { text: t })))),
      h('tbody', {}, (deps.deployments || []).map((d) => h('tr', {},
        h('td', {}, h('a', { href: '#/deployment/' + d.id, text: '#' + d.id })),
        h('td', { text: d.kind }), h('td', { text: d.version }), h('td', { text: d.env }),
        h('td', { class: 'phase-' + d.phase, text: d.phase }), h('td', { text: d.reason || '' }),
        h('td', { text: when(d.created_at) }))))),
    h('h2', { text: 'Releases' }),
    h('table', { id: 'releases' },
      h('thead', {}, h('tr', {}, ['version', 'digest', 'contract', 'registered', 'compatibility gate'].map((t) => h('th', { text: t })))),
      h('tbody', {}, (rels.releases || []).slice().reverse().map((r) => h('tr', {},
        h('td', { text: r.version }), h('td', {}, h('code', { text: String(r.digest || '').slice(0, 19) })),
        h('td', { text: r.has_contract ? 'yes' : 'no' }), h('td', { text: when(r.created_at) }),
        h('td', {}, (envs.length ? envs : ['production']).map((env) =>
          h('button', { type: 'button', text: 'gate in ' + env, onclick: () => gate(r.version, env) }))))))),
    report);
}

// ---- one deployment ----

function weightOf(state, r) {
  const cfg = state.config || {};
  if (r.state === 'step' && cfg.strategy === 'canary' && cfg.steps) return cfg.steps[r.step] ?? null;
  if (r.state === 'side_by_side') return 50;
  if (r.state === 'hold' || r.state === 'promoting' || r.state === 'baking' || r.state === 'done') return 100;
  if (r.state === 'pending' || r.state === 'rolled_back' || r.state === 'failed' || r.state === 'starting' || r.state === 'smoke') return 0;
  return null;
}

function rate(c) {
  return c && c.requests ? c.errors / c.requests : null;
}

// The chart series over the deployment's verdicts: per verdict event, the canary's and the
// stable's error rate, and their share of slow requests (the latency test) when measured.
function series(events, t0) {
  const xs = [], ce = [], se = [], cs = [], ss = [];
  for (const ev of events) {
    const x = ev.evidence;
    if (!x || !x.canary || !x.stable) continue;
    xs.push((ev.at - t0) / 1000);
    ce.push(rate(x.canary));
    se.push(rate(x.stable));
    const slow = (x.tests || []).find((t) => t.metric === 'slow_requests');
    cs.push(slow && slow.canary_requests ? slow.canary_events / slow.canary_requests : null);
    ss.push(slow && slow.stable_requests ? slow.stable_events / slow.stable_requests : null);
  }
  return { xs, ce, se, cs, ss };
}

function chart(el, title, xs, canary, stable) {
  el.replaceChildren();
  if (!window.uPlot || xs.length === 0) {
    el.append(h('p', { class: 'muted', text: title + ': no verdict with counts yet' }));
    return;
  }
  const pct = (u, v) => v.map((x) => (x === null || x === undefined ? '' : (x * 100).toFixed(2) + '%'));
  // eslint-disable-next-line no-new
  new window.uPlot({
    title, width: 560, height: 220,
    // rates start at 0; a flat line at 0 still gets a readable scale (up to 1%)
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, Math.max((max || 0) * 1.2, 0.01)] } },
    axes: [{ label: 's since the deployment started' }, { values: pct, size: 70 }],
    series: [{ label: 's' },
      { label: 'canary', stroke: '#d9480f', width: 2, points: { show: true } },
      { label: 'stable', stroke: '#1c7ed6', width: 2, points: { show: true } }],
  }, [xs, canary, stable], el);
}

function evidenceView(x) {
  if (!x) return null;
  const kids = [];
  if (x.method) {
    kids.push(h('div', {}, 'method ', h('strong', { text: x.method }),
      x.verdict ? [' · verdict ', h('span', { class: 'd-' + x.verdict, text: x.verdict })] : null,
      x.canary ? ' · canary ' + x.canary.errors + '/' + x.canary.requests + ' errors' : null,
      x.stable ? ' · ' + (x.compared_with || 'stable') + ' ' + x.stable.errors + '/' + x.stable.requests + ' errors' : null));
  }
  const tests = x.tests || x.checks;
  if (tests && tests.length) {
    kids.push(h('table', { class: 'tests' },
      h('thead', {}, h('tr', {}, ['metric', 'test', 'samples', 'statistic', 'threshold', 'decision'].map((t) => h('th', { text: t })))),
      h('tbody', {}, tests.map((t) => h('tr', {},
        h('td', { text: t.metric }),
        h('td', { text: t.test || '' }),
        h('td', { text: t.canary_requests !== undefined ? 'canary ' + t.canary_events + '/' + t.canary_requests + ', stable ' + t.stable_events + '/' + t.stable_requests : (t.samples ?? '') }),
        h('td', { text: t.e_fail !== undefined ? 'e=' + Number(t.e_fail).toPrecision(3) + (t.ratio_estimate ? ', ratio ' + Number(t.ratio_estimate).toFixed(2) : '') : (t.observed !== undefined ? 'observed ' + t.observed : '') }),
        h('td', { text: t.e_threshold !== undefined ? String(t.e_threshold) : (t.limit !== undefined ? String(t.limit) : '') }),
        h('td', { class: 'd-' + t.decision, text: t.decision || '' }))))));
  }
  kids.push(h('details', {}, h('summary', { text: 'all of it (JSON)' }), h('pre', { text: JSON.stringify(x, null, 2) })));
  return h('details', { class: 'evidence' }, h('summary', { text: 'evidence' }), kids);
}

function eventRow(ev) {
  return h('tr', { id: 'ev-' + ev.id, 'data-type': ev.type },
    h('td', { text: new Date(ev.at).toLocaleTimeString(undefined, { hour12: false }) }),
    h('td', { class: 'evtype', text: ev.type }),
    h('td', { text: ev.region || '-' }),
    h('td', {}, ev.message, evidenceView(ev.evidence)));
}

async function viewDeployment(ctl, id) {
  let d = await api('GET', '/v1/deployments/' + id + '/events');
  const events = d.events || [];
  const m = await may(d.service, d.env);
  const meta = h('dl', { class: 'meta' });
  const regions = h('tbody');
  const actions = h('div', { class: 'bar', id: 'actions' });
  const evBody = h('tbody', {}, events.map(eventRow));
  const c1 = h('div', { class: 'chart', id: 'chart-errors' });
  const c2 = h('div', { class: 'chart', id: 'chart-latency' });
  const t0 = d.created_at;
  const act = (label, cls, idAttr, fn) => h('button', {
    type: 'button', class: cls, id: idAttr, text: label,
    onclick: async (ev) => {
      ev.target.disabled = true;
      try { await fn(); } catch (e) { showError(e); }
      ev.target.disabled = false;
    },
  });
  const drawCharts = () => {
    const s = series(events, t0);
    chart(c1, 'error rate: canary vs stable', s.xs, s.ce, s.se);
    chart(c2, 'slow requests (latency): canary vs stable', s.xs, s.cs, s.ss);
  };
  const draw = () => {
    const st = d.state || {};
    fill(meta, 
      h('dt', { text: 'service' }), h('dd', {}, h('a', { href: '#/service/' + encodeURIComponent(d.service), text: d.service })),
      h('dt', { text: 'release' }), h('dd', { text: d.version + ' (' + d.kind + ', ' + ((st.config || {}).strategy || '?') + ')' }),
      h('dt', { text: 'environment' }), h('dd', { text: d.env }),
      h('dt', { text: 'phase' }), h('dd', { id: 'phase', class: 'phase-' + d.phase, text: d.phase }),
      d.reason ? h('dt', { text: 'reason' }) : null, d.reason ? h('dd', { id: 'reason', text: d.reason }) : null,
      h('dt', { text: 'started' }), h('dd', { text: when(d.created_at) }));
    const steps = (st.config || {}).steps || [];
    regions.replaceChildren(...(st.regions || []).map((r) => {
      const w = weightOf(st, r);
      const retry = m.retry && r.state === 'failed'
        ? act('retry ' + r.name, 'primary', 'retry-' + r.name, async () => { await api('POST', '/v1/deployments/' + id + '/retry', { region: r.name }); })
        : null;
      return h('tr', { 'data-region': r.env + '/' + r.name },
        h('td', { text: String(r.wave) + (r.stage ? ' (stage)' : '') }),
        h('td', { text: r.env + '/' + r.name }),
        h('td', { class: 'st-' + r.state, text: r.state }),
        h('td', { class: 'step', text: r.state === 'step' && steps.length ? (r.step + 1) + '/' + steps.length : '-' }),
        h('td', {}, w === null ? '-' : [h('span', { class: 'weight', title: 'canary ' + w + '%' }, h('span', { style: null, 'data-w': w })), ' ' + w + '% new']),
        h('td', { class: 'since', 'data-since': r.since || 0, text: r.since && !['done', 'rolled_back', 'failed', 'pending'].includes(r.state) ? ago(r.since) : '-' }),
        h('td', { text: r.check || '' }),
        h('td', {}, retry));
    }));
    // widths through the CSSOM (no inline style attribute: the CSP allows none)
    for (const s of regions.querySelectorAll('[data-w]')) s.style.width = s.getAttribute('data-w') + '%';
    const active = d.phase === 'active';
    fill(actions, 
      active && m.rollback ? act('abort', 'danger', 'abort', async () => {
        fill(actions, h('span', { text: 'Abort deployment #' + id + '? Traffic returns to stable.' }),
          act('yes, abort', 'danger', 'abort-confirm', async () => { await api('POST', '/v1/deployments/' + id + '/abort', {}); }),
          act('no', '', 'abort-cancel', async () => draw()));
      }) : null,
      active && m.deploy && (st.regions || []).some((r) => !r.stage && (r.state === 'hold' || (r.state === 'step' && (st.config || {}).strategy === 'canary')))
        ? act('promote now', 'primary', 'promote', async () => {
          fill(actions, h('span', { text: 'Promote deployment #' + id + ' now? The remaining steps and checks of the regions in a step are skipped.' }),
            act('yes, promote', 'primary', 'promote-confirm', async () => { await api('POST', '/v1/deployments/' + id + '/promote', {}); }),
            act('no', '', 'promote-cancel', async () => draw()));
        }) : null,
      m.rollback ? act('roll back ' + d.service + ' in ' + d.env, 'danger', 'rollback', async () => {
        const r = await api('POST', '/v1/services/' + encodeURIComponent(d.service) + '/rollback', { env: d.env });
        if (r && r.id) location.hash = '#/deployment/' + r.id;
      }) : null,
      !m.rollback && !m.retry && !m.deploy ? h('span', { class: 'muted', id: 'read-only', text: 'read-only: this token may not change this deployment' }) : null);
  };
  fill(main(), 
    h('h1', {}, 'Deployment #' + id),
    meta, actions,
    h('h2', { text: 'Waves and regions' }),
    h('table', { id: 'regions' },
      h('thead', {}, h('tr', {}, ['wave', 'region', 'state', 'step', 'weight', 'time in state', 'check', ''].map((t) => h('th', { text: t })))),
      regions),
    h('h2', { text: 'Verification' }),
    h('div', { class: 'charts' }, c1, c2),
    h('h2', { text: 'Events' }),
    h('table', { id: 'events' },
      h('thead', {}, h('tr', {}, ['time', 'event', 'region', 'what happened'].map((t) => h('th', { text: t })))),
      evBody));
  draw();
  drawCharts();
  const tick = setInterval(() => {
    for (const td of regions.querySelectorAll('td.since')) {
      const s = Number(td.getAttribute('data-since'));
      if (s && td.textContent !== '-') td.textContent = ago(s);
    }
  }, 1000);
  ctl.signal.addEventListener('abort', () => clearInterval(tick));
  let refreshing = null;
  const last = events.length ? events[events.length - 1].id : 0;
  follow({ deployment: id }, last, (ev) => {
    if (document.getElementById('ev-' + ev.id)) return;
    events.push(ev);
    evBody.append(eventRow(ev));
    if (ev.evidence && ev.evidence.canary) drawCharts();
    if (refreshing) return;
    refreshing = api('GET', '/v1/deployments/' + id).then((nd) => { d = nd; draw(); })
      .catch(() => {}).finally(() => { refreshing = null; });
  }, ctl.signal);
}

// ---- routing ----

async function route() {
  if (!token) { renderLogin(); return; }
  if (!who) { await start(); return; }
  if (view) view();
  const ctl = new AbortController();
  view = () => ctl.abort();
  setLive(false);
  const hash = location.hash || '#/';
  let mm;
  fill(main(), h('p', { class: 'muted', text: 'loading…' }));
  try {
    if ((mm = hash.match(/^#\/deployment\/(\d+)$/))) await viewDeployment(ctl, mm[1]);
    else if ((mm = hash.match(/^#\/service\/([a-z0-9-]+)$/))) await viewService(ctl, mm[1]);
    else await viewServices(ctl, '');
  } catch (e) {
    showError(e);
  }
}

window.addEventListener('hashchange', () => { route(); });
document.addEventListener('DOMContentLoaded', () => {
  $('#signout').addEventListener('click', () => signOut());
  if (token) start().catch((e) => { if (e.status !== 401) showError(e); }); else renderLogin();
});
