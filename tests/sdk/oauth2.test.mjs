// OAuth2 through the SDK against a loopback OIDC provider the test itself runs: the provider
// list with PKCE, sign-up, sign-in, linking to the signed-in account and by email, unlinking,
// and the SDK's all-in-one authWithOAuth2() (realtime `@oauth2` + /api/oauth2-redirect).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { client, superuser, unique, emailFor, refused, observedFor, URL as VB_URL } from './lib.mjs';
import { startOidc } from './oidc.mjs';

// The all-in-one flow waits for its code on a realtime stream; node has no EventSource.
globalThis.EventSource = EventSource;

const CLIENT_ID = 'vaultbase-test-client';
const CLIENT_SECRET = 'loopback client secret';
const REDIRECT = 'http://app.example.test/oauth2-redirect';
const PASSWORD = 'oauth password 1';
const coll = unique('oauthers');
let idp;
let su;

before(async () => {
  idp = await startOidc({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  su = await superuser();
  await su.collections.create({
    name: coll,
    type: 'auth',
    createRule: '',
    listRule: 'id = @request.auth.id',
    viewRule: 'id = @request.auth.id',
    fields: [{ name: 'name', type: 'text' }],
    oauth2: {
      enabled: true,
      mappedFields: { name: 'name' },
      providers: [
        { name: 'oidc', displayName: 'Loopback IdP', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, extra: { issuer: idp.issuer } },
        // GitHub and Microsoft presets pointed at the loopback provider, which answers with
        // their user shapes: what matters is how each preset reads "verified".
        ...['github', 'microsoft'].map((name) => ({
          name,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          authURL: `${idp.issuer}/authorize`,
          tokenURL: `${idp.issuer}/token`,
          userInfoURL: `${idp.issuer}/userinfo`,
        })),
      ],
    },
  });
});

after(async () => {
  await idp?.stop();
});

/** What a browser does: open the provider's URL, get redirected back with a code. */
async function signInAtProvider(pb, user, name = 'oidc') {
  const methods = await pb.collection(coll).listAuthMethods();
  assert.equal(methods.oauth2.enabled, true);
  const provider = methods.oauth2.providers.find((p) => p.name === name);
  assert.ok(provider, JSON.stringify(methods));
  if (name === 'oidc') assert.equal(provider.displayName, 'Loopback IdP');
  assert.equal(provider.codeChallengeMethod, 'S256');
  assert.ok(provider.authURL.endsWith('&redirect_uri='), provider.authURL);
  idp.nextUser = user;
  const res = await fetch(provider.authURL + encodeURIComponent(REDIRECT), { redirect: 'manual' });
  assert.equal(res.status, 302, await res.text());
  const back = new URL(res.headers.get('location'));
  assert.equal(back.searchParams.get('state'), provider.state);
  return { code: back.searchParams.get('code'), verifier: provider.codeVerifier };
}

test('OAuth2: sign-up, then sign-in as the same record', async () => {
  const alice = { sub: unique('alice-sub'), name: 'Alice Liddell', email: emailFor('alice-oidc'), email_verified: true };
  const pb = client();
  const first = await signInAtProvider(pb, alice);
  const auth = await pb.collection(coll).authWithOAuth2Code('oidc', first.code, first.verifier, REDIRECT, {});
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, alice.sub);
  assert.equal(auth.meta.email, alice.email);
  assert.equal(typeof auth.meta.accessToken, 'string');
  assert.equal(auth.record.email, alice.email);
  assert.equal(auth.record.name, 'Alice Liddell');
  assert.equal(auth.record.verified, true);
  assert.ok(pb.authStore.isValid);

  const again = await signInAtProvider(client(), alice);
  const second = await client().collection(coll).authWithOAuth2Code('oidc', again.code, again.verifier, REDIRECT);
  assert.equal(second.meta.isNew, false);
  assert.equal(second.record.id, auth.record.id);
});

test('OAuth2: the client secret is write-only and survives other collection changes', async () => {
  const c = await su.collections.getOne(coll);
  assert.ok(!JSON.stringify(c).includes(CLIENT_SECRET));
  await su.collections.update(coll, { otp: { enabled: false } });
  // Still signs in: the token exchange needs the stored secret.
  const user = { sub: unique('keep-sub'), email: emailFor('keep-oidc'), email_verified: true };
  const { code, verifier } = await signInAtProvider(client(), user);
  const auth = await client().collection(coll).authWithOAuth2Code('oidc', code, verifier, REDIRECT);
  assert.equal(auth.meta.isNew, true);
});

test('OAuth2: PKCE is enforced and unknown providers are refused', async () => {
  const user = { sub: unique('pkce-sub'), email: emailFor('pkce-oidc'), email_verified: true };
  const { code } = await signInAtProvider(client(), user);
  await refused(client().collection(coll).authWithOAuth2Code('oidc', code, 'not-the-verifier-' + 'x'.repeat(40), REDIRECT), 400);
  const err = await refused(client().collection(coll).authWithOAuth2Code('nosuch', 'c', 'v', REDIRECT), 400);
  assert.ok(err.response.data.provider);
});

test('OAuth2: linking to the signed-in account, listing and unlinking', async () => {
  const email = emailFor('bob-oauth');
  const bob = await su.collection(coll).create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  const pb = client();
  await pb.collection(coll).authWithPassword(email, PASSWORD);
  // A provider identity with another email: linked because bob is signed in.
  const idpBob = { sub: unique('bob-sub'), name: 'Bob', email: emailFor('bob-elsewhere'), email_verified: true };
  const { code, verifier } = await signInAtProvider(pb, idpBob);
  const linked = await pb.collection(coll).authWithOAuth2Code('oidc', code, verifier, REDIRECT);
  assert.equal(linked.record.id, bob.id);
  assert.equal(linked.meta.isNew, false);

  const links = await pb.collection(coll).listExternalAuths(bob.id);
  assert.equal(links.length, 1);
  assert.equal(links[0].provider, 'oidc');
  assert.equal(links[0].providerId, idpBob.sub);
  // Nobody else sees them.
  assert.equal((await client().collection(coll).listExternalAuths(bob.id)).length, 0);

  assert.equal(await pb.collection(coll).unlinkExternalAuth(bob.id, 'oidc'), true);
  assert.equal((await pb.collection(coll).listExternalAuths(bob.id)).length, 0);
  // Unlinked: the same provider identity, signed out, is a new account now.
  const again = await signInAtProvider(client(), idpBob);
  const fresh = await client().collection(coll).authWithOAuth2Code('oidc', again.code, again.verifier, REDIRECT);
  assert.equal(fresh.meta.isNew, true);
  assert.notEqual(fresh.record.id, bob.id);
});

test('OAuth2: a verified provider email signs in to the account with that email', async () => {
  const email = emailFor('carol-oauth');
  const carol = await su.collection(coll).create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  const { code, verifier } = await signInAtProvider(client(), { sub: unique('carol-sub'), email, email_verified: true });
  const auth = await client().collection(coll).authWithOAuth2Code('oidc', code, verifier, REDIRECT);
  assert.equal(auth.record.id, carol.id);
  // An unverified one does not: it would let anyone claim an address at the provider.
  const dave = emailFor('dave-oauth');
  await su.collection(coll).create({ email: dave, password: PASSWORD, passwordConfirm: PASSWORD });
  const second = await signInAtProvider(client(), { sub: unique('dave-sub'), email: dave, email_verified: false });
  await refused(client().collection(coll).authWithOAuth2Code('oidc', second.code, second.verifier, REDIRECT), 400);
});

/** Signs `user` in at provider `name` and completes auth-with-oauth2 with `createData`. */
async function oauth(user, createData = {}, name = 'oidc', pb = client()) {
  const { code, verifier } = await signInAtProvider(pb, user, name);
  return pb.collection(coll).authWithOAuth2Code(name, code, verifier, REDIRECT, createData);
}

test('OAuth2 sign-up: createData cannot pick a verified email or set verified', async () => {
  const idpEmail = emailFor('own-idp-address');
  const victim = emailFor('victim-createdata');
  // A verified provider address, but createData names another: that one is not verified.
  const auth = await oauth({ sub: unique('cd-sub'), email: idpEmail, email_verified: true }, { email: victim });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.email, victim);
  assert.equal(auth.record.verified, false);
  // `verified` is not the client's to set (PocketBase: 400 validation_values_mismatch)…
  const err = await refused(oauth({ sub: unique('cd2-sub'), email: emailFor('cd2'), email_verified: false }, { verified: true }), 400);
  assert.equal(err.response.data.verified?.code, 'validation_values_mismatch');
  // …and the provider's own address is verified only when the provider says so.
  const unverified = await oauth({ sub: unique('cd3-sub'), email: emailFor('cd3'), email_verified: false });
  assert.equal(unverified.record.verified, false);
  const verified = await oauth({ sub: unique('cd4-sub'), email: emailFor('cd4'), email_verified: true }, { verified: false });
  assert.equal(verified.record.verified, true);
});

