// jsforce (Salesforce's most used JavaScript client), unchanged but for the login URL
// and credentials, against the Salesforce mock over HTTPS.
import jsforce from 'jsforce';
import { assert, check, endpoint } from './check.mjs';

const loginUrl = endpoint('salesforce');
const conn = new jsforce.Connection({
  oauth2: { loginUrl, clientId: 'l2f-client-id', clientSecret: 'l2f-client-secret' },
  version: '62.0',
});

await check('jsforce: OAuth password login', async () => {
  await conn.login('integration@l2f.example', 'l2f-password');
  assert(conn.accessToken, 'no access token');
  assert(conn.instanceUrl.startsWith('https://127.0.0.1'), `instance url ${conn.instanceUrl}`);
});

let accountId;
await check('jsforce: create Account', async () => {
  const r = await conn.sobject('Account').create({ Name: 'Express Logistics and Transport', BillingCountryCode: 'GB' });
  assert(r.success === true && /^001/.test(r.id), JSON.stringify(r));
  accountId = r.id;
});

await check('jsforce: retrieve and update Account', async () => {
  const got = await conn.sobject('Account').retrieve(accountId);
  assert(got.Name === 'Express Logistics and Transport', JSON.stringify(got));
  const u = await conn.sobject('Account').update({ Id: accountId, Website: 'https://example.com' });
  assert(u.success === true, JSON.stringify(u));
  const again = await conn.sobject('Account').retrieve(accountId);
  assert(again.Website === 'https://example.com', JSON.stringify(again));
});

await check('jsforce: upsert by external id creates then updates', async () => {
  const first = await conn.sobject('Account').upsert({ Name: 'Acme', Customer_Number__c: 'C-0001' }, 'Customer_Number__c');
  assert(first.success === true && first.created === true, JSON.stringify(first));
  const second = await conn.sobject('Account').upsert({ Name: 'Acme GmbH', Customer_Number__c: 'C-0001' }, 'Customer_Number__c');
  assert(second.success === true && second.created === false, JSON.stringify(second));
});

await check('jsforce: SOQL query', async () => {
  const res = await conn.query("SELECT Id, Name FROM Account WHERE Customer_Number__c = 'C-0001'");
  assert(res.totalSize === 1 && res.records[0].Name === 'Acme GmbH', JSON.stringify(res));
});

await check('jsforce: closed-won opportunities by SystemModstamp', async () => {
  const since = new Date(Date.now() - 60_000).toISOString();
  const o = await conn.sobject('Opportunity').create({ Name: 'Deal', StageName: 'Prospecting', CloseDate: '2026-12-31', AccountId: accountId });
  await conn.sobject('Opportunity').update({ Id: o.id, StageName: 'Closed Won' });
  const res = await conn.query(`SELECT Id, AccountId FROM Opportunity WHERE IsWon = true AND SystemModstamp > ${since}`);
  assert(res.totalSize === 1 && res.records[0].Id === o.id, JSON.stringify(res));
});

await check('jsforce: REQUIRED_FIELD_MISSING surfaces as the API error', async () => {
  try {
    await conn.sobject('Lead').create({ FirstName: 'No', Email: 'x@example.com' });
    throw new Error('create without LastName succeeded');
  } catch (e) {
    assert(e.errorCode === 'REQUIRED_FIELD_MISSING' || /REQUIRED_FIELD_MISSING/.test(String(e)), `got ${e.errorCode || e}`);
  }
});

await check('jsforce: Sforce-Limit-Info is read', async () => {
  assert(conn.limitInfo && conn.limitInfo.apiUsage && conn.limitInfo.apiUsage.used > 0, JSON.stringify(conn.limitInfo));
});
