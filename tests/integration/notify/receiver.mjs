// A webhook receiver for sluice's notifications (tests/integration/notify.sh, scripts/demo.sh).
// Usage: node receiver.mjs PORT LOGFILE SECRET [--quiet]
// Paths: /ce (CloudEvents 1.0 structured mode, validated by the npm cloudevents SDK), /slack
// (a Slack incoming-webhook body), /json (sluice's generic JSON). Every delivery's HMAC
// signature (X-Sluice-Signature: sha256=HEX over the body) is checked with SECRET. Each
// delivery appends one JSON line to LOGFILE: {path, id, type, ntype, deployment, event,
// sig_ok, valid, error}; an invalid one is answered 400 (so sluice retries it: the test sees
// it in the log as valid: false). Without --quiet it prints one line per delivery.
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { HTTP } from 'cloudevents';

const [port, logfile, secret] = process.argv.slice(2);
const quiet = process.argv.includes('--quiet');

function signatureOk(header, body) {
	if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
	const want = createHmac('sha256', secret).update(body).digest();
	const got = Buffer.from(header.slice(7), 'hex');
	return got.length === want.length && timingSafeEqual(got, want);
}

function check(path, headers, raw) {
	const rec = { path, id: headers['x-sluice-delivery'] || null, sig_ok: signatureOk(headers['x-sluice-signature'], raw) };
	if (path === '/ce') {
		if (!String(headers['content-type']).startsWith('application/cloudevents+json'))
			throw new Error(`content-type ${headers['content-type']}`);
		// throws a ValidationError unless the event is valid CloudEvents 1.0
		const ev = HTTP.toEvent({ headers, body: raw.toString('utf8') });
		ev.validate();
		if (ev.specversion !== '1.0') throw new Error(`specversion ${ev.specversion}`);
		if (!/^dev\.(cdevents|sluice)\.[a-z]+\.[a-z]+\.\d+\.\d+\.\d+$/.test(ev.type)) throw new Error(`type ${ev.type}`);
		if (ev.id !== rec.id) throw new Error(`id ${ev.id} is not the delivery header's ${rec.id}`);
		const d = ev.data;
		Object.assign(rec, { id: ev.id, type: ev.type, ntype: d.type, deployment: d.deployment ?? null, event: d.event ?? null, service: d.service ?? null });
	} else if (path === '/slack') {
		const b = JSON.parse(raw.toString('utf8'));
		if (typeof b.text !== 'string' || b.text.length === 0) throw new Error('no text');
		Object.assign(rec, { text: b.text, ntype: headers['x-sluice-event'] || null, deployment: b.deployment ?? null });
	} else if (path === '/json') {
		const b = JSON.parse(raw.toString('utf8'));
		if (typeof b.type !== 'string' || b.id !== rec.id) throw new Error('no type, or an id that is not the header\'s');
		Object.assign(rec, { ntype: b.type, deployment: b.deployment ?? null, event: b.event ?? null, service: b.service ?? null, message: b.message });
	} else {
		throw new Error(`unknown path ${path}`);
	}
	return rec;
}

createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const raw = Buffer.concat(chunks);
		let rec, status = 200;
		try {
			rec = check(req.url, req.headers, raw);
			rec.valid = true;
		} catch (e) {
			rec = { path: req.url, id: req.headers['x-sluice-delivery'] || null, valid: false, error: String(e && e.message || e) };
			status = 400;
		}
		appendFileSync(logfile, JSON.stringify(rec) + '\n');
		if (!quiet)
			console.log(`notification ${rec.id} ${rec.ntype || ''}${rec.service ? ' ' + rec.service : ''}: ${rec.text || rec.message || rec.type || rec.error || ''}`);
		res.writeHead(status, { 'content-type': 'text/plain' });
		res.end(status === 200 ? 'ok\n' : 'invalid\n');
	});
}).listen(Number(port), '127.0.0.1');
