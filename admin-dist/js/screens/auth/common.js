// Pieces the public pages share: the centred card they render in, storing a superuser session,
// and reading the (unverified) claims of an email-link token to learn its collection.

import { h } from '../../lib/dom.js';
import { clearErrors, showErrors } from '../../lib/ui.js';
import { auth } from '../../lib/api.js';
import { navigate } from '../../lib/router.js';

/** The bare, centred card every sign-in and email-link page renders in. */
export function authPage(title, ...children) {
  return h('div', { class: 'auth-page' }, h('section', { class: 'auth-card' }, h('p', { class: 'auth-brand' }, 'vaultbase'), h('h1', {}, title), children));
}

/** Keeps the session of an auth response and goes where the user was headed. */
export function signedIn(res, query) {
  auth.save(res.token, res.record);
  const target = query?.get?.('redirect') || '/collections';
  navigate(target.startsWith('/') ? target : '/collections');
}

/** Claims of an email-link token, or null when it is not one (the server verifies it). */
export function linkClaims(token) {
  const claims = auth.decode(token || '');
  if (!claims || typeof claims.collectionId !== 'string' || !claims.collectionId) return null;
  return claims;
}

/** The card shown for a link that cannot be used at all. */
export function badLink(title) {
  return authPage(title, h('p', { class: 'error', role: 'alert' }, 'This link is invalid or incomplete. Ask for a new one.'));
}

/** A line that says the link expired (the server would refuse it). */
export function expiredNote(claims) {
  return claims.exp && claims.exp * 1000 < Date.now() ? h('p', { class: 'error', role: 'alert' }, 'This link has expired. Ask for a new one.') : null;
}

/** The message of a 400 without field errors, shown beside `name` instead of under the form. */
export function besideField(form, err, name) {
  const hasFieldErrors = err?.data && Object.keys(err.data).length > 0;
  if (hasFieldErrors) return false;
  const slot = form.querySelector(`[data-error-for="${name}"]`);
  if (!slot) return false;
  slot.textContent = err.message;
  form.querySelector(`[name="${name}"]`)?.setAttribute('aria-invalid', 'true');
  form.querySelectorAll('.form-error').forEach((el) => {
    el.textContent = '';
  });
  return true;
}

/**
 * Runs `action(form)` on submit with the submit button disabled meanwhile; an API error is shown
 * beside its inputs, then handed to `onError` (for a page's extra hint).
 */
export function onSubmit(form, action, onError) {
  const submit = form.querySelector('[type=submit]');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await action(form);
    } catch (err) {
      showErrors(form, err);
      onError?.(err);
    } finally {
      submit.disabled = false;
    }
  });
}
