// Records journey: with an `authors` auth collection and a `posts` collection (title, a relation
// to authors, an image file field) set up through the API, a person adds two posts in the browser
// (one with an uploaded PNG and the author picked in the relation picker), sees the thumbnail in
// the table, filters, sees a bad filter's error under the bar, sorts, bulk-deletes one post,
// exports JSON and impersonates the author. Server state is checked through the API and on disk.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { api, assert, checkLabels, env, journey, shot, superuserToken } from '../lib.mjs';

/** A small solid-colour PNG, encoded here so the test needs no fixture file. */
function png(width, height, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: width }, () => [r, g, b]).flat())]);
  const pixels = zlib.deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', pixels), chunk('IEND', Buffer.alloc(0))]);
}

async function setUp(token) {
  for (const name of ['kinds', 'posts', 'authors']) {
    await api(`/api/collections/${name}`, { method: 'DELETE', token }).catch((err) => assert.equal(err.status, 404, err.message));
  }
  const authors = await api('/api/collections', { method: 'POST', token, body: { name: 'authors', type: 'auth', fields: [{ name: 'name', type: 'text', presentable: true }] } });
  const posts = await api('/api/collections', {
    method: 'POST',
    token,
    body: {
      name: 'posts',
      type: 'base',
      fields: [
        { name: 'title', type: 'text', required: true },
        { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
        { name: 'image', type: 'file', maxSelect: 1, mimeTypes: ['image/png', 'image/jpeg'] },
        { name: 'created', type: 'autodate', onCreate: true },
      ],
    },
  });
  const mk = (email, name) => api('/api/collections/authors/records', { method: 'POST', token, body: { email, name, password: 'password123', passwordConfirm: 'password123' } });
  const ann = await mk('ann@example.com', 'Ann Author');
  const bob = await mk('bob@example.com', 'Bob Writer');
  return { authors, posts, ann, bob };
}

/**
 * Signs the browser in by storing a superuser session the way the dashboard does, from a
 * same-origin page that is not the dashboard (so nothing routes to sign-in meanwhile).
 */
async function signInWithToken(page) {
  const res = await api('/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: env.email, password: env.password } });
  await page.goto(`${env.url}/api/health`);
  await page.evaluate(([t, record]) => localStorage.setItem('vb_admin_auth', JSON.stringify({ token: t, record })), [res.token, res.record]);
}

/** Chromium logs every 4xx response to the console; drop the one 400 a step just provoked. */
function forgiveExpected400(errors) {
  const at = errors.findIndex((e) => /status of 400/.test(e));
  assert.ok(at >= 0, 'the provoked 400 was logged');
  errors.splice(at, 1);
}

const rowsOf = (page) => page.locator('.records-table tbody tr:not(.skeleton)');
const titles = (page) => page.locator('.records-table tbody td[data-col="title"]').allTextContents();
async function waitLoaded(page) {
  await page.locator('.records-table tbody tr.skeleton').first().waitFor({ state: 'detached' });
}

journey('records', async ({ page, errors }) => {
  // Chromium asks for /favicon.ico, which the server does not have; that 404 is not the page's.
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204, body: '' }));
  const token = await superuserToken();
  const { authors, posts, ann, bob } = await setUp(token);
  await signInWithToken(page);

  // The empty table.
  await page.goto(`${env.url}/_/#/collections/posts`);
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();
  await waitLoaded(page);
  await page.getByText('No records yet.').waitFor();
  await checkLabels(page, 'records table (empty)');

  // First post: image upload (previewed before saving) and the author picked in the picker.
  await page.getByRole('link', { name: '+ New record' }).click();
  await page.getByRole('heading', { name: 'New posts record' }).waitFor();
  await page.getByLabel('title *').fill('first post');
  await page.locator('input[type=file]').setInputFiles({ name: 'red square.png', mimeType: 'image/png', buffer: png(24, 24, [220, 30, 30]) });
  const preview = page.getByAltText('Preview of red square.png');
  await preview.waitFor();
  assert.ok(await preview.evaluate((img) => img.complete && img.naturalWidth === 24), 'the chosen image is previewed before upload');
  await page.getByRole('button', { name: 'Pick author' }).click();
  const dialog = page.getByRole('dialog', { name: 'Pick a record of authors' });
  await dialog.getByLabel('Search').fill('Ann');
  await dialog.getByText('Bob Writer').waitFor({ state: 'detached' });
  await dialog.getByLabel(/Ann Author/).check();
  await checkLabels(page, 'relation picker');
  await shot(page, 'records-picker');
  await dialog.getByRole('button', { name: 'Select' }).click();
  await page.locator('[data-field="author"] .chip', { hasText: 'Ann Author' }).waitFor();
  await checkLabels(page, 'record form');
  await shot(page, 'records-form');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();

  // Server state: the record, its relation, its file on disk.
  const first = (await api(`/api/collections/posts/records?filter=${encodeURIComponent('title="first post"')}`, { token })).items;
  assert.equal(first.length, 1, 'the first post exists');
  assert.equal(first[0].author, ann.id, 'the relation points at the picked author');
  assert.match(first[0].image, /^red_square_\w+\.png$/, 'the image was stored under a normalized name');
  assert.ok(env.dataDir, 'VB_DATA_DIR must name the data directory of the server (the upload is checked on disk)');
  const onDisk = path.join(env.dataDir, 'storage', posts.id, first[0].id, first[0].image);
  assert.ok(fs.existsSync(onDisk), `the upload is on disk at ${onDisk}`);
  assert.deepEqual(fs.readFileSync(onDisk), png(24, 24, [220, 30, 30]), 'the stored file is the uploaded one');

  // A second post without a file; a missing title shows the API's error next to the input.
  await page.getByRole('link', { name: '+ New record' }).click();
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-error-for="title"]').filter({ hasText: /\S/ }).waitFor();
  assert.equal(await page.getByLabel('title *').getAttribute('aria-invalid'), 'true', 'the title input is marked invalid');
  forgiveExpected400(errors);
  await page.getByLabel('title *').fill('second post');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();
  await waitLoaded(page);
  assert.equal(await rowsOf(page).count(), 2, 'both posts are listed');

  // The table shows the thumbnail and the author's name.
  const firstRow = page.locator(`.records-table tr[data-id="${first[0].id}"]`);
  const thumb = firstRow.locator('img.thumb');
  await thumb.waitFor();
  assert.match(await thumb.getAttribute('src'), /thumb=100x100/);
  await page.waitForFunction((id) => {
    const img = document.querySelector(`tr[data-id="${id}"] img.thumb`);
    return img && img.complete && img.naturalWidth > 0;
  }, first[0].id);
  await firstRow.locator('.chip', { hasText: 'Ann Author' }).waitFor();
  await checkLabels(page, 'records table');
  await shot(page, 'records-table');

  // Filter: only the matching row.
  await page.getByLabel('Filter records').fill('title ~ "first"');
  await page.getByLabel('Filter records').press('Enter');
  await waitLoaded(page);
  assert.deepEqual(await titles(page), ['first post'], 'the filter leaves only the first post');
  assert.match(page.url(), /filter=title/, 'the filter is in the URL');

  // A bad filter: the server's 400 is shown right under the bar.
  await page.getByLabel('Filter records').fill('title ~~ ');
  await page.getByLabel('Filter records').press('Enter');
  const filterError = page.locator('.filter-error');
  await filterError.filter({ hasText: /\S/ }).waitFor();
  assert.equal(await page.getByLabel('Filter records').getAttribute('aria-invalid'), 'true');
  await shot(page, 'records-bad-filter');
  forgiveExpected400(errors);
  await page.getByRole('button', { name: 'Clear' }).click();
  await waitLoaded(page);
  assert.equal(await filterError.textContent(), '', 'clearing the filter clears its error');

  // Sort by title: ascending, then descending.
  const sortTitle = page.locator('th button.th-sort', { hasText: 'title' });
  await sortTitle.click();
  await waitLoaded(page);
  assert.deepEqual(await titles(page), ['first post', 'second post']);
  await sortTitle.click();
  await waitLoaded(page);
  assert.deepEqual(await titles(page), ['second post', 'first post'], 'sorted by title descending');
  assert.match(page.url(), /sort=-title/);
  assert.equal(await page.locator('th[aria-sort]').getAttribute('aria-sort'), 'descending');

  // Export the current view as JSON.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSON' }).click()]);
  const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.deepEqual(exported.map((r) => r.title), ['second post', 'first post'], 'the export holds the records of the current view');

  // Column choice, remembered per collection.
  await page.getByText('Columns').click();
  await page.getByLabel('created', { exact: true }).uncheck();
  await waitLoaded(page);
  assert.equal(await page.locator('th', { hasText: 'created' }).count(), 0, 'the hidden column is gone');
  await page.reload();
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();
  await waitLoaded(page);
  assert.equal(await page.locator('th', { hasText: 'created' }).count(), 0, 'the column choice survives a reload');
  assert.deepEqual(await titles(page), ['second post', 'first post'], 'the sort survives a reload (it is in the URL)');

  // Bulk delete the second post.
  const secondId = (await api(`/api/collections/posts/records?filter=${encodeURIComponent('title="second post"')}`, { token })).items[0].id;
  await page.getByLabel(`Select row ${secondId}`).check();
  await page.getByRole('button', { name: 'Delete selected (1)' }).click();
  await page.locator('dialog [data-confirm]').click();
  await page.locator(`tr[data-id="${secondId}"]`).waitFor({ state: 'detached' });
  await waitLoaded(page);
  assert.deepEqual(await titles(page), ['first post']);
  const left = await api('/api/collections/posts/records', { token });
  assert.deepEqual(left.items.map((r) => r.title), ['first post'], 'the server deleted exactly the selected post');

  // 390 px and dark mode.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload(); // a fresh layout, not the sidebar's slide-out transition mid-way
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();
  await waitLoaded(page);
  await checkLabels(page, 'records table at 390 px');
  await shot(page, 'records-table-390');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.evaluate(() => localStorage.setItem('vb_admin_theme', 'dark'));
  await page.reload();
  await page.getByRole('heading', { name: 'posts', exact: true }).waitFor();
  await waitLoaded(page);
  await shot(page, 'records-table-390-dark');
  await page.setViewportSize({ width: 1280, height: 860 });
  await firstRow.click();
  await page.getByRole('heading', { name: 'Edit posts record' }).waitFor();
  await page.locator('[data-field="image"] img.thumb').waitFor();
  await checkLabels(page, 'record form (edit)');
  await shot(page, 'records-form-dark');
  await page.evaluate(() => localStorage.setItem('vb_admin_theme', 'light'));

  // Impersonate the author: the token shown works for that author.
  await page.goto(`${env.url}/_/#/collections/authors`);
  await page.getByRole('heading', { name: 'authors', exact: true }).waitFor();
  await waitLoaded(page);
  await page.locator(`tr[data-id="${ann.id}"]`).click();
  await page.getByRole('heading', { name: 'Edit authors record' }).waitFor();
  await checkLabels(page, 'auth record form');
  await shot(page, 'records-auth-form');
  await page.getByRole('button', { name: 'Impersonate' }).click();
  const imp = page.getByRole('dialog', { name: /Impersonate/ });
  await imp.getByLabel('Token duration (seconds)').fill('600');
  await imp.getByRole('button', { name: 'Create token' }).click();
  const tokenBox = imp.getByLabel('Token', { exact: true });
  await tokenBox.waitFor();
  await checkLabels(page, 'impersonate dialog');
  await shot(page, 'records-impersonate');
  const impersonated = await tokenBox.inputValue();
  const refreshed = await api('/api/collections/authors/auth-refresh', { method: 'POST', token: impersonated });
  assert.equal(refreshed.record.id, ann.id, 'the impersonation token authenticates as the author');
  assert.equal(refreshed.record.collectionId, authors.id);
  await imp.getByRole('button', { name: 'Close' }).first().click();

  await everyFieldType(page, errors, token, authors, bob);
});

