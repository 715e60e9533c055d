// Record CRUD and the query language through `pb.collection(name)`: the list helpers the SDK
// builds on getList, filters built with pb.filter, sorting, paging, modifiers, bodies sent as
// JSON and as multipart, and the errors a client sees for bad input.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused, fieldCodes, unique } from './lib.mjs';

const POSTS = unique('posts');

// Titles chosen so a filter value needs quoting: an apostrophe and a double quote.
const SEED = [
  { title: 'alpha', views: 1, tags: ['a'], published: true },
  { title: 'beta', views: 5, tags: ['b', 'c'], published: false },
  { title: 'gamma', views: 9, tags: [], published: true },
  { title: "it's", views: 3, tags: ['a', 'c'], published: true },
  { title: 'say "hi"', views: 7, tags: ['d'], published: false },
];
const titles = (items) => items.map((r) => r.title);

let pb, posts;
const created = [];

before(async () => {
  pb = await superuser();
  await pb.collections.create({
    name: POSTS,
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text', required: true, max: 100 },
      { name: 'views', type: 'number', onlyInt: true, min: 0 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 4 },
      { name: 'published', type: 'bool' },
    ],
  });
  posts = pb.collection(POSTS);
  for (const body of SEED) {
    created.push(await posts.create(body));
  }
});

test('create answers the stored record', () => {
  for (const [i, rec] of created.entries()) {
    assert.match(rec.id, /^[a-z0-9]{15}$/);
    assert.equal(rec.collectionName, POSTS);
    assert.equal(rec.title, SEED[i].title);
    assert.equal(rec.views, SEED[i].views);
    assert.deepEqual(rec.tags, SEED[i].tags);
    assert.equal(rec.published, SEED[i].published);
  }
  assert.equal(new Set(created.map((r) => r.id)).size, SEED.length);
});

test('getOne returns the same record to a guest', async () => {
  const guest = client().collection(POSTS);
  for (const rec of created) {
    assert.deepEqual(await guest.getOne(rec.id), rec);
  }
});

test('getList pages with page, perPage and the totals', async () => {
  const first = await posts.getList(1, 2, { sort: '-views' });
  assert.equal(first.page, 1);
  assert.equal(first.perPage, 2);
  assert.equal(first.totalItems, 5);
  assert.equal(first.totalPages, 3);
  assert.deepEqual(titles(first.items), ['gamma', 'say "hi"']);
  const last = await posts.getList(3, 2, { sort: '-views' });
  assert.equal(last.page, 3);
  assert.deepEqual(titles(last.items), ['alpha']);
  const beyond = await posts.getList(4, 2, { sort: '-views' });
  assert.deepEqual(beyond.items, []);
  assert.equal(beyond.totalItems, 5);
});

test('skipTotal answers -1 totals and still pages', async () => {
  const page = await posts.getList(2, 2, { sort: 'views', skipTotal: true });
  assert.equal(page.totalItems, -1);
  assert.equal(page.totalPages, -1);
  assert.equal(page.page, 2);
  assert.equal(page.perPage, 2);
  assert.deepEqual(titles(page.items), ['beta', 'say "hi"']);
});

test('getFullList gathers every page', async () => {
  const all = await posts.getFullList({ sort: 'title' });
  assert.deepEqual(titles(all), ['alpha', 'beta', 'gamma', "it's", 'say "hi"']);
  // A batch smaller than the result makes the SDK loop until a short page.
  const batched = await posts.getFullList({ batch: 2, sort: '-title' });
  assert.deepEqual(titles(batched), ['say "hi"', "it's", 'gamma', 'beta', 'alpha']);
  const filtered = await posts.getFullList({ filter: 'published = true', sort: 'views' });
  assert.deepEqual(titles(filtered), ['alpha', "it's", 'gamma']);
});

test('sort by several fields, descending and ascending', async () => {
  const all = await posts.getFullList({ sort: '-published,views' });
  assert.deepEqual(titles(all), ['alpha', "it's", 'gamma', 'beta', 'say "hi"']);
});

test('pb.filter quotes values, apostrophes and double quotes included', async () => {
  for (const title of ["it's", 'say "hi"', 'alpha']) {
    const rec = await posts.getFirstListItem(pb.filter('title = {:t}', { t: title }));
    assert.equal(rec.title, title);
  }
  const mixed = await posts.getFullList({
    filter: pb.filter('views >= {:min} && published = {:p} && title != {:not}', { min: 3, p: true, not: 'gamma' }),
  });
  assert.deepEqual(titles(mixed), ["it's"]);
});

test('filter operators: like, or, grouping, multi-select each', async () => {
  const list = async (filter) => titles(await posts.getFullList({ filter, sort: 'title' }));
  assert.deepEqual(await list("title ~ 'amm'"), ['gamma']);
  assert.deepEqual(await list("title !~ 'a'"), ["it's"]);
  assert.deepEqual(await list("(views < 2 || views > 8) && published = true"), ['alpha', 'gamma']);
  assert.deepEqual(await list("tags:each ?= 'c'"), ['beta', "it's"]);
  assert.deepEqual(await list('tags:length = 0'), ['gamma']);
  assert.deepEqual(await list("title = 'nothing'"), []);
});

