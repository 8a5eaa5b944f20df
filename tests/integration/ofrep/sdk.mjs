// OpenFeature SDKs against sluice's OFREP endpoints (run by tests/integration/ofrep.sh).
// Prints TAP-like lines ("ok - ..." / "not ok - ..."), exits 1 if any check failed.
// Environment: BASE (the base URL with the environment, .../v1/envs/production), TOKEN (an
// evaluation token), KILL (a command line that kills the flag dark-mode).
import { OpenFeature } from '@openfeature/server-sdk';
import { OpenFeature as WebOpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPApi, toResolutionDetails, handleEvaluationError } from '@openfeature/ofrep-core';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { execSync } from 'node:child_process';

const base = process.env.BASE, token = process.env.TOKEN;
let failed = 0;
const check = (what, cond, detail) => {
  console.log(`${cond ? 'ok' : 'not ok'} - ${what}${cond ? '' : ` (${JSON.stringify(detail)})`}`);
  if (!cond) failed++;
};

// A thin server-side provider over ofrep-core, the client code the newer providers wrap: a 200
// without a value means the caller's default (OFREP), which the registry's ofrep-provider 0.1.3
// predates.
class SluiceProvider {
  metadata = { name: 'sluice-ofrep' };
  runsOn = 'server';
  constructor(options) { this.api = new OFREPApi(options); }
  async resolve(key, def, context) {
    try {
      const r = await this.api.postEvaluateFlag(key, { context });
      if (r.httpStatus === 200) return toResolutionDetails(r.value, def);
      return handleEvaluationError(r.value, def);
    } catch (e) {
      return handleEvaluationError(e, def);
    }
  }
  resolveBooleanEvaluation(k, d, c) { return this.resolve(k, d, c); }
  resolveStringEvaluation(k, d, c) { return this.resolve(k, d, c); }
  resolveNumberEvaluation(k, d, c) { return this.resolve(k, d, c); }
  resolveObjectEvaluation(k, d, c) { return this.resolve(k, d, c); }
}

const headers = [['Authorization', `Bearer ${token}`]];
await OpenFeature.setProviderAndWait(new SluiceProvider({ baseUrl: base, headers }));
const client = OpenFeature.getClient();

// every type, with details
let d = await client.getBooleanDetails('dark-mode', false, { targetingKey: 'u1', email: 'ann@staff.io' });
check('boolean: targeting match', d.value === true && d.reason === 'TARGETING_MATCH' && d.variant === 'on', d);
d = await client.getBooleanDetails('dark-mode', true, { targetingKey: 'u1', email: 'bob@else.io' });
check('boolean: false is a value (not the caller default)', d.value === false && d.reason === 'DEFAULT', d);
d = await client.getStringDetails('color', 'none', {});
check('string: static value', d.value === '#f00' && d.reason === 'STATIC' && d.variant === 'red', d);
d = await client.getStringDetails('empty-string', 'default', {});
check('string: "" is a value', d.value === '' && d.reason === 'STATIC', d);
d = await client.getNumberDetails('limit', -1, {});
check('number: 0 is a value', d.value === 0 && d.reason === 'STATIC', d);
d = await client.getObjectDetails('config', { x: 1 }, {});
check('object: {} is a value, with the flag metadata', JSON.stringify(d.value) === '{}' && d.flagMetadata.owner === 'web', d);
// no value: the caller's default
d = await client.getBooleanDetails('retired', true, {});
check('disabled: the caller default, reason DISABLED', d.value === true && d.reason === 'DISABLED' && !d.errorCode, d);
d = await client.getStringDetails('nodefault', 'mine', {});
check('no default variant: the caller default', d.value === 'mine' && !d.errorCode, d);
// errors
d = await client.getBooleanDetails('nosuch', true, {});
check('missing flag: FLAG_NOT_FOUND and the default', d.value === true && d.errorCode === 'FLAG_NOT_FOUND', d);
d = await client.getNumberDetails('color', 7, {});
check('wrong type: TYPE_MISMATCH and the default', d.value === 7 && d.errorCode === 'TYPE_MISMATCH', d);
d = await client.getStringDetails('broken', 'safe', {});
check('a rule that cannot be evaluated: GENERAL and the default', d.value === 'safe' && d.errorCode === 'GENERAL', d);
d = await client.getStringDetails('split', 'none', {});
check('a split without a targeting key: TARGETING_KEY_MISSING', d.value === 'none' && d.errorCode === 'TARGETING_KEY_MISSING', d);
d = await client.getBooleanDetails('dark-mode', false, { targetingKey: 5 });
check('a targetingKey that is not a string: INVALID_CONTEXT', d.errorCode === 'INVALID_CONTEXT', d);

// fractional split of 10,000 keys within 1% of the weights (25/25/50)
const counts = { red: 0, blue: 0, green: 0 };
const started = Date.now();
for (let i = 0; i < 10000; i += 100) {
  const batch = [];
  for (let k = i; k < i + 100; k++) batch.push(client.getStringValue('split', 'none', { targetingKey: `user-${k}` }));
  for (const v of await Promise.all(batch)) counts[v] = (counts[v] || 0) + 1;
}
const ms = Date.now() - started;
check(`fractional: 10,000 keys split 25/25/50 within 1% (${JSON.stringify(counts)}, ${ms} ms)`,
  Math.abs(counts.red - 2500) <= 100 && Math.abs(counts.blue - 2500) <= 100 && Math.abs(counts.green - 5000) <= 100, counts);
await OpenFeature.close();

// the web provider: bulk polling with ETag and 304, a kill seen within one poll
let s304 = 0, s200 = 0;
const counting = async (url, init) => {
  const r = await fetch(url, init);
  if (r.status === 304) s304++;
  if (r.status === 200) s200++;
  return r;
};
const poll = 300;
const web = new OFREPWebProvider({ baseUrl: base, headers, pollInterval: poll, fetchImplementation: counting });
await WebOpenFeature.setContext({ targetingKey: 'u1', email: 'ann@staff.io' });
await WebOpenFeature.setProviderAndWait(web);
const wc = WebOpenFeature.getClient();
check('web: the bulk evaluation gives the targeted value', wc.getBooleanValue('dark-mode', false) === true, wc.getBooleanDetails('dark-mode', false));
await new Promise((r) => setTimeout(r, poll * 3 + 100));
check(`web: unchanged flags answer 304 to the ETag (${s304} of ${s200 + s304} polls)`, s304 >= 2, { s304, s200 });
let changedAt = 0;
wc.addHandler(ProviderEvents.ConfigurationChanged, () => { if (!changedAt) changedAt = Date.now(); });
const killedAt = Date.now();
execSync(process.env.KILL, { stdio: 'ignore' });
for (let i = 0; i < 40 && wc.getBooleanValue('dark-mode', true) !== false; i++) await new Promise((r) => setTimeout(r, 50));
const seen = Date.now() - killedAt;
check(`web: a kill is seen within one poll (${seen} ms, poll ${poll} ms)`, wc.getBooleanValue('dark-mode', true) === false && seen <= poll + 250, seen);
check('web: the provider announced the change', changedAt > 0, changedAt);
await WebOpenFeature.close();
console.log(`# sdk: ${failed ? 'FAILED' : 'passed'}`);
process.exit(failed ? 1 : 0);
