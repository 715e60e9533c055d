// `pb.crons` end to end: the listing in PocketBase's order and shape, a manual run, and the
// refusals (unknown job, no superuser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, refused } from './lib.mjs';

const SYSTEM = {
  __pbDBOptimize__: '0 0 * * *',
  __pbMFACleanup__: '0 * * * *',
  __pbOTPCleanup__: '0 * * * *',
  __pbLogsCleanup__: '0 */6 * * *',
};

test('getFullList lists user jobs first and every PocketBase system job with its expression', async () => {
  const pb = await superuser();
  const jobs = await pb.crons.getFullList();
  for (const job of jobs) {
    assert.deepEqual(Object.keys(job).sort(), ['expression', 'id']);
  }
  for (const [id, expression] of Object.entries(SYSTEM)) {
    assert.equal(jobs.find((j) => j.id === id)?.expression, expression, `${id} in ${JSON.stringify(jobs)}`);
  }
  const firstSystem = jobs.findIndex((j) => j.id.startsWith('__pb'));
  assert.ok(jobs.slice(firstSystem).every((j) => j.id.startsWith('__pb')), JSON.stringify(jobs));
  const user = jobs.slice(0, firstSystem).map((j) => j.id);
  assert.deepEqual(user, [...user].sort());
});

test('run starts a job (204 → true); an unknown job is 404; a guest is refused', async () => {
  const pb = await superuser();
  assert.equal(await pb.crons.run('__pbOTPCleanup__'), true);
  const err = await refused(pb.crons.run('no-such-job'), 404);
  assert.equal(err.response.message, 'Missing or invalid cron job.');
  await refused(client().crons.getFullList(), 401);
  await refused(client().crons.run('__pbOTPCleanup__'), 401);
});