test('OAuth2: a provider that does not say the email is verified never links by email', async () => {
  const links = async (id) => (await su.collection(coll).listExternalAuths(id)).length;
  // OIDC without email_verified.
  const erin = await su.collection(coll).create({ email: emailFor('erin-oauth'), password: PASSWORD, passwordConfirm: PASSWORD, verified: true });
  await refused(oauth({ sub: unique('erin-sub'), email: erin.email }), 400);
  // Microsoft: `mail`/`userPrincipalName` are set by the tenant, never proof ("nOAuth").
  await refused(oauth({ id: unique('ms-id'), displayName: 'Erin?', mail: erin.email }, {}, 'microsoft'), 400);
  // GitHub: the public profile email says nothing; `/user/emails` says it is unverified.
  const gh = { id: 4242, login: unique('octo'), email: erin.email, emails: [{ email: erin.email, primary: true, verified: false }] };
  await refused(oauth(gh, {}, 'github'), 400);
  assert.equal(await links(erin.id), 0, 'no provider identity was linked to the account');
  // GitHub's verified flag from /user/emails does link.
  const ghOk = { id: 4343, login: unique('octo2'), email: erin.email, emails: [{ email: erin.email, primary: true, verified: true }] };
  const linked = await oauth(ghOk, {}, 'github');
  assert.equal(linked.record.id, erin.id);
  assert.equal(await links(erin.id), 1);
});

