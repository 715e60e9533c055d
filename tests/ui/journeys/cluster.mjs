// The cluster page on a 2-worker cluster: both workers are listed with the pids of the real
// worker processes (VB_WORKER_PIDS, from tests/ui.rs), the answer agrees with the API, and the
// page stops refreshing when left. Also the hooks page of the same server.
import fs from 'node:fs';
import { api, assert, checkLabels, journey, launch, shot, signIn, superuserToken } from '../lib.mjs';

const expected = (process.env.VB_WORKER_PIDS || '').split(',').filter(Boolean).map(Number).sort();

async function workerPids(page) {
  const cells = await page.locator('.cluster-page tbody td[data-col="pid"]').allTextContents();
  return cells.map(Number).sort();
}

journey('cluster', async ({ page }) => {
  assert.equal(expected.length, 2, 'VB_WORKER_PIDS names the two worker processes');
  for (const pid of expected) {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline.includes('worker'), `pid ${pid} is a vaultbase worker: ${cmdline.join(' ')}`);
  }
  await signIn(page);
  await page.goto(`${page.url().split('#')[0]}#/cluster`);
  await page.getByRole('heading', { name: 'Cluster' }).waitFor();
  await page.locator('.cluster-page tbody td[data-col="pid"]').nth(1).waitFor();
  assert.deepEqual(await workerPids(page), expected, 'the page shows the real worker pids');
  await page.getByText('cluster · 2 workers').waitFor();
  await checkLabels(page, 'cluster');
  await shot(page, 'cluster-1280');

  // Server state: the API (whichever worker answers) reports the same two processes.
  const token = await superuserToken();
  const view = await api('/api/vb/cluster', { token });
  assert.equal(view.mode, 'cluster');
  assert.deepEqual(view.workers.map((w) => w.pid).sort(), expected);
  assert.ok(view.workers.every((w) => w.state === 'ready' && w.restarts === 0), JSON.stringify(view.workers));

  // Leaving the page stops its refresh: no more cluster requests after navigating away.
  let polls = 0;
  page.on('request', (r) => {
    if (r.url().includes('/api/vb/cluster')) polls += 1;
  });
  await page.getByRole('link', { name: 'Hooks', exact: true }).click();
  await page.getByRole('heading', { name: 'Hooks', exact: true }).waitFor();
  await page.getByText(/No load errors|The last reload failed/).waitFor();
  await checkLabels(page, 'hooks');
  await shot(page, 'hooks-1280');
  const before = polls;
  await page.waitForTimeout(4000);
  assert.equal(polls, before, 'the cluster page stopped refreshing once left');

  for (const [name, opts] of [['cluster-390', { width: 390, height: 844 }], ['cluster-dark', { dark: true }]]) {
    const b = await launch(opts);
    try {
      await signIn(b.page);
      await b.page.goto(`${b.page.url().split('#')[0]}#/cluster`);
      await b.page.locator('.cluster-page tbody td[data-col="pid"]').nth(1).waitFor();
      await checkLabels(b.page, name);
      await shot(b.page, name);
      assert.deepEqual(b.errors, [], `${name} logged errors`);
    } finally {
      await b.close();
    }
  }
});
