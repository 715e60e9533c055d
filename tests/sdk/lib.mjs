// Shared by the scenario files: where the server is, how to get a client, and how to assert
// on a refused call. Not a test file itself (node's runner only picks up `*.test.mjs`).
import assert from 'node:assert/strict';
import PocketBase, { ClientResponseError } from 'pocketbase';

function required(name) {
  const value = process.env[name];
  if (!value) {
    // Run through `cargo test --test sdk`, which starts a server and sets these.
    throw new Error(`${name} is not set (needs VB_URL, VB_EMAIL and VB_PASSWORD)`);
  }
  return value;
}

export const URL = required('VB_URL');
export const EMAIL = required('VB_EMAIL');
export const PASSWORD = required('VB_PASSWORD');

// Names are suffixed per process so the scenarios can be pointed at a long-lived server
// (vaultbase or PocketBase itself) again and again without colliding with an earlier run.
const RUN = Math.random().toString(36).slice(2, 8);
export const unique = (base) => `${base}_${RUN}`;
export const emailFor = (who) => `${who}.${RUN}@example.com`;

/** A client as a script would make one: no auto-cancellation of parallel identical calls. */
export function client() {
  const pb = new PocketBase(URL);
  pb.autoCancellation(false);
  return pb;
}

export async function superuser() {
  const pb = client();
  await pb.collection('_superusers').authWithPassword(EMAIL, PASSWORD);
  return pb;
}

/** Awaits a call that must fail with `status`; returns the SDK's error for further checks. */
export async function refused(promise, status) {
  const err = await promise.then(
    (value) => assert.fail(`expected HTTP ${status}, got success: ${JSON.stringify(value)}`),
    (e) => e,
  );
  assert.ok(err instanceof ClientResponseError, `expected a ClientResponseError, got ${err?.stack ?? err}`);
  assert.equal(err.status, status, `HTTP ${err.status} for ${err.url}: ${JSON.stringify(err.response)}`);
  // Every error carries PocketBase's envelope, which the SDK exposes as `response`.
  assert.equal(typeof err.response.message, 'string');
  return err;
}

/** The `data.<field>.code` values of a validation error, keyed by field. */
export function fieldCodes(err) {
  return Object.fromEntries(Object.entries(err.response.data ?? {}).map(([k, v]) => [k, v.code]));
}

/**
 * The write events the test observer recorded for one record (`GET /_/test/observed`: the
 * server runs with VAULTBASE_TEST_ROUTES=1 and VAULTBASE_TEST_OBSERVER=1; every worker writes to the same record), as
 * with `also` picking further events (a create's before-event has no record id yet).
 */
export async function observedFor(recordId, also = () => false) {
  const res = await fetch(`${URL}/_/test/observed`);
  assert.equal(res.status, 200, 'the server must run with VAULTBASE_TEST_ROUTES=1 and VAULTBASE_TEST_OBSERVER=1');
  const { events } = await res.json();
  return events.filter((e) => e.recordId === recordId || also(e));
}
