// Settings › Backups: create a named backup, download it (a zip: it starts with "PK"), upload
// a copy, change a record, restore the backup behind its typed confirmation, and find the
// record's old value on the server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { api, assert, checkLabels, journey, shot } from '../lib.mjs';
import { openSignedIn, superuserToken } from '../ops.mjs';

const NAME = `journey_${Date.now()}.zip`;
const COPY = `copy_${Date.now()}.zip`;

journey('backups', async ({ page }) => {
  let token = await superuserToken();
  const coll = `bk_notes_${Date.now()}`;
  await api('/api/collections', { method: 'POST', token, body: { name: coll, type: 'base', fields: [{ name: 'title', type: 'text' }] } });
  const rec = await api(`/api/collections/${coll}/records`, { method: 'POST', token, body: { title: 'before the backup' } });

  await openSignedIn(page, '/settings/backups');
  await page.getByRole('heading', { name: 'Backups', exact: true }).waitFor();
  await checkLabels(page, 'backups');
  await page.getByLabel('Backup name (optional)').fill(NAME);
  await page.getByRole('button', { name: 'Create backup' }).click();
  const row = page.locator(`tr[data-id="${NAME}"]`);
  await row.waitFor();
  const listed = await api('/api/backups', { token });
  const stored = listed.find((b) => b.key === NAME);
  assert.ok(stored && stored.size > 0, 'the backup exists on the server');
  await shot(page, 'backups');

  const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: `Download ${NAME}` }).click()]);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vb-ui-backup-')), COPY);
  await download.saveAs(file);
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.subarray(0, 2).toString('latin1'), 'PK', 'the download is a zip');
  assert.equal(bytes.length, stored.size, 'the whole backup arrived');

  // Upload it back under another name.
  await page.locator('#backup-upload').setInputFiles(file);
  await page.locator(`tr[data-id="${COPY}"]`).waitFor();
  assert.ok((await api('/api/backups', { token })).some((b) => b.key === COPY), 'the upload is stored');

  await api(`/api/collections/${coll}/records/${rec.id}`, { method: 'PATCH', token, body: { title: 'after the backup' } });
  assert.equal((await api(`/api/collections/${coll}/records/${rec.id}`, { token })).title, 'after the backup');

  await row.getByRole('button', { name: `Restore ${NAME}` }).click();
  const dialog = page.getByRole('dialog', { name: 'Restore a backup' });
  await checkLabels(page, 'restore dialog');
  // A wrong confirmation is refused on the page; nothing is sent.
  await dialog.getByLabel(`Type "${NAME}" to confirm`).fill('nope');
  await dialog.getByRole('button', { name: 'Restore backup' }).click();
  await dialog.getByText('Type the backup name exactly to confirm.').waitFor();
  await shot(page, 'backups-restore-confirm');
  await dialog.getByLabel(`Type "${NAME}" to confirm`).fill(NAME);
  await dialog.getByRole('button', { name: 'Restore backup' }).click();
  await page.locator('.toast', { hasText: `Restored ${NAME}.` }).waitFor({ timeout: 60000 });

  token = await superuserToken();
  assert.equal((await api(`/api/collections/${coll}/records/${rec.id}`, { token })).title, 'before the backup', 'the restore brought the old value back');

  // Delete the uploaded copy from the page.
  await page.locator(`tr[data-id="${COPY}"]`).getByRole('button', { name: `Delete ${COPY}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.locator(`tr[data-id="${COPY}"]`).waitFor({ state: 'detached' });
  assert.ok(!(await api('/api/backups', { token })).some((b) => b.key === COPY), 'the copy is deleted');
  assert.ok((await api('/api/backups', { token })).some((b) => b.key === NAME), 'the other backup is still there');
  await shot(page, 'backups-restored');
});
