// Shared by every journey: Debian's chromium under playwright-core (no browser download), the
// environment tests/ui.rs hands over, screenshots, a label scan, and a small API client for
// asserting on server state next to what the page shows. Not a journey itself.
//
// Environment (set by tests/ui.rs): VB_URL (http://127.0.0.1:PORT), VB_EMAIL and VB_PASSWORD
// (a superuser that exists, except in the first-run journey), VB_SETUP_URL (first run only),
// VB_DATA_DIR, VB_SHOTS (directory for screenshots).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export { assert };
export const env = {
  url: process.env.VB_URL,
  email: process.env.VB_EMAIL,
  password: process.env.VB_PASSWORD,
  setupUrl: process.env.VB_SETUP_URL,
  dataDir: process.env.VB_DATA_DIR,
  shots: process.env.VB_SHOTS || path.join(os.tmpdir(), 'vb-ui-shots'),
};
export const CHROMIUM = process.env.VB_CHROMIUM || '/usr/bin/chromium';
/** Longest wait for any one thing to appear on a page (ms); only a broken page gets near it. */
export const WAIT_MS = 20000;

/** Starts chromium (playwright gives it a fresh temporary profile); returns {browser, context, page, close}. */
export async function launch({ width = 1280, height = 860, dark = false } = {}) {
  assert.ok(fs.existsSync(CHROMIUM), `no chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does this)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width, height }, colorScheme: dark ? 'dark' : 'light', acceptDownloads: true });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  return {
    browser,
    context,
    page,
    /** Uncaught page errors and console errors seen so far (CSP violations land here too). */
    errors,
    async close() {
      await browser.close();
    },
  };
}

/** Saves a full-page screenshot as VB_SHOTS/<name>.png and returns its path. */
export async function shot(page, name) {
  fs.mkdirSync(env.shots, { recursive: true });
  const file = path.join(env.shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Signs in through the sign-in page and waits for the collections screen. */
export async function signIn(page, { email = env.email, password = env.password } = {}) {
  await page.goto(`${env.url}/_/#/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/#\/collections/);
}

/**
 * Every visible form control and button has an accessible name: a <label for>, a wrapping label,
 * aria-label, aria-labelledby, title, or (buttons/links) text. Throws listing the offenders.
 */
export async function checkLabels(page, where = '') {
  const missing = await page.evaluate(() => {
    const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    const named = (el) => {
      if (el.getAttribute('aria-label')?.trim() || el.getAttribute('title')?.trim()) return true;
      const by = el.getAttribute('aria-labelledby');
      if (by && by.split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim())) return true;
      if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return true;
      if (['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.textContent.trim()) return true;
      return false;
    };
    const controls = document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href], [role=button], [role=tab], [contenteditable=true]');
    return [...controls].filter((el) => visible(el) && !named(el)).map((el) => el.outerHTML.slice(0, 160));
  });
  assert.deepEqual(missing, [], `controls without an accessible name${where ? ` on ${where}` : ''}`);
}

/** The API as the dashboard sees it; throws with the envelope on non-2xx. */
export async function api(pathname, { method = 'GET', body, token, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = token;
  let payload = body;
  if (body && !(body instanceof FormData) && typeof body !== 'string') {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${env.url}${pathname}`, { method, headers: h, body: payload });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(`${method} ${pathname} → ${res.status}: ${text}`);
    err.status = res.status;
    err.data = data;
    throw err;
  }
  return data;
}

/** A superuser token for server-side assertions. */
export async function superuserToken({ email = env.email, password = env.password } = {}) {
  const res = await api('/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: email, password } });
  return res.token;
}

/** Runs a journey: launches the browser, hands it over, always closes it, exits non-zero on failure. */
export async function journey(name, fn) {
  const b = await launch();
  try {
    await fn(b);
    assert.deepEqual(b.errors, [], 'the page logged errors');
  } catch (err) {
    await shot(b.page, `${name}-failure`).catch(() => {});
    console.error(`journey ${name} failed:`, err);
    process.exitCode = 1;
  } finally {
    await b.close();
  }
}
