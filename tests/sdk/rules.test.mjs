// API rules as three kinds of client see them: a guest, signed-up users (the owner and
// someone else) and a superuser. Users sign up and log in through the SDK like an app would.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused, fieldCodes, unique, emailFor } from './lib.mjs';

const MEMBERS = unique('members');
const NOTES = unique('notes');
const USER_PASSWORD = 'member password 1';

/** Signs up through the public create rule, then logs in; returns the logged-in client. */
async function signUp(who) {
  const guest = client();
  const record = await guest.collection(MEMBERS).create({
    email: emailFor(who),
    password: USER_PASSWORD,
    passwordConfirm: USER_PASSWORD,
    name: who,
  });
  assert.equal(record.name, who);
  assert.equal(guest.authStore.isValid, false, 'signing up does not log in');
  const auth = await guest.collection(MEMBERS).authWithPassword(emailFor(who), USER_PASSWORD);
  assert.equal(auth.record.id, record.id);
  return guest;
}

let su, alice, bob, aliceId, bobId;
const guest = client();

before(async () => {
  su = await superuser();
  const members = await su.collections.create({
    name: MEMBERS,
    type: 'auth',
    listRule: 'id = @request.auth.id',
    viewRule: 'id = @request.auth.id',
    createRule: '',
    updateRule: 'id = @request.auth.id',
    deleteRule: null,
    fields: [{ name: 'name', type: 'text', max: 50 }],
  });
  await su.collections.create({
    name: NOTES,
    listRule: '',
    viewRule: '',
    createRule: "@request.auth.id != '' && owner = @request.auth.id",
    updateRule: 'owner = @request.auth.id',
    deleteRule: null,
    fields: [
      { name: 'text', type: 'text', required: true },
      { name: 'owner', type: 'relation', collectionId: members.id, maxSelect: 1 },
    ],
  });
  alice = await signUp('alice');
  bob = await signUp('bob');
  aliceId = alice.authStore.record.id;
  bobId = bob.authStore.record.id;
});

test('a signed-up user is logged in, and not a superuser', async () => {
  assert.equal(alice.authStore.isValid, true);
  assert.equal(alice.authStore.isSuperuser, false);
  assert.equal(alice.authStore.record.collectionName, MEMBERS);
  assert.equal(alice.authStore.record.email, emailFor('alice'), 'the owner sees her own email');
  assert.equal(alice.authStore.record.verified, false);
});

test('a user refreshes her own token', async () => {
  const refreshed = await alice.collection(MEMBERS).authRefresh();
  assert.equal(refreshed.record.id, aliceId);
  assert.equal(alice.authStore.token, refreshed.token);
  assert.equal(alice.authStore.isValid, true);
  // The new token is hers: the owner-only view rule lets it through.
  assert.equal((await alice.collection(MEMBERS).getOne(aliceId)).id, aliceId);
});

test('the users collection offers password login by email', async () => {
  const methods = await guest.collection(MEMBERS).listAuthMethods();
  assert.equal(methods.password.enabled, true);
  assert.deepEqual(methods.password.identityFields, ['email']);
});

test('a wrong password is refused and the store stays empty', async () => {
  const c = client();
  const err = await refused(c.collection(MEMBERS).authWithPassword(emailFor('alice'), 'wrong password'), 400);
  assert.equal(err.response.message, 'Failed to authenticate.');
  assert.equal(c.authStore.isValid, false);
});

test('signup validation: duplicate email, mismatched confirmation', async () => {
  const dup = await refused(
    guest.collection(MEMBERS).create({ email: emailFor('alice'), password: USER_PASSWORD, passwordConfirm: USER_PASSWORD }),
    400,
  );
  assert.equal(fieldCodes(dup).email, 'validation_not_unique');
  const mismatch = await refused(
    guest.collection(MEMBERS).create({ email: emailFor('carol'), password: USER_PASSWORD, passwordConfirm: 'something else' }),
    400,
  );
  assert.equal(fieldCodes(mismatch).passwordConfirm, 'validation_values_mismatch');
});

test('list rule: each user sees only herself, a guest nobody, a superuser everyone', async () => {
  const own = await alice.collection(MEMBERS).getList(1, 50);
  assert.equal(own.totalItems, 1);
  assert.equal(own.items[0].id, aliceId);
  const none = await guest.collection(MEMBERS).getList(1, 50);
  assert.equal(none.totalItems, 0, 'a failing list rule filters, it does not refuse');
  assert.deepEqual(none.items, []);
  const all = await su.collection(MEMBERS).getFullList();
  assert.deepEqual(all.map((r) => r.id).sort(), [aliceId, bobId].sort());
});

test('view rule: another user or a guest gets 404', async () => {
  assert.equal((await alice.collection(MEMBERS).getOne(aliceId)).id, aliceId);
  await refused(alice.collection(MEMBERS).getOne(bobId), 404);
  await refused(guest.collection(MEMBERS).getOne(aliceId), 404);
  assert.equal((await su.collection(MEMBERS).getOne(bobId)).email, emailFor('bob'));
});

test('updating your own record also refreshes the SDK auth store', async () => {
  const updated = await alice.collection(MEMBERS).update(aliceId, { name: 'Alice A.' });
  assert.equal(updated.name, 'Alice A.');
  assert.equal(alice.authStore.record.name, 'Alice A.', 'the SDK merged the answer into its store');
  await refused(bob.collection(MEMBERS).update(aliceId, { name: 'hacked' }), 404);
  assert.equal((await su.collection(MEMBERS).getOne(aliceId)).name, 'Alice A.');
});

