// Superuser authentication as the SDK performs it: login, the auth store, refresh, a token
// reused by another client, and the refusals a client must be able to tell apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused, EMAIL, PASSWORD } from './lib.mjs';

test('superuser login fills the auth store', async () => {
  const pb = client();
  assert.equal(pb.authStore.isValid, false);
  const auth = await pb.collection('_superusers').authWithPassword(EMAIL, PASSWORD);
  assert.equal(typeof auth.token, 'string');
  assert.equal(auth.token.split('.').length, 3, 'a JWT');
  assert.equal(auth.record.email, EMAIL);
  assert.equal(auth.record.collectionName, '_superusers');
  assert.equal(auth.record.password, undefined);
  assert.equal(auth.record.tokenKey, undefined);
  assert.equal(pb.authStore.token, auth.token);
  assert.equal(pb.authStore.record.id, auth.record.id);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.isSuperuser, true);
  // The token opens superuser-only routes.
  const list = await pb.collections.getList(1, 1);
  assert.ok(list.totalItems >= 1);
});

test('authRefresh issues a new working token for the same record', async () => {
  const pb = await superuser();
  const before = pb.authStore.record.id;
  const refreshed = await pb.collection('_superusers').authRefresh();
  assert.equal(refreshed.record.id, before);
  assert.equal(refreshed.record.email, EMAIL);
  assert.equal(pb.authStore.token, refreshed.token);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.isSuperuser, true);
  await pb.collections.getList(1, 1);
});

test('a token saved into another client authenticates it', async () => {
  const owner = await superuser();
  const other = client();
  other.authStore.save(owner.authStore.token, owner.authStore.record);
  assert.equal(other.authStore.isSuperuser, true);
  const c = await other.collections.getOne('_superusers');
  assert.equal(c.name, '_superusers');
  assert.equal(c.type, 'auth');
});

test('auto-refresh login: the extra autoRefresh query parameter is ignored', async () => {
  const pb = client();
  // With a threshold the SDK re-checks the token before each call and tags its own
  // re-authentication requests with `?autoRefresh=true`; the server must not mind.
  await pb.collection('_superusers').authWithPassword(EMAIL, PASSWORD, { autoRefreshThreshold: 30 * 60 });
  assert.equal(pb.authStore.isSuperuser, true);
  await pb.collections.getList(1, 1);
  await pb.send('/api/collections', { query: { autoRefresh: true, perPage: 1 } });
});

test('superuser auth methods offer password login', async () => {
  const methods = await client().collection('_superusers').listAuthMethods();
  assert.equal(methods.password.enabled, true);
  assert.deepEqual(methods.password.identityFields, ['email']);
  assert.equal(methods.oauth2.enabled, false);
});

test('a wrong password and an unknown account get the same 400', async () => {
  const pb = client();
  const wrong = await refused(pb.collection('_superusers').authWithPassword(EMAIL, 'not the password'), 400);
  const unknown = await refused(pb.collection('_superusers').authWithPassword('nobody@example.com', PASSWORD), 400);
  assert.equal(wrong.response.message, 'Failed to authenticate.');
  assert.deepEqual(unknown.response, wrong.response);
  assert.equal(pb.authStore.isValid, false, 'a failed login leaves the store empty');
});

test('after clearing the store the client is a guest again', async () => {
  const pb = await superuser();
  pb.authStore.clear();
  assert.equal(pb.authStore.isValid, false);
  assert.equal(pb.authStore.isSuperuser, false);
  await refused(pb.collections.getList(1, 1), 401);
  await refused(pb.collection('_superusers').authRefresh(), 401);
});

test('a forged token is treated as a guest', async () => {
  const pb = await superuser();
  const [head, payload] = pb.authStore.token.split('.');
  const forged = client();
  forged.authStore.save(`${head}.${payload}.${'A'.repeat(43)}`, null);
  await refused(forged.collections.getList(1, 1), 401);
});
