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
  const first = await conn.sobject('Account').upsert({ Name: 'Acme', L2f_Account_Id__c: 'C-0001' }, 'L2f_Account_Id__c');
  assert(first.success === true && first.created === true, JSON.stringify(first));
  const second = await conn.sobject('Account').upsert({ Name: 'Acme GmbH', L2f_Account_Id__c: 'C-0001' }, 'L2f_Account_Id__c');
  assert(second.success === true && second.created === false, JSON.stringify(second));
});

await check('jsforce: SOQL query', async () => {
  const res = await conn.query("SELECT Id, Name FROM Account WHERE L2f_Account_Id__c = 'C-0001'");
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

let many;
await check('jsforce: create many is one sObject Collections call (allOrNone)', async () => {
  const records = Array.from({ length: 250 }, (_, i) => ({ Name: `JS ${String(i).padStart(3, '0')}`, Website: 'https://js.example' }));
  const before = conn.limitInfo.apiUsage.used;
  many = await conn.sobject('Account').create(records, { allOrNone: true, allowRecursive: true });
  assert(many.length === 250 && many.every((r) => r.success && /^001/.test(r.id)), JSON.stringify(many.slice(0, 2)));
  assert(conn.limitInfo.apiUsage.used === before + 2, `usage ${before} -> ${conn.limitInfo.apiUsage.used}`);
  const failing = await conn.sobject('Account').create([{ Name: 'ok' }, { Nope__x: 1 }], { allOrNone: true });
  assert(failing[0].success === false && failing[0].errors[0].statusCode === 'ALL_OR_NONE_OPERATION_ROLLED_BACK', JSON.stringify(failing));
});

await check('jsforce: upsert many by External ID (collections)', async () => {
  const recs = [{ L2f_Account_Id__c: 'cust_js1', Name: 'JS One' }, { L2f_Account_Id__c: 'cust_js2', Name: 'JS Two' }];
  const first = await conn.sobject('Account').upsert(recs, 'L2f_Account_Id__c');
  assert(first.every((r) => r.success && r.created === true), JSON.stringify(first));
  const second = await conn.sobject('Account').upsert(recs.map((r) => ({ ...r, Name: `${r.Name}!` })), 'L2f_Account_Id__c');
  assert(second.every((r) => r.success && r.created === false), JSON.stringify(second));
});

await check('jsforce: retrieve many (collections, describe for the fields)', async () => {
  const ids = many.slice(0, 3).map((r) => r.id);
  const withFields = await conn.sobject('Account').retrieve(ids, { fields: ['Name'] });
  assert(withFields.length === 3 && withFields[0].Name === 'JS 000', JSON.stringify(withFields));
  const all = await conn.sobject('Account').retrieve(ids);
  assert(all[2].Name === 'JS 002' && all[2].Website === 'https://js.example', JSON.stringify(all[2]));
});

await check('jsforce: query autoFetch follows nextRecordsUrl', async () => {
  const soql = "SELECT Id, Name FROM Account WHERE Website = 'https://js.example' ORDER BY Name";
  const res = await conn.query(soql, { autoFetch: true, maxFetch: 10000, headers: { 'Sforce-Query-Options': 'batchSize=200' } });
  assert(res.totalSize === 250 && res.records.length === 250 && res.records[249].Name === 'JS 249', `${res.totalSize} ${res.records.length}`);
});

await check('jsforce: parent field and OR in SOQL', async () => {
  const res = await conn.query("SELECT Id, Account.Name FROM Opportunity WHERE StageName = 'Closed Won' OR StageName = 'Won'");
  assert(res.totalSize === 1 && res.records[0].Account.Name === 'Express Logistics and Transport', JSON.stringify(res.records));
});
