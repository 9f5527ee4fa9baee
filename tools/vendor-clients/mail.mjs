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
