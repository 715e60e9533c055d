// Shared by the operations journeys (logs, settings, backups, crons): a signed-in page without
// going through the sign-in screen (the auth journey covers that screen), and a way to drop the
// console lines of an API error a journey provoked on purpose. Not a journey itself.
import { env, superuserToken } from './lib.mjs';

/** Stores a superuser session the way the dashboard does, then opens `hashPath`. Returns the token. */
export async function openSignedIn(page, hashPath) {
  const res = await fetch(`${env.url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ identity: env.email, password: env.password }),
  });
  if (!res.ok) throw new Error(`superuser sign-in failed: ${res.status} ${await res.text()}`);
  const { token, record } = await res.json();
  // Before any script of the page runs, so the first render already sees the session.
  await page.addInitScript(([t, r]) => localStorage.setItem('vb_admin_auth', JSON.stringify({ token: t, record: r })), [token, record]);
  // The dashboard has no favicon; the browser's automatic request for one is not the page's error.
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204, body: '' }));
  await page.goto(`${env.url}/_/#${hashPath}`);
  return token;
}

/**
 * Removes from `errors` the browser's "Failed to load resource … status of <status>" lines that
 * an API error provoked by the journey left (the page showed the error; that is the point).
 */
export function forgetExpected(errors, status) {
  for (let i = errors.length - 1; i >= 0; i -= 1) {
    if (errors[i].includes(`status of ${status}`)) errors.splice(i, 1);
  }
}

export { superuserToken };
