// The dashboard in headless Chromium (tests/integration/ui.sh starts the server, the service
// under load and deployment DEP, a canary in flight). Checks: the page loads with no console
// error; every new step of DEP appears on its page within 2 s of its event on the stream; a
// read token sees no abort button; the admin token aborts DEP from the page and the page shows
// it rolled back. Screenshots of the live and the rolled-back deployment go to SHOTS.
// Usage: node ui.mjs BASE ADMIN_TOKEN READ_TOKEN DEP SHOTS
// Exit: 0 passed, 1 failed, 77 chromium could not start.
import { chromium } from 'playwright-core';

const [base, admin, reader, dep, shots] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exitCode = 1; };

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless=new', '--disable-gpu'],
  });
} catch (e) {
  console.log('skip: chromium cannot start: ' + e.message.split('\n')[0]);
  process.exit(77);
}

const problems = [];
async function page(token) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const p = await ctx.newPage();
  p.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  p.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await p.goto(base + '/ui');
  await p.fill('#token', token);
  await p.click('#signin');
  await p.waitForSelector('#services tbody tr', { timeout: 10000 });
  return p;
}

// the test's own follower of the stream: when each event arrived
async function follow(onEvent, signal) {
  const r = await fetch(base + '/v1/events/stream?deployment=' + dep, {
    headers: { Authorization: 'Bearer ' + admin }, signal,
  });
  if (!r.ok) throw new Error('stream: HTTP ' + r.status);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const msg = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = msg.split('\n').find((l) => l.startsWith('data: '));
      if (data) onEvent(JSON.parse(data.slice(6)), Date.now());
    }
  }
}

try {
  // 1. the overview loads with no console error, and shows the deployment in flight
  const p = await page(admin);
  await p.waitForSelector(`#services a[href="#/deployment/${dep}"]`, { timeout: 5000 });
  if (await p.$('#search') === null) fail('no search box on the overview');

  // 2. the deployment's page, live: each step event shows within 2 s
  await p.goto(base + '/ui#/deployment/' + dep);
  await p.waitForSelector('#events tbody tr', { timeout: 10000 });
  await p.waitForSelector('#live.on', { timeout: 5000 });
  const ctl = new AbortController();
  const delays = [];
  let shotTaken = false;
  const steps = new Promise((resolve) => {
    let seen = 0;
    follow(async (ev, t0) => {
      if (ev.type !== 'step' || seen >= 2) return;
      seen++;
      try {
        await p.waitForSelector('#ev-' + ev.id, { timeout: 2000 });
        delays.push(Date.now() - t0);
        if (!shotTaken && shots) {
          shotTaken = true;
          await p.waitForTimeout(300);
          await p.screenshot({ path: shots + '/ui-deployment-live.png', fullPage: true });
        }
      } catch (e) {
        fail(`step event ${ev.id} (${ev.message}) did not appear within 2 s`);
      }
      if (seen >= 2) resolve();
    }, ctl.signal).catch((e) => { if (!ctl.signal.aborted) { fail(e.message); resolve(); } });
  });
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 60000));
  if (await Promise.race([steps, timeout]) === 'timeout') fail('no two step events within 60 s');
  ctl.abort();
  console.log('step events shown after ' + delays.join(', ') + ' ms');
  const stepCell = await p.textContent('#regions tbody tr td.step');
  if (!/^\d\/\d$/.test(stepCell.trim())) fail('the region shows no step: ' + stepCell);

  // 3. a read token: the same page, no abort button
  const r = await page(reader);
  await r.goto(base + '/ui#/deployment/' + dep);
  await r.waitForSelector('#events tbody tr', { timeout: 10000 });
  await r.waitForSelector('#read-only', { timeout: 5000 });
  if (await r.$('#abort') !== null) fail('a read token sees the abort button');
  if (await r.$('#rollback') !== null) fail('a read token sees the rollback button');
  if (await r.$('#promote') !== null) fail('a read token sees the promote button');
  if (await p.$('#promote') === null) fail('the admin token sees no promote button during a canary step');
  if (!(await r.textContent('#who')).includes('read-only')) fail('a read token is not shown as read-only');

  // 4. the admin token aborts from the page; the page shows the deployment rolled back
  await p.click('#abort');
  await p.click('#abort-confirm');
  await p.waitForFunction(() => document.querySelector('#phase')?.textContent === 'rolled_back', null, { timeout: 30000 });
  await p.waitForSelector('#events tr[data-type="rolled_back"]', { timeout: 5000 });
  if (shots) await p.screenshot({ path: shots + '/ui-deployment-rolled-back.png', fullPage: true });
  // the read page follows too
  await r.waitForFunction(() => document.querySelector('#phase')?.textContent === 'rolled_back', null, { timeout: 10000 });

  // 5. a service's history
  await p.goto(base + '/ui#/service/shop');
  await p.waitForSelector('#deployments tbody tr', { timeout: 5000 });
  await p.click('#releases tbody tr button');
  await p.waitForFunction(() => (document.querySelector('#gate-report')?.textContent || '').includes('"verdict"'), null, { timeout: 5000 });
} catch (e) {
  fail(e.message.split('\n')[0]);
}
if (problems.length) fail('console errors: ' + problems.join(' | '));
await browser.close();
if (!process.exitCode) console.log('ui: ok');
