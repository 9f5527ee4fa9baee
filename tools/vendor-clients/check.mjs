// Tiny harness shared by the vendor-client checks: each check prints one
// `PASS name` or `FAIL name: why` line, which run.sh counts.
import fs from 'node:fs';

export function endpoint(app, scheme = 'https') {
  const file = process.env.L2F_MOCKS_ENDPOINTS;
  const listing = JSON.parse(fs.readFileSync(file, 'utf8'));
  const ep = listing.endpoints.find((e) => e.app === app);
  if (!ep || !ep[scheme]) throw new Error(`no ${scheme} endpoint for ${app} in ${file}`);
  return ep[scheme];
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS ${name}`);
  } catch (e) {
    const why = e instanceof Error ? e.message : JSON.stringify(e);
    console.log(`FAIL ${name}: ${why}`);
  }
}
