// mailgun.js, unchanged but for the URL and key, against the mail mock over HTTPS.
import formData from 'form-data';
import Mailgun from 'mailgun.js';
import { assert, check, endpoint } from './check.mjs';

const url = endpoint('mail');
const mg = new Mailgun(formData).client({ username: 'api', key: 'key-l2f-mock', url });

await check('mailgun.js: messages.create is queued', async () => {
  const r = await mg.messages.create('mg.l2f.example', {
    from: 'Licensing <licensing@mg.l2f.example>',
    to: ['ada@example.com'],
    subject: 'Your license key',
    text: 'Here it is.',
  });
  assert(r.message === 'Queued. Thank you.' && /@mg\.l2f\.example>$/.test(r.id), JSON.stringify(r));
});

await check('mailgun.js: message is recorded', async () => {
  const res = await fetch(`${url}/__admin/messages?to=ada@example.com`);
  const body = await res.json();
  assert(body.items.length === 1 && body.items[0].subject === 'Your license key', JSON.stringify(body));
});

await check('mailgun.js: wrong key is refused', async () => {
  const bad = new Mailgun(formData).client({ username: 'api', key: 'wrong', url });
  try {
    await bad.messages.create('mg.l2f.example', { from: 'a@b.example', to: ['c@d.example'], subject: 's', text: 't' });
    throw new Error('accepted a wrong key');
  } catch (e) {
    assert(e.status === 401, `status ${e.status}: ${e.message}`);
  }
});

// Events API: https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events
await check('mailgun.js: events.get finds accepted events by message-id with user-variables', async () => {
  const sent = await mg.messages.create('mg.l2f.example', {
    from: 'Billing <billing@mg.l2f.example>',
    to: ['lin@example.com', 'kay@example.com'],
    subject: 'Renewal notice',
    text: 'Soon.',
    'v:l2f-key': 'notice-js-14',
  });
  const r = await mg.events.get('mg.l2f.example', { 'message-id': sent.id, event: 'accepted', begin: '0', ascending: 'yes' });
  assert(r.items.length === 2, JSON.stringify(r.items));
  const ev = r.items[0];
  assert(ev.event === 'accepted' && ev['user-variables']['l2f-key'] === 'notice-js-14', JSON.stringify(ev));
  assert(`<${ev.message.headers['message-id']}>` === sent.id, JSON.stringify(ev.message));
  for (const k of ['first', 'last', 'next', 'previous']) assert(r.pages[k] && r.pages[k].url, JSON.stringify(r.pages));
});

await check('mailgun.js: events pages through next until an empty page', async () => {
  let r = await mg.events.get('mg.l2f.example', { event: 'delivered', recipient: 'kay@example.com OR lin@example.com', limit: 1, begin: '0', ascending: 'yes' });
  const seen = [];
  for (let i = 0; i < 5 && r.items.length > 0; i += 1) {
    seen.push(r.items[0].recipient);
    r = await mg.events.get('mg.l2f.example', { page: r.pages.next.page });
  }
  assert(seen.length === 2 && r.items.length === 0, JSON.stringify(seen));
});
