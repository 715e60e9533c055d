// `pb.logs` (getList, getOne, getStats) end to end: requests made by one client show up as
// PocketBase-shaped log items for a superuser, found with the filter language; guests are
// refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused, unique } from './lib.mjs';

/** Polls `pb.logs.getList` until `filter` matches at least `count` items (batches land late). */
async function waitFor(pb, filter, count) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const list = await pb.logs.getList(1, 50, { filter, sort: '-created' });
    if (list.totalItems >= count) return list;
    assert.ok(Date.now() < deadline, `${count} log items for ${filter} never appeared`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('requests are listed, viewed and counted through pb.logs', async () => {
  const marker = unique('logmark');
  const guest = client();
  await guest.send(`/api/health?${marker}=ok`, {});
  await refused(guest.send(`/api/collections/${marker}/records`, {}), 404);
  const pb = await superuser();

  const list = await waitFor(pb, `data.url ~ '${marker}'`, 2);
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 50);
  assert.equal(list.totalItems, 2);
  const failed = list.items.find((i) => i.data.status === 404);
  assert.ok(failed, JSON.stringify(list.items));
  assert.equal(failed.level, 8);
  assert.equal(failed.data.type, 'request');
  assert.equal(failed.data.method, 'GET');
  assert.equal(failed.data.auth, '');
  assert.equal(typeof failed.data.execTime, 'number');
  assert.equal(typeof failed.data.error, 'string');
  assert.equal(failed.message, `GET /api/collections/${marker}/records`);
  assert.match(failed.created, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(failed.id, /^[a-z0-9]{15}$/);

  const one = await pb.logs.getOne(failed.id);
  assert.deepEqual(one, failed);
  await refused(pb.logs.getOne('missingmissing1'), 404);

  const errorsOnly = await pb.logs.getList(1, 50, { filter: `data.url ~ '${marker}' && level >= 8` });
  assert.deepEqual(errorsOnly.items.map((i) => i.id), [failed.id]);

  const stats = await pb.logs.getStats({ filter: `data.url ~ '${marker}'` });
  assert.ok(Array.isArray(stats) && stats.length >= 1, JSON.stringify(stats));
  assert.equal(stats.reduce((n, s) => n + s.total, 0), 2);
  for (const s of stats) assert.match(s.date, /^\d{4}-\d\d-\d\d \d\d:00:00\.000Z$/);
});

test('only superusers may read the logs', async () => {
  const guest = client();
  await refused(guest.logs.getList(1, 1), 401);
  await refused(guest.logs.getStats(), 401);
  // Positive control: a superuser gets the envelope.
  const pb = await superuser();
  const list = await pb.logs.getList(1, 1);
  assert.equal(typeof list.totalItems, 'number');
});
