// pb.backups through the SDK: create (with PocketBase's name rule), getFullList, a download
// through getDownloadURL with a superuser file token, upload of that zip under another name,
// restore (vaultbase answers once every worker serves the restored data; PocketBase restarts
// itself, so the check polls until the restored data answers), and delete.
// tests/sdk.rs runs this file alone, after the others: a restore rolls back every write made
// since its backup, theirs included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { superuser, client, refused, fieldCodes, unique } from './lib.mjs';

/** Retries `check` until it passes (a restarting PocketBase refuses connections for a while). */
async function eventually(check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test('backups: create, list, download with a file token, upload, restore, delete', async () => {
  const pb = await superuser();
  const notes = unique('bk_notes');
  await pb.collections.create({ name: notes, type: 'base', fields: [{ name: 'title', type: 'text' }], listRule: '' });
  await pb.collection(notes).create({ title: 'kept' });

  const name = `${unique('sdk_backup')}.zip`;
  assert.equal(await pb.backups.create(name), true);
  const bad = await refused(pb.backups.create('Not Valid.zip'), 400);
  assert.equal(fieldCodes(bad).name, 'validation_match_invalid');
  const dup = await refused(pb.backups.create(name), 400);
  assert.equal(fieldCodes(dup).name, 'validation_backup_name_exists');

  const listed = await pb.backups.getFullList();
  const mine = listed.find((b) => b.key === name);
  assert.ok(mine, `${name} is listed`);
  assert.ok(mine.size > 0);
  assert.match(mine.modified, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/);

  const fileToken = await pb.files.getToken();
  const res = await fetch(pb.backups.getDownloadURL(fileToken, name));
  assert.equal(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.deepEqual([...bytes.subarray(0, 4)], [0x50, 0x4b, 0x03, 0x04], 'a zip');
  const guest = await fetch(client().backups.getDownloadURL('', name));
  assert.equal(guest.status, 403, 'no file token, no download');

  const uploaded = `${unique('sdk_upload')}.zip`;
  assert.equal(await pb.backups.upload({ file: new File([bytes], uploaded, { type: 'application/zip' }) }), true);
  assert.ok((await pb.backups.getFullList()).some((b) => b.key === uploaded));

  await pb.collection(notes).create({ title: 'dropped' });
  assert.equal(await pb.backups.restore(uploaded), true);
  await eventually(async () => {
    const items = await client().collection(notes).getFullList({ sort: 'title' });
    assert.deepEqual(items.map((i) => i.title), ['kept']);
  });

  // The superuser's token is still good after the restore.
  await eventually(() => pb.backups.delete(name));
  await pb.backups.delete(uploaded);
  const left = await pb.backups.getFullList();
  assert.ok(!left.some((b) => b.key === name || b.key === uploaded));
  await refused(pb.backups.delete(name), 400);
  await pb.collections.delete(notes);
});
