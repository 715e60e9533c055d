// Realtime through the SDK's own subscribe(): PocketBase's SSE stream at /api/realtime, driven
// by `pb.collection(x).subscribe(topic, cb, options)` with the `eventsource` polyfill (node has
// no EventSource). Each subscriber is its own client, so its own stream. "Nothing arrived"
// is never judged by waiting: a later event the subscriber *is* allowed to see acts as a
// barrier (events reach one subscriber in commit order), and only then is the list checked.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { client, superuser, unique, emailFor } from './lib.mjs';

globalThis.EventSource = EventSource;

const AUTHORS = unique('rt_authors');
const POSTS = unique('rt_posts');
const MEMBERS = unique('rt_members');
const PRIVATE = unique('rt_private');
const USER_PASSWORD = 'realtime user password';
/** How long an awaited event may take on a loaded machine before the test fails. */
const EVENT_TIMEOUT_MS = 15000;

let su, author;
const clients = [];

/** A fresh client (its own SSE connection once it subscribes), closed after the file. */
function subscriber(pb = client()) {
  clients.push(pb);
  return pb;
}

/** Subscribes and collects every event into the returned array. */
async function collect(pb, collection, topic, options) {
  const events = [];
  await pb.collection(collection).subscribe(topic, (e) => events.push(e), options);
  return events;
}

/** Resolves once `events` holds an event matching `pred`; fails after EVENT_TIMEOUT_MS. */
async function waitFor(events, pred, what) {
  const deadline = Date.now() + EVENT_TIMEOUT_MS;
  while (!events.some(pred)) {
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}; got ${JSON.stringify(events)}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

const summary = (events) => events.map((e) => `${e.action}:${e.record.id}`);

async function signUp(who) {
  const pb = subscriber();
  await pb.collection(MEMBERS).create({ email: emailFor(who), password: USER_PASSWORD, passwordConfirm: USER_PASSWORD });
  await pb.collection(MEMBERS).authWithPassword(emailFor(who), USER_PASSWORD);
  return pb;
}

before(async () => {
  su = subscriber(await superuser());
  const authors = await su.collections.create({
    name: AUTHORS, listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text' }],
  });
  await su.collections.create({
    name: POSTS, listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'views', type: 'number' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
    ],
  });
  const members = await su.collections.create({
    name: MEMBERS, type: 'auth', createRule: '',
    listRule: 'id = @request.auth.id', viewRule: 'id = @request.auth.id',
  });
  await su.collections.create({
    name: PRIVATE,
    listRule: 'owner = @request.auth.id', viewRule: 'owner = @request.auth.id',
    createRule: "owner = @request.auth.id", updateRule: 'owner = @request.auth.id', deleteRule: 'owner = @request.auth.id',
    fields: [
      { name: 'text', type: 'text' },
      { name: 'owner', type: 'relation', collectionId: members.id, maxSelect: 1 },
    ],
  });
  author = await su.collection(AUTHORS).create({ name: 'Ada' });
});

after(async () => {
  for (const pb of clients) {
    await pb.realtime.unsubscribe().catch(() => {});
  }
});

test("'*' delivers create, update and delete once each, in order, with the record as it was", async () => {
  const guest = subscriber();
  const events = await collect(guest, POSTS, '*');
  const admin = subscriber(await superuser());
  const adminEvents = await collect(admin, POSTS, '*');

  const created = await su.collection(POSTS).create({ title: 'one', views: 1, secret: 's1' });
  const updated = await su.collection(POSTS).update(created.id, { title: 'one, edited' });
  await su.collection(POSTS).delete(created.id);
  await waitFor(events, (e) => e.action === 'delete', 'the delete event');
  await waitFor(adminEvents, (e) => e.action === 'delete', 'the delete event (superuser)');

  assert.deepEqual(summary(events), [`create:${created.id}`, `update:${created.id}`, `delete:${created.id}`]);
  const { secret, ...publicCreated } = created;
  assert.equal(secret, 's1', 'the superuser writer sees the hidden field');
  assert.deepEqual(events[0].record, publicCreated, 'a guest gets the record without hidden fields');
  assert.equal(events[1].record.title, 'one, edited');
  assert.equal(events[1].record.updated, updated.updated);
  assert.equal(events[2].record.title, 'one, edited', 'delete carries the record as it was');
  assert.equal(adminEvents[0].record.secret, 's1', 'a superuser subscriber gets hidden fields');
  assert.equal(adminEvents.length, 3);
});

