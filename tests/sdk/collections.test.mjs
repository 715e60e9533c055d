// `pb.collections` end to end, with a schema that uses every field type, and records whose
// values go through each type's normalisation and validation.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused, fieldCodes, unique, emailFor } from './lib.mjs';

const PEOPLE = unique('people');
const LABELS = unique('labels');
const THINGS = unique('things');

const THING_FIELDS = () => [
  { name: 'title', type: 'text', required: true, max: 100, presentable: true },
  { name: 'count', type: 'number', min: 0, max: 1000, onlyInt: true },
  { name: 'active', type: 'bool' },
  { name: 'contact', type: 'email', onlyDomains: ['example.com'] },
  { name: 'site', type: 'url' },
  { name: 'body', type: 'editor' },
  { name: 'due', type: 'date' },
  { name: 'stamped', type: 'autodate', onCreate: true, onUpdate: false },
  { name: 'touched', type: 'autodate', onCreate: true, onUpdate: true },
  { name: 'level', type: 'select', values: ['low', 'mid', 'high'], maxSelect: 1 },
  { name: 'tags', type: 'select', values: ['red', 'green', 'blue'], maxSelect: 2 },
  { name: 'meta', type: 'json' },
  { name: 'place', type: 'geoPoint' },
  { name: 'owner', type: 'relation', collectionId: people.id, maxSelect: 1 },
  { name: 'labels', type: 'relation', collectionId: labels.id, maxSelect: 5 },
  // Defined only: uploads belong to the files work.
  { name: 'attachment', type: 'file', maxSelect: 1, maxSize: 1 << 20 },
];

let pb, people, labels, things;

// One auth collection (its `password` field is the password type), one plain target for a
// multi relation, and one collection with a field of every type.
before(async () => {
  pb = await superuser();
  people = await pb.collections.create({
    name: PEOPLE,
    type: 'auth',
    fields: [{ name: 'nickname', type: 'text', max: 40 }],
  });
  labels = await pb.collections.create({ name: LABELS, fields: [{ name: 'name', type: 'text', required: true }] });
  things = await pb.collections.create({ name: THINGS, listRule: '', viewRule: '', fields: THING_FIELDS() });
});

const fieldOf = (collection, name) => collection.fields.find((f) => f.name === name);

test('create returns the collection with its system fields and every field as defined', () => {
  assert.match(things.id, /^pbc_\d+$/);
  assert.equal(things.name, THINGS);
  assert.equal(things.type, 'base');
  assert.equal(things.system, false);
  assert.equal(things.listRule, '');
  assert.equal(things.createRule, null, 'an omitted rule is superusers-only');
  const id = fieldOf(things, 'id');
  assert.equal(id.type, 'text');
  assert.equal(id.primaryKey, true);
  assert.equal(id.system, true);
  for (const def of THING_FIELDS()) {
    const f = fieldOf(things, def.name);
    assert.ok(f, `field ${def.name} exists`);
    assert.equal(f.type, def.type, def.name);
    assert.match(f.id, new RegExp(`^${def.type}\\d+$`), `${def.name} got a type-prefixed field id`);
  }
  assert.equal(fieldOf(things, 'count').onlyInt, true);
  assert.equal(fieldOf(things, 'count').max, 1000);
  assert.deepEqual(fieldOf(things, 'level').values, ['low', 'mid', 'high']);
  assert.equal(fieldOf(things, 'tags').maxSelect, 2);
  assert.deepEqual(fieldOf(things, 'contact').onlyDomains, ['example.com']);
  assert.equal(fieldOf(things, 'stamped').onUpdate, false);
  assert.equal(fieldOf(things, 'owner').collectionId, people.id);
  assert.equal(fieldOf(things, 'labels').maxSelect, 5);
  assert.equal(fieldOf(things, 'title').presentable, true);
});

test('an auth collection gets the auth system fields, password among them', () => {
  assert.equal(people.type, 'auth');
  const password = fieldOf(people, 'password');
  assert.equal(password.type, 'password');
  assert.equal(password.hidden, true);
  for (const name of ['email', 'emailVisibility', 'verified', 'tokenKey']) {
    assert.ok(fieldOf(people, name), name);
  }
  assert.equal(fieldOf(people, 'nickname').type, 'text');
  assert.equal(people.passwordAuth.enabled, true);
});

