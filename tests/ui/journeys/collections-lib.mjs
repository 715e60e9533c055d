// Helpers shared by the collections and rules journeys (not a journey itself).
import { api, assert, env, superuserToken } from '../lib.mjs';

/**
 * Signs in by storing a superuser token where the dashboard keeps it — the sign-in screen has
 * a journey of its own; these journeys start at the collections screens.
 */
export async function signInWithToken(page) {
  const res = await api('/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: env.email, password: env.password } });
  // The dashboard ships no favicon yet; the browser's automatic request must not count as a page error.
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204, body: '' }));
  // Stored before any page script runs, so the dashboard never detours through sign-in.
  await page.addInitScript(([token, record]) => {
    if (!localStorage.getItem('vb_admin_auth')) localStorage.setItem('vb_admin_auth', JSON.stringify({ token, record }));
  }, [res.token, res.record]);
  await page.goto(`${env.url}/_/#/collections`);
  await page.waitForSelector('.coll-sidebar');
  return res.token;
}

/** Deletes the named collections if they exist (a rerun against the same server starts clean). */
export async function dropCollections(token, names) {
  for (const name of names) {
    try {
      await api(`/api/collections/${name}`, { method: 'DELETE', token });
    } catch (err) {
      assert.equal(err.status, 404, String(err));
    }
  }
}

export { superuserToken };

/** Adds a field of `type` on the editor's Fields tab, names it, and returns its row index. */
export async function addField(page, type, name) {
  const n = await page.locator('.field-row').count();
  await page.getByLabel('New field type').selectOption(type);
  await page.getByRole('button', { name: '+ Add field' }).click();
  await page.locator(`[name="fields.${n}.name"]`).fill(name);
  return n;
}

/** Clicks Save/Create and waits for the saved collection's editor to show. */
export async function submitEditor(page, name) {
  await page.locator('[data-action=save]').click();
  await page.getByRole('heading', { name: `Edit ${name}` }).waitFor();
}

/**
 * Chromium logs every non-2xx fetch as a console error; a journey that provokes an API error on
 * purpose removes those entries (at least one must be there) so that only unexpected ones fail it.
 */
export function expectFailedRequests(errors, status) {
  const wanted = `the server responded with a status of ${status}`;
  const before = errors.length;
  for (let i = errors.length - 1; i >= 0; i -= 1) if (errors[i].includes(wanted)) errors.splice(i, 1);
  assert.ok(errors.length < before, `expected a failed request with status ${status}`);
}