/**
 * A collection with every field type: the table shows a protected image through a file token;
 * the form saves an untouched record unchanged, then sends each edited input's value in the
 * shape PocketBase expects (including file removal + upload and a multi-relation).
 */
async function everyFieldType(page, errors, token, authors, bob) {
  const kinds = await api('/api/collections', {
    method: 'POST',
    token,
    body: {
      name: 'kinds',
      type: 'base',
      fields: [
        { name: 'text', type: 'text' },
        { name: 'editor', type: 'editor' },
        { name: 'num', type: 'number' },
        { name: 'flag', type: 'bool' },
        { name: 'mail', type: 'email' },
        { name: 'link', type: 'url' },
        { name: 'when', type: 'date' },
        { name: 'one', type: 'select', values: ['x', 'y'], maxSelect: 1 },
        { name: 'many', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
        { name: 'data', type: 'json' },
        { name: 'loc', type: 'geoPoint' },
        { name: 'docs', type: 'file', maxSelect: 3, protected: true },
        { name: 'people', type: 'relation', collectionId: authors.id, maxSelect: 5 },
        { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
      ],
    },
  });
  const form = new FormData();
  form.append('@jsonPayload', JSON.stringify({ text: 'hi', editor: '<p>Hello <b>world</b></p>', num: 4.5, flag: true, mail: 'x@example.com', link: 'https://example.com', when: '2024-05-06 07:08:09.123Z', one: 'y', many: ['a', 'c'], data: { k: [1, 2] }, loc: { lon: 12.5, lat: -3.25 } }));
  form.append('docs', new Blob([png(4, 4, [0, 160, 0])], { type: 'image/png' }), 'green.png');
  form.append('docs', new Blob(['hello'], { type: 'text/plain' }), 'note.txt');
  const rec = await api('/api/collections/kinds/records', { method: 'POST', token, body: form });
  const [greenName, noteName] = rec.docs;

  await page.goto(`${env.url}/_/#/collections/kinds`);
  await page.getByRole('heading', { name: 'kinds', exact: true }).waitFor();
  await waitLoaded(page);
  const thumb = page.locator(`tr[data-id="${rec.id}"] img.thumb`);
  assert.match(await thumb.getAttribute('src'), /token=/, 'a protected file is shown with a file token');
  await page.waitForFunction((id) => {
    const img = document.querySelector(`tr[data-id="${id}"] img.thumb`);
    return img && img.complete && img.naturalWidth > 0;
  }, rec.id);
  await checkLabels(page, 'table with every field type');

  // Untouched, the form saves the same values.
  await page.locator(`tr[data-id="${rec.id}"]`).click();
  await page.getByRole('heading', { name: 'Edit kinds record' }).waitFor();
  await checkLabels(page, 'form with every field type');
  await shot(page, 'records-form-every-type');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'kinds', exact: true }).waitFor();
  const same = await api(`/api/collections/kinds/records/${rec.id}`, { token });
  const withoutUpdated = ({ updated, ...rest }) => rest;
  assert.deepEqual(withoutUpdated(same), withoutUpdated(rec), 'an untouched form changes nothing');

  // Every input edited.
  await page.locator(`tr[data-id="${rec.id}"]`).click();
  await page.getByRole('heading', { name: 'Edit kinds record' }).waitFor();
  await page.getByLabel('text', { exact: true }).fill('changed');
  await page.getByLabel('editor', { exact: true }).fill('<p>new</p>');
  await page.getByLabel('num', { exact: true }).fill('7');
  await page.getByLabel('flag', { exact: true }).uncheck();
  await page.getByLabel('mail', { exact: true }).fill('y@example.com');
  await page.getByLabel('link', { exact: true }).fill('https://example.org/x');
  await page.getByLabel('when (UTC)').fill('2025-02-03T04:05:06');
  await page.getByLabel('one', { exact: true }).selectOption('x');
  await page.getByLabel('b', { exact: true }).check();
  await page.getByLabel('c', { exact: true }).uncheck();
  await page.getByLabel('Longitude').fill('-70.5');
  await page.getByLabel('Latitude').fill('40.25');
  await page.getByRole('button', { name: `Remove ${noteName}` }).click();
  await page.locator('[data-field="docs"] input[type=file]').setInputFiles({ name: 'blue.png', mimeType: 'image/png', buffer: png(6, 6, [0, 0, 200]) });
  await page.getByAltText('Preview of blue.png').waitFor();
  await page.getByRole('button', { name: 'Pick people' }).click();
  const picker = page.getByRole('dialog', { name: 'Pick records of authors' });
  await picker.getByLabel(/Bob Writer/).check();
  await picker.getByRole('button', { name: 'Select' }).click();
  await page.locator('[data-field="people"] .chip', { hasText: 'Bob Writer' }).waitFor();
  // Bad JSON is caught in the page, next to its input, before anything is sent.
  await page.getByLabel('data', { exact: true }).fill('{"z": ');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('[data-error-for="data"]', { hasText: 'Invalid JSON' }).waitFor();
  await page.getByLabel('data', { exact: true }).fill('{"z": 1}');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('heading', { name: 'kinds', exact: true }).waitFor();

  const after = await api(`/api/collections/kinds/records/${rec.id}`, { token });
  assert.deepEqual(
    { text: after.text, editor: after.editor, num: after.num, flag: after.flag, mail: after.mail, link: after.link, when: after.when, one: after.one, many: after.many, data: after.data, loc: after.loc, people: after.people },
    { text: 'changed', editor: '<p>new</p>', num: 7, flag: false, mail: 'y@example.com', link: 'https://example.org/x', when: '2025-02-03 04:05:06.000Z', one: 'x', many: ['a', 'b'], data: { z: 1 }, loc: { lon: -70.5, lat: 40.25 }, people: [bob.id] },
  );
  assert.equal(after.docs.length, 2, 'one file removed, one added');
  assert.equal(after.docs[0], greenName, 'the kept file stays first');
  assert.match(after.docs[1], /^blue_\w+\.png$/, 'the new upload is appended');
  const stored = (name) => fs.existsSync(path.join(env.dataDir, 'storage', kinds.id, rec.id, name));
  assert.ok(stored(greenName) && stored(after.docs[1]), 'the kept and the new file are on disk');
  assert.ok(!stored(noteName), 'the removed file is gone from disk');

  // A server-side error lands next to its input.
  await page.locator(`tr[data-id="${rec.id}"]`).click();
  await page.getByRole('heading', { name: 'Edit kinds record' }).waitFor();
  await page.getByLabel('Latitude').fill('95');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('[data-error-for="loc"]').filter({ hasText: /\S/ }).waitFor();
  forgiveExpected400(errors);
  await shot(page, 'records-form-server-error');

  // Pages: 12 records, 10 per page; the page and its size live in the URL.
  for (let i = 0; i < 11; i += 1) await api('/api/collections/kinds/records', { method: 'POST', token, body: { text: `extra ${String(i).padStart(2, '0')}` } });
  await page.goto(`${env.url}/_/#/collections/kinds?sort=text`);
  await page.getByRole('heading', { name: 'kinds', exact: true }).waitFor();
  await waitLoaded(page);
  await page.getByLabel('Records per page').selectOption('10');
  await waitLoaded(page);
  await page.getByText('Page 1 of 2 · 12 total').waitFor();
  assert.equal(await rowsOf(page).count(), 10);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('Page 2 of 2 · 12 total').waitFor();
  await waitLoaded(page);
  assert.equal(await rowsOf(page).count(), 2);
  assert.match(page.url(), /page=2/);
  assert.match(page.url(), /perPage=10/);

  // Bulk delete through /api/batch when batch requests are enabled.
  const before = await api('/api/settings', { token });
  await api('/api/settings', { method: 'PATCH', token, body: { batch: { ...before.batch, enabled: true } } });
  try {
    await page.getByLabel('Select all rows').check();
    await page.getByRole('button', { name: 'Delete selected (2)' }).click();
    const [batchReq] = await Promise.all([page.waitForRequest((r) => r.url().endsWith('/api/batch') && r.method() === 'POST'), page.locator('dialog [data-confirm]').click()]);
    assert.equal(batchReq.postDataJSON().requests.length, 2, 'both deletes went in one batch');
    await page.getByText('Deleted 2 records.').waitFor();
  } finally {
    await api('/api/settings', { method: 'PATCH', token, body: { batch: before.batch } });
  }
  const remaining = await api('/api/collections/kinds/records?perPage=1', { token });
  assert.equal(remaining.totalItems, 10, 'the two records of page 2 were deleted');
  await page.getByText('Page 1 of 1 · 10 total').waitFor();
}