test('getFirstListItem with no match is a 404', async () => {
  const err = await refused(posts.getFirstListItem(pb.filter('title = {:t}', { t: 'absent' })), 404);
  assert.equal(err.status, 404);
});

test('update applies number and multi-value modifiers', async () => {
  const rec = await posts.create({ title: 'counter', views: 10, tags: ['a', 'b'] });
  const after = await posts.update(rec.id, { 'views+': 5, 'tags-': 'a', 'tags+': ['c', 'd'] });
  assert.equal(after.views, 15);
  assert.deepEqual(after.tags, ['b', 'c', 'd']);
  const down = await posts.update(rec.id, { 'views-': 3, title: 'counted' });
  assert.equal(down.views, 12);
  assert.equal(down.title, 'counted');
  assert.equal((await posts.getOne(rec.id)).views, 12);
  const prepended = await posts.update(rec.id, { '+tags': 'a' });
  assert.deepEqual(prepended.tags, ['a', 'b', 'c', 'd']);
});

test('a multipart body (FormData) is accepted, values typed by the field', async () => {
  const form = new FormData();
  form.append('title', 'from a form');
  form.append('views', '11');
  form.append('published', 'true');
  form.append('tags', 'a');
  form.append('tags', 'd');
  const rec = await posts.create(form);
  assert.equal(rec.title, 'from a form');
  assert.equal(rec.views, 11);
  assert.equal(rec.published, true);
  assert.deepEqual(rec.tags, ['a', 'd']);
  const patch = new FormData();
  patch.append('views+', '1');
  assert.equal((await posts.update(rec.id, patch)).views, 12);
});

test('delete removes the record', async () => {
  const rec = await posts.create({ title: 'short-lived' });
  assert.equal(await posts.delete(rec.id), true);
  await refused(posts.getOne(rec.id), 404);
  await refused(posts.delete(rec.id), 404);
  await refused(posts.update(rec.id, { title: 'x' }), 404);
});

test('validation errors name the field and the code', async () => {
  const missing = await refused(posts.create({ views: 1 }), 400);
  assert.equal(missing.response.message, 'Failed to create record.');
  assert.deepEqual(fieldCodes(missing), { title: 'validation_required' });

  const bad = await refused(posts.create({ title: 'x'.repeat(101), views: -1, tags: ['z'] }), 400);
  assert.deepEqual(fieldCodes(bad), {
    title: 'validation_max_text_constraint',
    views: 'validation_min_number_constraint',
    tags: 'validation_invalid_value',
  });

  const rec = created[0];
  const upd = await refused(posts.update(rec.id, { title: '', 'views+': 1.5 }), 400);
  assert.equal(upd.response.message, 'Failed to update record.');
  assert.deepEqual(fieldCodes(upd), { title: 'validation_required', views: 'validation_only_int_constraint' });
  // The refused update changed nothing.
  assert.deepEqual(await posts.getOne(rec.id), rec);
});

test('a bad filter or sort is a 400 with an empty data object', async () => {
  for (const filter of ["title = 'a' &&", 'nosuchfield = 1', "(title = 'a'", "title = 'a'; DROP TABLE x"]) {
    const err = await refused(posts.getList(1, 10, { filter }), 400);
    assert.deepEqual(err.response.data, {}, filter);
    assert.equal(err.response.message, 'Something went wrong while processing your request.');
  }
  await refused(posts.getList(1, 10, { sort: 'nosuchfield' }), 400);
  // The collection is intact after the attempts.
  assert.ok((await posts.getList(1, 1)).totalItems >= SEED.length);
});

test('a body that is not a JSON object is a 400', async () => {
  for (const body of ['{"title": "unterminated', '[1, 2]', '"text"']) {
    const err = await refused(
      pb.send(`/api/collections/${POSTS}/records`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } }),
      400,
    );
    assert.equal(err.response.message, 'Something went wrong while processing your request.', body);
    assert.deepEqual(err.response.data, {});
  }
});

test('a guest may not filter on @request or @collection', async () => {
  await refused(client().collection(POSTS).getList(1, 10, { filter: "@request.auth.id != ''" }), 403);
  // A superuser may.
  const page = await posts.getList(1, 10, { filter: "@request.auth.id != ''" });
  assert.ok(page.totalItems >= SEED.length);
});

test('unknown collection or record is a 404', async () => {
  const err = await refused(pb.collection(unique('nowhere')).getList(), 404);
  assert.equal(err.response.message, 'Missing collection context.');
  await refused(pb.collection(unique('nowhere')).create({ title: 'x' }), 404);
  await refused(posts.getOne('doesnotexist123'), 404);
});
