// Shared by the operations journeys (logs, settings, backups, crons): a signed-in page without
// going through the sign-in screen (the auth journey covers that screen), and a wait for a
// screen's heading. Not a journey itself.
import { env, superuserToken } from './lib.mjs';

/** Stores a superuser token the way the dashboard does, then opens `hashPath`. Returns the token. */
export async function openSignedIn(page, hashPath) {
  const res = await fetch(`${env.url}/api/collections/_superusers/auth-with-password`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ identity: env.email, password: env.password }),
  });
  if (!res.ok) throw new Error(`superuser sign-in failed: ${res.status} ${await res.text()}`);
  const { token, record } = await res.json();
  // Any same-origin page will do to reach localStorage; the stylesheet runs no script.
  await page.goto(`${env.url}/_/css/app.css`);
  await page.evaluate(([t, r]) => localStorage.setItem('vb_admin_auth', JSON.stringify({ token: t, record: r })), [token, record]);
  await page.goto(`${env.url}/_/#${hashPath}`);
  return token;
}

export { superuserToken };
