// Webhooks and jobs: create a webhook (a bad URL's error shows next to the URL; the secret is
// shown once), send a test event, read its delivery log, find the delivery job on the jobs
// page with its attempts, retry it, and turn the webhook off. Webhooks are records of the
// `_webhooks` system collection.
import { api, assert, checkLabels, env, journey, shot } from '../lib.mjs';
import { forgetExpected, openSignedIn } from '../ops.mjs';

const URL_OK = `https://hooks.example.invalid/vb-${Date.now()}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

journey('webhooks', async ({ page, errors }) => {
  const token = await openSignedIn(page, '/webhooks');
  await page.getByRole('heading', { name: 'Webhooks', exact: true }).waitFor();
  await checkLabels(page, 'webhooks');

  await page.getByRole('button', { name: 'New webhook' }).click();
  const form = page.getByRole('dialog', { name: 'New webhook' });
  await checkLabels(page, 'new webhook');
  await form.getByLabel('URL').fill('not a url');
  await form.getByLabel('Events').fill('posts.create, users.*');
  await form.getByLabel('Extra headers').fill('X-Journey: yes');
  await form.getByRole('button', { name: 'Create' }).click();
  await form.locator('[data-error-for="url"]:not(:empty)').waitFor();
  forgetExpected(errors, 400);
  await shot(page, 'webhook-error');
  await form.getByLabel('URL').fill(URL_OK);
  await form.getByRole('button', { name: 'Create' }).click();

  const shown = page.getByRole('dialog', { name: 'Webhook created' });
  const secret = await shown.getByLabel('Signing secret').inputValue();
  assert.match(secret, /\S{16,}/, 'a secret is shown once');
  await shot(page, 'webhook-secret');
  await shown.getByRole('button', { name: 'Done' }).click();

  const hook = (await api('/api/collections/_webhooks/records', { token })).items.find((w) => w.url === URL_OK);
  assert.ok(hook, 'the webhook exists on the server');
  assert.deepEqual(hook.events, ['posts.create', 'users.*']);
  assert.deepEqual(hook.headers, { 'X-Journey': 'yes' });
  assert.equal(hook.secret, undefined, 'the list never shows the secret');
  const row = page.locator(`tr[data-id="${hook.id}"]`);
  await row.getByText('active').waitFor();

  await row.getByRole('button', { name: `Send a test event to ${URL_OK}` }).click();
  await page.locator('.toast', { hasText: 'Test event queued' }).waitFor();
  let deliveries;
  for (let tries = 0; ; tries += 1) {
    deliveries = (await api(`/api/vb/webhooks/${hook.id}/deliveries`, { token })).items;
    if (deliveries.length) break;
    assert.ok(tries < 300, 'the test event was attempted');
    await sleep(100);
  }
  await row.getByRole('button', { name: `Deliveries of ${URL_OK}` }).click();
  const log = page.getByRole('dialog', { name: `Deliveries to ${URL_OK}` });
  await log.locator('tbody tr[data-id]').first().waitFor();
  await log.getByText(deliveries[0].event).first().waitFor();
  await checkLabels(page, 'deliveries');
  await shot(page, 'webhook-deliveries');
  await log.getByRole('button', { name: 'Close' }).last().click();

  // The delivery's job, on the jobs page.
  await page.goto(`${env.url}/_/#/jobs`);
  await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
  await page.getByLabel('Job name').fill('webhook.deliver');
  await page.getByRole('button', { name: 'Filter' }).click();
  const jobRow = page.locator(`tr[data-id="${deliveries[0].job}"]`);
  await jobRow.waitFor();
  await checkLabels(page, 'jobs');
  const job = await api(`/api/vb/jobs/${deliveries[0].job}`, { token });
  await jobRow.click();
  const detail = page.getByRole('dialog', { name: 'Job webhook.deliver' });
  await detail.locator('tbody tr[data-id]').first().waitFor();
  assert.equal(await detail.locator('tbody tr[data-id]').count(), job.attempts.length, 'every attempt is listed');
  await detail.getByText(`${job.attempts.length} of ${job.maxAttempts}`).waitFor();
  await checkLabels(page, 'job detail');
  await shot(page, 'job-detail');
  if (['dead', 'cancelled'].includes(job.status)) {
    await detail.getByRole('button', { name: 'Retry' }).click();
    await page.locator('.toast', { hasText: 'Job queued again.' }).waitFor();
    const again = await api(`/api/vb/jobs/${job.id}`, { token });
    assert.ok(again.status !== job.status || again.updated !== job.updated, 'the retry changed the job');
  } else {
    await detail.getByRole('button', { name: 'Close' }).last().click();
  }

  // Turn the webhook off from its edit form.
  await page.goto(`${env.url}/_/#/webhooks`);
  await row.getByRole('button', { name: `Edit webhook ${URL_OK}` }).click();
  const edit = page.getByRole('dialog', { name: 'Edit webhook' });
  await edit.getByLabel('Active').uncheck();
  await edit.getByRole('button', { name: 'Save' }).click();
  await row.getByText('inactive').waitFor();
  assert.equal((await api(`/api/collections/_webhooks/records/${hook.id}`, { token })).active, false);
  // A paused webhook shows why and offers Resume (paused here through the SQL console, as the
  // delivery handler pauses it after ten failed deliveries in a row).
  const reason = 'paused after 10 failed deliveries in a row; the last: HTTP 500';
  await api('/api/sql', { token, method: 'POST', body: { query: `UPDATE _webhooks SET active = 0, failures = 10, pausedReason = '${reason}' WHERE id = '${hook.id}'`, allowWrites: true } });
  await page.getByRole('button', { name: 'Refresh webhooks' }).click();
  await row.getByText(reason).waitFor();
  await shot(page, 'webhook-paused');
  await row.getByRole('button', { name: `Resume webhook ${URL_OK}` }).click();
  await page.locator('.toast', { hasText: 'Webhook resumed.' }).waitFor();
  await row.getByText('active', { exact: true }).waitFor();
  const resumed = await api(`/api/collections/_webhooks/records/${hook.id}`, { token });
  assert.deepEqual([resumed.active, resumed.failures, resumed.pausedReason], [true, 0, ''], 'resuming clears the pause');
  assert.equal(resumed.secret, undefined, 'no secret after the create');
});
