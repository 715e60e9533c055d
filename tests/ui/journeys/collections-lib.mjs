// Helpers shared by the collections and rules journeys (not a journey itself).
import { api, assert, env, superuserToken } from '../lib.mjs';

/**
 * Signs in by storing a superuser token where the dashboard keeps it — the sign-in screen has
 * a journey of its own; these journeys start at the collections screens.
 */
export async function signInWithToken(page) {
  const res = await api('/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: env.email, password: env.password } });
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
