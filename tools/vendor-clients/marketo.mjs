// node-marketo-rest, unchanged but for the endpoints and credentials, against the
// Marketo mock over HTTPS.
import { createRequire } from 'node:module';
import { assert, check, endpoint } from './check.mjs';

const require = createRequire(import.meta.url);
const Marketo = require('node-marketo-rest');
const base = endpoint('marketo');
const marketo = new Marketo({
  endpoint: `${base}/rest`,
  identity: `${base}/identity`,
  clientId: 'l2f-marketo-client',
  clientSecret: 'l2f-marketo-secret',
});

const lead = {
  email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', company: 'Analytical Engines',
  country: 'GB', leadSource: 'Web',
};

await check('node-marketo-rest: createOrUpdate creates', async () => {
  const r = await marketo.lead.createOrUpdate([lead], { lookupField: 'email' });
  assert(r.success === true && r.result[0].status === 'created', JSON.stringify(r));
});

await check('node-marketo-rest: createOrUpdate updates by email', async () => {
  const r = await marketo.lead.createOrUpdate([{ ...lead, firstName: 'Augusta Ada' }], { lookupField: 'email' });
  assert(r.result[0].status === 'updated', JSON.stringify(r));
});

await check('node-marketo-rest: incomplete lead is skipped with a reason', async () => {
  const r = await marketo.lead.createOrUpdate([{ email: 'half@example.com', firstName: 'Half' }], { lookupField: 'email' });
  const rec = r.result[0];
  assert(rec.status === 'skipped' && rec.reasons[0].code === '1003', JSON.stringify(r));
});

await check('node-marketo-rest: find by email', async () => {
  const r = await marketo.lead.find('email', ['ada@example.com'], { fields: ['email', 'firstName'] });
  assert(r.result.length === 1 && r.result[0].firstName === 'Augusta Ada', JSON.stringify(r));
});