test('getOne by name and by id, getList and getFullList', async () => {
  const byName = await pb.collections.getOne(THINGS);
  const byId = await pb.collections.getOne(things.id);
  assert.deepEqual(byName, byId);
  assert.deepEqual(byName.fields.map((f) => f.name), things.fields.map((f) => f.name));

  const page = await pb.collections.getList(1, 2, { sort: '-created' });
  assert.equal(page.page, 1);
  assert.equal(page.perPage, 2);
  assert.equal(page.items.length, 2);
  assert.ok(page.totalItems >= 4, 'the three created here and _superusers');
  assert.equal(page.totalPages, Math.ceil(page.totalItems / 2));

  const skipped = await pb.collections.getList(1, 2, { skipTotal: true });
  assert.equal(skipped.totalItems, -1);
  assert.equal(skipped.totalPages, -1);

  const all = await pb.collections.getFullList({ sort: 'name' });
  const names = all.map((c) => c.name);
  for (const name of ['_superusers', PEOPLE, LABELS, THINGS]) {
    assert.ok(names.includes(name), `${name} in ${names}`);
  }
  assert.deepEqual(names, [...names].sort(), 'sorted by name');
  // The SDK pages with perPage 1000 and stops on a short page: the small batch makes it loop.
  const batched = await pb.collections.getFullList({ batch: 2, sort: 'name' });
  assert.deepEqual(batched.map((c) => c.name), names);
});

