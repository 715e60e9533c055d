// Journey: a superuser builds a small schema in the collection editor — an auth collection and a
// `posts` base collection with a relation to it and a file field — then renames and drops fields
// through the change confirmation, previews a view query, truncates and deletes; the server's
// schema is checked after each step, and the editor is shot at 1280 px, at 390 px and dark.
import { api, assert, checkLabels, env, journey, shot } from '../lib.mjs';
import { addField, dropCollections, expectFailedRequests, signInWithToken, submitEditor } from './collections-lib.mjs';

journey('collections', async ({ page, errors }) => {
  const token = await signInWithToken(page);
  await dropCollections(token, ['uic_posts_view', 'uic_scratch', 'uic_all', 'uic_posts', 'uic_members']);
  await page.reload();
  await page.locator('.coll-overview table').first().waitFor();
  await page.getByRole('cell', { name: /users/ }).first().waitFor();
  await checkLabels(page, 'collections overview');
  await shot(page, 'collections-overview');

  // An auth collection with one extra field.
  await page.getByRole('link', { name: '+ New collection' }).first().click();
  await page.getByRole('heading', { name: 'New collection' }).waitFor();
  await page.getByLabel('Type', { exact: true }).selectOption('auth');
  await page.getByLabel('Name', { exact: true }).fill('uic_members');
  await addField(page, 'text', 'nickname');
  await checkLabels(page, 'new auth collection: fields');
  await page.getByRole('tab', { name: 'Auth options' }).click();
  await page.getByLabel('Enable sign-in with a mailed one-time password').check();
  await page.getByLabel('OTP length').fill('6');
  await checkLabels(page, 'new auth collection: auth options');
  await shot(page, 'collections-editor-auth-options');
  await submitEditor(page, 'uic_members');
  const members = await api('/api/collections/uic_members', { token });
  assert.equal(members.type, 'auth');
  assert.ok(members.fields.some((f) => f.name === 'nickname' && f.type === 'text'), 'nickname field stored');
  assert.equal(members.otp.enabled, true);
  assert.equal(members.otp.length, 6);
  // The sidebar lists the new collection, marked active.
  assert.match(await page.locator('.coll-sidebar a[aria-current=page]').innerText(), /uic_members/);
  // The sidebar search narrows the list; system collections stay folded in their group.
  await page.getByLabel('Search collections').fill('uic_mem');
  assert.deepEqual(await page.locator('.coll-sidebar .coll-name').allInnerTexts(), ['uic_members']);
  await page.getByLabel('Search collections').fill('superusers');
  await page.locator('.coll-system[open] .coll-name', { hasText: '_superusers' }).waitFor();
  await page.getByLabel('Search collections').fill('');
  assert.equal(await page.locator('.coll-system').getAttribute('open'), null, 'the System group folds again');

  // posts: title, a relation to the auth collection, a file field and a throwaway field.
  await page.getByRole('link', { name: '+ New collection' }).first().click();
  await page.getByRole('heading', { name: 'New collection' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('uic_posts');
  await addField(page, 'text', 'title');
  const rel = await addField(page, 'relation', 'author');
  await page.locator(`[name="fields.${rel}.collectionId"]`).selectOption({ label: 'uic_members' });
  await page.locator(`[name="fields.${rel}.cascadeDelete"]`).check();
  const file = await addField(page, 'file', 'cover');
  await page.locator(`[name="fields.${file}.mimeTypes"]`).fill('image/png, image/jpeg');
  await page.locator(`[name="fields.${file}.thumbs"]`).fill('100x100');
  await addField(page, 'text', 'scratch_note');
  await checkLabels(page, 'new base collection: fields');
  await shot(page, 'collections-editor-fields');
  await page.getByRole('tab', { name: 'Indexes' }).click();
  await page.getByLabel('Columns of the new index').selectOption(['title']);
  await page.getByRole('button', { name: '+ Add index' }).click();
  await checkLabels(page, 'new base collection: indexes');
  await shot(page, 'collections-editor-indexes');
  await page.getByRole('tab', { name: 'API rules' }).click();
  await checkLabels(page, 'new base collection: rules');
  await shot(page, 'collections-editor-rules');
  await submitEditor(page, 'uic_posts');
  let posts = await api('/api/collections/uic_posts', { token });
  const author = posts.fields.find((f) => f.name === 'author');
  assert.equal(author?.type, 'relation');
  assert.equal(author.collectionId, members.id);
  assert.equal(author.cascadeDelete, true);
  const cover = posts.fields.find((f) => f.name === 'cover');
  assert.equal(cover?.type, 'file');
  assert.deepEqual(cover.mimeTypes, ['image/png', 'image/jpeg']);
  assert.equal(posts.indexes.length, 1);
  assert.match(posts.indexes[0], /\(title\)/);

  // Rename title → headline and drop scratch_note: the confirmation lists both before anything is sent.
  const titleId = posts.fields.find((f) => f.name === 'title').id;
  const titleRow = page.locator('.field-row[data-field-name=title]');
  const titleIndex = await titleRow.getAttribute('data-index');
  await page.locator(`[name="fields.${titleIndex}.name"]`).fill('headline');
  await page.getByRole('button', { name: 'Remove scratch_note' }).click();
  await page.locator('[data-action=save]').click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.locator('[data-kind=rename]').innerText(), /title\s*→\s*headline/);
  assert.match(await dialog.locator('[data-kind=drop]').innerText(), /scratch_note.*lost/);
  await checkLabels(page, 'save confirmation');
  await shot(page, 'collections-confirm-changes');
  // Cancelling sends nothing.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  posts = await api('/api/collections/uic_posts', { token });
  assert.ok(posts.fields.some((f) => f.name === 'title'), 'cancel left the schema alone');
  await page.locator('[data-action=save]').click();
  await page.getByRole('dialog').getByRole('button', { name: 'Apply changes' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await page.locator('.toast', { hasText: 'Saved uic_posts.' }).waitFor();
  await page.locator('.field-row[data-field-name=headline]').waitFor();
  posts = await api('/api/collections/uic_posts', { token });
  assert.equal(posts.fields.find((f) => f.id === titleId)?.name, 'headline', 'the same field, renamed');
  assert.ok(!posts.fields.some((f) => f.name === 'scratch_note'), 'scratch_note dropped');

  // A view collection: the query is previewed as it is typed, and a bad query's error shows under it.
  await api('/api/collections/uic_posts/records', { method: 'POST', token, body: { headline: 'Hello view' } });
  await page.getByRole('link', { name: '+ New collection' }).first().click();
  await page.getByRole('heading', { name: 'New collection' }).waitFor();
  await page.getByLabel('Type', { exact: true }).selectOption('view');
  await page.getByLabel('Name', { exact: true }).fill('uic_posts_view');
  await page.getByLabel('View query (SQL)').fill('SELECT id, headline FROM uic_posts');
  await page.locator('.view-preview td', { hasText: 'Hello view' }).waitFor();
  await checkLabels(page, 'view collection');
  await shot(page, 'collections-editor-view-preview');
  await page.getByLabel('View query (SQL)').fill('SELECT id, nope FROM uic_posts');
  await page.locator('.view-preview-error', { hasText: /nope/ }).waitFor();
  expectFailedRequests(errors, 400);
  await page.getByLabel('View query (SQL)').fill('SELECT id, headline FROM uic_posts');
  await page.locator('.view-preview td', { hasText: 'Hello view' }).waitFor();
  await submitEditor(page, 'uic_posts_view');
  const view = await api('/api/collections/uic_posts_view', { token });
  assert.equal(view.type, 'view');
  assert.ok(view.fields.some((f) => f.name === 'headline'));

  // Every field type with some of its own options, stored as the server reports them back.
  await page.getByRole('link', { name: '+ New collection' }).first().click();
  await page.getByRole('heading', { name: 'New collection' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('uic_all');
  const set = async (i, key, value) => {
    const el = page.locator(`[name="fields.${i}.${key}"]`);
    if (value === true) await el.check();
    else if (key === 'collectionId') await el.selectOption({ label: value });
    else await el.fill(value);
  };
  const OPTIONS = {
    text: { max: '50', pattern: '^[a-z]*$', required: true },
    editor: { maxSize: '1000', convertURLs: true },
    number: { min: '1', max: '10', onlyInt: true },
    bool: { hidden: true },
    email: { onlyDomains: 'example.com' },
    url: { exceptDomains: 'bad.example' },
    date: { min: '2024-01-01 00:00:00.000Z' },
    autodate: { onUpdate: true },
    select: { values: 'a, b, c', maxSelect: '2', presentable: true },
    file: { maxSelect: '3', maxSize: '1000000', protected: true },
    relation: { collectionId: 'users', maxSelect: '5' },
    json: { maxSize: '2000' },
    geoPoint: { help: 'where it is' },
    password: { min: '10' },
  };
  for (const [type, opts] of Object.entries(OPTIONS)) {
    const i = await addField(page, type, `f_${type}`);
    for (const [key, value] of Object.entries(opts)) await set(i, key, value);
  }
  await checkLabels(page, 'every field type');
  await submitEditor(page, 'uic_all');
  const allTypes = await api('/api/collections/uic_all', { token });
  const usersColl = await api('/api/collections/users', { token });
  const byName = Object.fromEntries(allTypes.fields.map((f) => [f.name, f]));
  for (const [type, opts] of Object.entries(OPTIONS)) {
    const f = byName[`f_${type}`];
    assert.equal(f?.type, type, `f_${type} stored as ${type}`);
    for (const [key, value] of Object.entries(opts)) {
      let want = value;
      if (key === 'collectionId') want = usersColl.id;
      else if (['values', 'onlyDomains', 'exceptDomains'].includes(key)) want = value.split(',').map((v) => v.trim());
      else if (typeof value === 'string' && /^\d+$/.test(value)) want = Number(value);
      assert.deepEqual(f[key], want, `f_${type}.${key}`);
    }
  }

  // Saving a collection unchanged round-trips every option (the dialog says nothing changes).
  await page.goto(`${env.url}/_/#/collections/users/edit`);
  await page.getByRole('heading', { name: 'Edit users' }).waitFor();
  await page.locator('[data-action=save]').click();
  await page.getByRole('dialog').getByText('No change to the table').waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Apply changes' }).click();
  await page.locator('.toast', { hasText: 'Saved users.' }).waitFor();
  const usersAfter = await api('/api/collections/users', { token });
  delete usersAfter.updated;
  delete usersColl.updated;
  assert.deepEqual(usersAfter, usersColl);

  // 390 px wide and dark.
  await page.goto(`${env.url}/_/#/collections/uic_posts/edit`);
  await page.getByRole('heading', { name: 'Edit uic_posts' }).waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  // The main navigation slides away when the layout narrows; shoot once it is gone.
  await page.waitForFunction(() => document.querySelector('.sidenav').getBoundingClientRect().right <= 0);
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove()));
  await checkLabels(page, 'editor at 390 px');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the editor scrolls sideways at 390 px by ${overflow}px`);
  await shot(page, 'collections-editor-390');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, 'collections-editor-390-dark');
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${env.url}/_/#/collections`);
  await page.locator('[data-count=uic_posts]').waitFor();
  await shot(page, 'collections-overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // Truncate empties the table; the collection stays.
  await page.goto(`${env.url}/_/#/collections/uic_posts/edit`);
  await page.getByRole('heading', { name: 'Edit uic_posts' }).waitFor();
  await page.locator('[data-action=truncate]').click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete all records' }).click();
  await page.locator('.toast', { hasText: 'is empty now' }).waitFor();
  const after = await api('/api/collections/uic_posts/records', { token });
  assert.equal(after.totalItems, 0);

  // Delete asks for the name: the button stays disabled until it is typed.
  await api('/api/collections', { method: 'POST', token, body: { name: 'uic_scratch', type: 'base' } });
  await page.goto(`${env.url}/_/#/collections/uic_scratch/edit`);
  await page.getByRole('heading', { name: 'Edit uic_scratch' }).waitFor();
  await page.locator('[data-action=delete]').click();
  const del = page.getByRole('dialog').getByRole('button', { name: 'Delete collection' });
  assert.equal(await del.isDisabled(), true);
  await page.getByLabel('Type uic_scratch to confirm').fill('uic_scratc');
  assert.equal(await del.isDisabled(), true);
  await page.getByLabel('Type uic_scratch to confirm').fill('uic_scratch');
  await checkLabels(page, 'delete dialog');
  await del.click();
  await page.waitForURL(/#\/collections$/);
  await assert.rejects(api('/api/collections/uic_scratch', { token }), (err) => err.status === 404);
});