test('a record topic delivers that record only', async () => {
  const watched = await su.collection(POSTS).create({ title: 'watched' });
  const other = await su.collection(POSTS).create({ title: 'other' });
  const pb = subscriber();
  const events = await collect(pb, POSTS, watched.id);

  await su.collection(POSTS).update(other.id, { title: 'other, edited' });
  await su.collection(POSTS).update(watched.id, { title: 'watched, edited' });
  await su.collection(POSTS).delete(watched.id);
  await waitFor(events, (e) => e.action === 'delete', 'the delete of the watched record');
  assert.deepEqual(summary(events), [`update:${watched.id}`, `delete:${watched.id}`]);
  assert.equal(events[0].record.title, 'watched, edited');
});

test('options apply filter, expand and fields to the payload', async () => {
  const pb = subscriber();
  const events = await collect(pb, POSTS, '*', {
    filter: 'views > 10',
    expand: 'author',
    fields: 'id,title,expand.author.name',
  });
  const plain = await collect(pb, POSTS, '*');

  const low = await su.collection(POSTS).create({ title: 'low', views: 5, author: author.id });
  const high = await su.collection(POSTS).create({ title: 'high', views: 50, author: author.id });
  await waitFor(events, (e) => e.record.id === high.id, 'the filtered-in create');
  await waitFor(plain, (e) => e.record.id === high.id, 'the plain create');

  assert.deepEqual(summary(events), [`create:${high.id}`], 'the filter kept out views = 5');
  assert.deepEqual(events[0].record, { id: high.id, title: 'high', expand: { author: { name: 'Ada' } } });
  assert.deepEqual(summary(plain), [`create:${low.id}`, `create:${high.id}`], 'the same client without options gets both');
  assert.equal(plain[1].record.expand, undefined);
});

test('a user without access receives nothing about a record it cannot view', async () => {
  const alice = await signUp('rt_alice');
  const bob = await signUp('rt_bob');
  const aliceId = alice.authStore.record.id;
  const bobId = bob.authStore.record.id;
  const aliceEvents = await collect(alice, PRIVATE, '*');
  const bobEvents = await collect(bob, PRIVATE, '*');
  const guest = subscriber();
  const guestEvents = await collect(guest, PRIVATE, '*');
  // The guest's barrier: a public collection it can see, on the same stream.
  const guestPosts = await collect(guest, POSTS, '*');

  const note = await alice.collection(PRIVATE).create({ text: 'mine', owner: aliceId });
  // Bob may also name alice's record directly; the view rule still keeps it from him.
  const bobDirect = await collect(bob, PRIVATE, note.id);
  await alice.collection(PRIVATE).update(note.id, { text: 'mine, edited' });
  await alice.collection(PRIVATE).delete(note.id);
  const own = await bob.collection(PRIVATE).create({ text: 'bob', owner: bobId });
  const barrier = await su.collection(POSTS).create({ title: 'barrier' });

  await waitFor(aliceEvents, (e) => e.action === 'delete', "alice's delete event");
  await waitFor(bobEvents, (e) => e.record.id === own.id, "bob's own create");
  await waitFor(guestPosts, (e) => e.record.id === barrier.id, "the guest's barrier");

  assert.deepEqual(summary(aliceEvents), [`create:${note.id}`, `update:${note.id}`, `delete:${note.id}`]);
  assert.deepEqual(summary(bobEvents), [`create:${own.id}`], 'bob sees only his own note');
  assert.deepEqual(bobDirect, [], "naming alice's record does not reveal it");
  assert.deepEqual(guestEvents, [], 'a guest sees no private note');
});

test('the subscription POST takes the caller auth and refuses a different user', async () => {
  const alice = await signUp('rt_carol');
  await collect(alice, PRIVATE, '*');
  const clientId = alice.realtime.clientId;
  assert.match(clientId, /^[a-z0-9]{40}$/);
  const dave = await signUp('rt_dave');
  const res = await fetch(`${dave.baseURL}/api/realtime`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: dave.authStore.token },
    body: JSON.stringify({ clientId, subscriptions: [`${PRIVATE}/*`] }),
  });
  assert.equal(res.status, 403);
  const unknown = await fetch(`${dave.baseURL}/api/realtime`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: 'x'.repeat(40), subscriptions: [] }),
  });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).message, 'Missing or invalid client id.');
});