test('a record with a value for every field type comes back normalised', async () => {
  const person = await pb.collection(PEOPLE).create({
    email: emailFor('person'),
    password: 'person password 1',
    passwordConfirm: 'person password 1',
    nickname: 'P',
  });
  assert.equal(person.password, undefined, 'passwords are never returned');
  assert.equal(person.tokenKey, undefined);
  const red = await pb.collection(LABELS).create({ name: 'red' });
  const blue = await pb.collection(LABELS).create({ name: 'blue' });

  const rec = await pb.collection(THINGS).create({
    title: 'Everything',
    count: 42,
    active: true,
    contact: 'someone@example.com',
    site: 'https://example.com/page',
    body: '<p>Hello <b>world</b></p>',
    due: '2030-01-02 03:04:05.678Z',
    level: 'mid',
    tags: ['red', 'blue'],
    meta: { nested: { list: [1, 'two', null] }, ok: true },
    place: { lon: 23.5, lat: -45.25 },
    owner: person.id,
    labels: [red.id, blue.id],
  });
  assert.match(rec.id, /^[a-z0-9]{15}$/);
  assert.equal(rec.collectionId, things.id);
  assert.equal(rec.collectionName, THINGS);
  assert.equal(rec.title, 'Everything');
  assert.equal(rec.count, 42);
  assert.equal(rec.active, true);
  assert.equal(rec.contact, 'someone@example.com');
  assert.equal(rec.site, 'https://example.com/page');
  assert.equal(rec.body, '<p>Hello <b>world</b></p>');
  assert.equal(rec.due, '2030-01-02 03:04:05.678Z');
  assert.match(rec.stamped, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(rec.touched, rec.stamped);
  assert.equal(rec.level, 'mid');
  assert.deepEqual(rec.tags, ['red', 'blue']);
  assert.deepEqual(rec.meta, { nested: { list: [1, 'two', null] }, ok: true });
  assert.deepEqual(rec.place, { lon: 23.5, lat: -45.25 });
  assert.equal(rec.owner, person.id);
  assert.deepEqual(rec.labels, [red.id, blue.id]);
  assert.equal(rec.attachment, '');

  // A guest reads the same values (the collection is public).
  const seen = await client().collection(THINGS).getOne(rec.id);
  assert.deepEqual(seen, rec);

  // Zero values of each type for a record that sets only the required field.
  const bare = await pb.collection(THINGS).create({ title: 'Bare' });
  assert.equal(bare.count, 0);
  assert.equal(bare.active, false);
  assert.equal(bare.contact, '');
  assert.equal(bare.site, '');
  assert.equal(bare.body, '');
  assert.equal(bare.due, '');
  assert.equal(bare.level, '');
  assert.deepEqual(bare.tags, []);
  assert.equal(bare.meta, null);
  assert.deepEqual(bare.place, { lon: 0, lat: 0 });
  assert.equal(bare.owner, '');
  assert.deepEqual(bare.labels, []);

  // onUpdate autodates move, onCreate-only ones stay. The update is sent once the clock (the
  // server's: same machine) is past the create's millisecond, so `touched` must move forward.
  const at = (stamp) => Date.parse(stamp.replace(' ', 'T'));
  while (Date.now() <= at(rec.touched)) await new Promise((r) => setTimeout(r, 1));
  const later = await pb.collection(THINGS).update(rec.id, { count: 43 });
  const answered = Date.now();
  assert.equal(later.stamped, rec.stamped);
  assert.ok(later.touched > rec.touched, `${later.touched} > ${rec.touched}`);
  assert.ok(at(later.touched) <= answered, `${later.touched} is not in the future`);
  assert.equal(later.count, 43);
});

test('invalid values are refused per field with PocketBase codes', async () => {
  const err = await refused(
    pb.collection(THINGS).create({
      count: 1.5,
      contact: 'someone@elsewhere.org',
      site: 'not a url',
      level: 'extreme',
      tags: ['red', 'green', 'blue'],
      place: { lon: 200, lat: 0 },
      owner: 'nosuchrecord123',
    }),
    400,
  );
  assert.equal(err.response.message, 'Failed to create record.');
  assert.deepEqual(fieldCodes(err), {
    title: 'validation_required',
    count: 'validation_only_int_constraint',
    contact: 'validation_email_domain_not_allowed',
    site: 'validation_invalid_url',
    level: 'validation_invalid_value',
    tags: 'validation_too_many_values',
    place: 'validation_invalid_longitude',
    owner: 'validation_missing_rel_records',
  });
  assert.equal(typeof err.response.data.title.message, 'string');

  const big = await refused(pb.collection(THINGS).create({ title: 'x', count: 1001 }), 400);
  assert.deepEqual(fieldCodes(big), { count: 'validation_max_number_constraint' });

  const short = await refused(
    pb.collection(PEOPLE).create({ email: emailFor('short'), password: 'short', passwordConfirm: 'short' }),
    400,
  );
  assert.deepEqual(fieldCodes(short), { password: 'validation_min_text_constraint' });
});

test('update changes rules, adds and renames fields, and keeps the data', async () => {
  const rec = await pb.collection(THINGS).create({ title: 'Kept', count: 7, tags: ['green'] });
  const current = await pb.collections.getOne(THINGS);
  const fields = current.fields.map((f) => (f.name === 'count' ? { ...f, name: 'amount' } : f));
  fields.push({ name: 'extra', type: 'text' });
  const updated = await pb.collections.update(THINGS, { fields, listRule: 'active = true' });
  assert.equal(updated.listRule, 'active = true');
  assert.ok(fieldOf(updated, 'amount'));
  assert.equal(fieldOf(updated, 'amount').id, fieldOf(current, 'count').id, 'a rename keeps the field id');
  assert.equal(fieldOf(updated, 'count'), undefined);
  assert.equal(fieldOf(updated, 'extra').type, 'text');

  const after = await pb.collection(THINGS).getOne(rec.id);
  assert.equal(after.title, 'Kept');
  assert.equal(after.amount, 7);
  assert.deepEqual(after.tags, ['green']);
  assert.equal(after.extra, '');
  assert.equal('count' in after, false);

  // The new list rule is in force for guests at once: `Kept` is not active.
  const guestList = await client().collection(THINGS).getFullList({ filter: `id = "${rec.id}"` });
  assert.equal(guestList.length, 0);
});

test('changing a field type is refused with a 400 naming the field', async () => {
  const current = await pb.collections.getOne(THINGS);
  const fields = current.fields.map((f) => (f.name === 'title' ? { ...f, type: 'number' } : f));
  const err = await refused(pb.collections.update(THINGS, { fields }), 400);
  assert.ok(err.response.data.fields, JSON.stringify(err.response));
});

test("a renamed collection's old name can be used again", async () => {
  const first = await pb.collections.create({ name: unique('reused'), fields: [{ name: 'n', type: 'number' }] });
  await pb.collections.update(first.id, { name: unique('reused_moved') });
  // The new collection's default id (derived from the name) is the renamed one's: it must
  // get another one rather than fail.
  const second = await pb.collections.create({ name: unique('reused') });
  assert.notEqual(second.id, first.id);
  assert.equal((await pb.collections.getOne(unique('reused'))).id, second.id);
  assert.equal((await pb.collections.getOne(unique('reused_moved'))).id, first.id);
});

test('collection errors: duplicate name, missing name, unknown collection', async () => {
  const dup = await refused(pb.collections.create({ name: THINGS }), 400);
  assert.deepEqual(fieldCodes(dup), { name: 'validation_collection_name_exists' });
  const dupCase = await refused(pb.collections.create({ name: THINGS.toUpperCase() }), 400);
  assert.deepEqual(fieldCodes(dupCase), { name: 'validation_collection_name_exists' });
  const noName = await refused(pb.collections.create({ fields: [] }), 400);
  assert.equal(fieldCodes(noName).name, 'validation_required');
  await refused(pb.collections.getOne(unique('missing')), 404);
  await refused(pb.collections.update(unique('missing'), { listRule: '' }), 404);
  await refused(pb.collections.delete(unique('missing')), 404);
});

test('delete: refused while referenced or for a system collection, then gone', async () => {
  const ref = await refused(pb.collections.delete(LABELS), 400);
  assert.equal(typeof ref.response.message, 'string');
  await refused(pb.collections.delete('_superusers'), 400);

  const doomed = await pb.collections.create({ name: unique('doomed'), fields: [{ name: 'n', type: 'number' }] });
  assert.equal(await pb.collections.delete(doomed.id), true);
  await refused(pb.collections.getOne(doomed.id), 404);
  await refused(pb.collection(doomed.name).getList(), 404);
});

test('collections are superusers-only: 401 for a guest, 403 for a user', async () => {
  const guest = client();
  await refused(guest.collections.getList(1, 1), 401);
  await refused(guest.collections.create({ name: unique('nope') }), 401);

  await pb.collection(PEOPLE).create({
    email: emailFor('plain'),
    password: 'plain password 1',
    passwordConfirm: 'plain password 1',
  });
  const user = client();
  await user.collection(PEOPLE).authWithPassword(emailFor('plain'), 'plain password 1');
  assert.equal(user.authStore.isSuperuser, false);
  const err = await refused(user.collections.getOne(THINGS), 403);
  assert.equal(err.response.message, 'The authorized record is not allowed to perform this action.');
});

test('collections can be filtered like records: by type, name, system, id', async () => {
  const auth = await pb.collections.getFullList({ filter: "type='auth'", sort: 'name' });
  const authNames = auth.map((c) => c.name);
  assert.ok(authNames.includes('_superusers') && authNames.includes(PEOPLE), `${authNames}`);
  assert.ok(auth.every((c) => c.type === 'auth'), 'only auth collections');
  assert.ok(!authNames.includes(THINGS), 'a base collection is filtered out');

  const mine = await pb.collections.getList(1, 10, {
    filter: `(name = '${THINGS}' || name = '${LABELS}' || name = '${PEOPLE}') && type = 'base' && system = false`,
    sort: '-name',
  });
  assert.deepEqual(mine.items.map((c) => c.name), [THINGS, LABELS], 'the base ones of the three, sorted');
  assert.equal(mine.totalItems, 2);

  const byId = await pb.collections.getFirstListItem(pb.filter('id = {:id}', { id: things.id }));
  assert.equal(byId.name, THINGS);
  await refused(pb.collections.getList(1, 1, { filter: 'nosuchcolumn = 1' }), 400);
});

test('a rule naming an unknown field is refused on create and update', async () => {
  const err = await refused(pb.collections.update(THINGS, { listRule: 'nosuchfield = 1' }), 400);
  assert.deepEqual(fieldCodes(err), { listRule: 'validation_invalid_rule' });
  const err2 = await refused(pb.collections.create({ name: unique('badrule'), viewRule: 'title = 1' }), 400);
  assert.deepEqual(fieldCodes(err2), { viewRule: 'validation_invalid_rule' });
  await refused(pb.collections.getOne(unique('badrule')), 404);
  // A rule over real fields passes (positive control).
  const ok = await pb.collections.update(THINGS, { listRule: "title != '' && owner.nickname != ''" });
  assert.equal(ok.listRule, "title != '' && owner.nickname != ''");
});