test('OAuth2: linking an unverified account by email takes it away from whoever registered it', async () => {
  const email = emailFor('frank-oauth');
  // Somebody registers Frank's address first (unverified), with a password and their own
  // provider identity linked while signed in.
  const squatter = client();
  await squatter.collection(coll).create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  await squatter.collection(coll).authWithPassword(email, PASSWORD);
  const squatterIdentity = { sub: unique('squatter-sub'), email: emailFor('squatter'), email_verified: true };
  const mine = await oauth(squatterIdentity, {}, 'oidc', squatter);
  const id = mine.record.id;
  assert.equal((await su.collection(coll).listExternalAuths(id)).length, 1);

  // Frank signs in with the provider that verified his address: the account is his now.
  const frank = await oauth({ sub: unique('frank-sub'), email, email_verified: true });
  assert.equal(frank.record.id, id);
  assert.equal(frank.record.verified, true);
  await refused(client().collection(coll).authWithPassword(email, PASSWORD), 400);
  await refused(squatter.collection(coll).authRefresh(), 401);
  const left = await su.collection(coll).listExternalAuths(id);
  assert.deepEqual(left.map((l) => l.providerId), [frank.meta.id]);
  // The squatter's identity is no longer a way in: it signs up a new account instead.
  const again = await oauth(squatterIdentity);
  assert.notEqual(again.record.id, id);
});