test('create rule: a user creates her own note, a guest gets 400', async () => {
  const note = await alice.collection(NOTES).create({ text: 'mine', owner: aliceId });
  assert.equal(note.owner, aliceId);
  const err = await refused(guest.collection(NOTES).create({ text: 'anonymous' }), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  // Creating in someone else's name fails the rule too.
  await refused(bob.collection(NOTES).create({ text: 'forged', owner: aliceId }), 400);
});

test('the create rule is checked before the fields: a refused client learns nothing', async () => {
  // Invalid text and an unknown related id: a guest gets the bare refusal, not field errors
  // (which would tell it whether a record id exists).
  const err = await refused(guest.collection(NOTES).create({ text: '', owner: 'nosuchrecord123' }), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assert.deepEqual(err.response.data, {});
  const valid = await refused(guest.collection(NOTES).create({ text: 'fine', owner: 'nosuchrecord123' }), 400);
  assert.deepEqual(valid.response, err.response);
  // A user the rule admits gets the field errors for the same body.
  const invalid = await refused(alice.collection(NOTES).create({ text: '', owner: aliceId }), 400);
  assert.deepEqual(fieldCodes(invalid), { text: 'validation_required' });
});

test('a gated signup: the rule is judged before duplicate emails and password checks', async () => {
  const gated = unique('gated');
  await su.collections.create({
    name: gated,
    type: 'auth',
    createRule: "@request.body.invite = 'letmein'",
    fields: [{ name: 'invite', type: 'text' }],
  });
  const users = guest.collection(gated);
  const body = (who, extra) => ({ email: emailFor(who), password: USER_PASSWORD, passwordConfirm: USER_PASSWORD, ...extra });
  await users.create(body('gina', { invite: 'letmein' }));
  // Refused by the rule: the same bare 400 whether or not the email is taken or the
  // passwords match, so the rule hides which accounts exist.
  const bare = { data: {}, message: 'Failed to create record.', status: 400 };
  for (const attempt of [
    body('gina', { invite: 'guess' }),
    body('nobody', { invite: 'guess' }),
    body('nobody', { invite: 'guess', passwordConfirm: 'not the same' }),
  ]) {
    assert.deepEqual((await refused(users.create(attempt), 400)).response, bare);
  }
  // Admitted by the rule: the real reasons.
  const taken = await refused(users.create(body('gina', { invite: 'letmein' })), 400);
  assert.deepEqual(fieldCodes(taken), { email: 'validation_not_unique' });
  const mismatch = await refused(users.create(body('hal', { invite: 'letmein', passwordConfirm: 'not the same' })), 400);
  assert.deepEqual(fieldCodes(mismatch), { passwordConfirm: 'validation_values_mismatch' });
});

test('owner-only update rule: the owner succeeds, another user and a guest get 404', async () => {
  const note = await alice.collection(NOTES).create({ text: 'draft', owner: aliceId });
  const edited = await alice.collection(NOTES).update(note.id, { text: 'final' });
  assert.equal(edited.text, 'final');
  await refused(bob.collection(NOTES).update(note.id, { text: 'bob was here' }), 404);
  await refused(guest.collection(NOTES).update(note.id, { text: 'guest was here' }), 404);
  // The rule comes before validation: an invalid body is still a 404, not field errors.
  await refused(bob.collection(NOTES).update(note.id, { text: '' }), 404);
  await refused(guest.collection(NOTES).update(note.id, { text: '' }), 404);
  // A superuser bypasses every rule.
  assert.equal((await su.collection(NOTES).update(note.id, { text: 'moderated' })).text, 'moderated');
  assert.equal((await guest.collection(NOTES).getOne(note.id)).text, 'moderated');
});

test('null delete rule: 403 for users, allowed for a superuser', async () => {
  const note = await alice.collection(NOTES).create({ text: 'permanent?', owner: aliceId });
  const err = await refused(alice.collection(NOTES).delete(note.id), 403);
  assert.equal(err.response.message, 'Only superusers can perform this action.');
  await refused(bob.collection(NOTES).delete(note.id), 403);
  await refused(guest.collection(NOTES).delete(note.id), 403);
  assert.equal(await su.collection(NOTES).delete(note.id), true);
  await refused(guest.collection(NOTES).getOne(note.id), 404);
  // Deleting an auth record through a null rule is refused the same way.
  await refused(alice.collection(MEMBERS).delete(aliceId), 403);
});

test('public list and view rules let a guest read notes with filters', async () => {
  await alice.collection(NOTES).create({ text: 'public one', owner: aliceId });
  const page = await guest.collection(NOTES).getList(1, 10, {
    filter: guest.filter('owner = {:o} && text = {:t}', { o: aliceId, t: 'public one' }),
  });
  assert.equal(page.totalItems, 1);
  assert.equal(page.items[0].text, 'public one');
  // A guest cannot see a member's email through the relation; a superuser's identical filter
  // finds the note, so the guest's empty page is the hiding, not a filter matching nothing.
  const byEmail = guest.filter('owner.email = {:e} && text = {:t}', { e: emailFor('alice'), t: 'public one' });
  const hidden = await guest.collection(NOTES).getList(1, 10, { filter: byEmail });
  assert.equal(hidden.totalItems, 0);
  const seen = await su.collection(NOTES).getList(1, 10, { filter: byEmail });
  assert.equal(seen.totalItems, 1);
  assert.equal(seen.items[0].text, 'public one');
});

test('a deleted user token stops working', async () => {
  const carol = await signUp('carol');
  const carolId = carol.authStore.record.id;
  await su.collection(MEMBERS).delete(carolId);
  await refused(carol.collection(MEMBERS).authRefresh(), 401);
  await refused(carol.collection(NOTES).create({ text: 'ghost', owner: carolId }), 400);
});