test('OAuth2: a provider link dies with its record and is not inherited through a reused id', async () => {
  const identity = { sub: unique('gone-sub'), email: emailFor('gone-oauth'), email_verified: true };
  const first = await oauth(identity);
  const id = first.record.id;
  await su.collection(coll).delete(id);
  // A new account is created with the same id (ids may be chosen on create) and another email.
  const reborn = await su.collection(coll).create({ id, email: emailFor('reborn'), password: PASSWORD, passwordConfirm: PASSWORD });
  assert.equal(reborn.id, id);
  assert.equal((await su.collection(coll).listExternalAuths(id)).length, 0, 'the link went with the record');
  // The old provider identity is a stranger to it: a fresh sign-up, not a sign-in as `reborn`.
  const again = await oauth(identity);
  assert.equal(again.meta.isNew, true);
  assert.notEqual(again.record.id, id);
});

test('OAuth2: the all-in-one authWithOAuth2() gets its code through realtime and /api/oauth2-redirect', async () => {
  const dora = { sub: unique('dora-sub'), name: 'Dora', email: emailFor('dora-oidc'), email_verified: true };
  const pb = client();
  idp.nextUser = dora;
  let popup;
  const auth = await pb.collection(coll).authWithOAuth2({
    provider: 'oidc',
    // What the SDK's popup would do: open the provider's URL (state = this client's realtime
    // id), whose redirect goes to /api/oauth2-redirect, which hands the code to the stream.
    urlCallback: (url) => {
      popup = (async () => {
        const atProvider = await fetch(url, { redirect: 'manual' });
        assert.equal(atProvider.status, 302, await atProvider.text());
        const back = new globalThis.URL(atProvider.headers.get('location'));
        assert.equal(back.origin + back.pathname, `${VB_URL}/api/oauth2-redirect`);
        assert.ok(back.searchParams.get('code'));
        const page = await fetch(back);
        return { back, status: page.status, type: page.headers.get('content-type'), text: await page.text() };
      })();
      return popup;
    },
  });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, dora.sub);
  assert.equal(auth.record.email, dora.email);
  assert.equal(auth.record.name, 'Dora');
  assert.ok(pb.authStore.isValid);
  assert.equal(pb.authStore.record.id, auth.record.id);
  const page = await popup;
  assert.equal(page.status, 200, page.text);
  assert.match(page.type, /^text\/html/);
  // The message went out once: the client lost its @oauth2 subscription with it.
  const replay = await fetch(page.back);
  assert.equal(replay.status, 400);
  // No such realtime client, no state, a provider error: the failure page.
  for (const qs of ['state=nosuchclient&code=x', 'code=x', 'state=x&error=access_denied']) {
    const res = await fetch(`${VB_URL}/api/oauth2-redirect?${qs}`);
    assert.equal(res.status, 400, qs);
  }
  const posted = await fetch(`${VB_URL}/api/oauth2-redirect`, { method: 'POST', body: new URLSearchParams({ state: 'nosuchclient', code: 'x' }) });
  assert.equal(posted.status, 400);
});

test('the write pipeline sees an OAuth2 sign-up and an account takeover once each', async () => {
  const signUpEmail = emailFor('obs-oauth');
  const signUp = await oauth({ sub: unique('obs-sub'), email: signUpEmail, email_verified: true });
  const created = await observedFor(signUp.record.id, (e) => e.stage === 'before' && e.after?.email === signUpEmail);
  assert.deepEqual(created.map((e) => [e.stage, e.source, e.action]), [['before', 'oauth2', 'create'], ['after', 'oauth2', 'create']]);
  assert.equal(created[1].after.verified, 1, 'the committed record is the verified one');

  const email = emailFor('obs-takeover');
  const squatter = await client().collection(coll).create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  await oauth({ sub: unique('obs-owner-sub'), email, email_verified: true });
  const takeover = (await observedFor(squatter.id)).filter((e) => e.source === 'oauth2');
  assert.deepEqual(takeover.map((e) => [e.stage, e.action]), [['after', 'update']]);
  assert.notEqual(takeover[0].before.tokenKey, takeover[0].after.tokenKey, 'the takeover ended the squatter\'s sessions');
});
