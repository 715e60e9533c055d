// The verification email link of any auth collection: confirmed as soon as the page opens
// (the token is the whole proof), with the outcome shown.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { authPage, badLink, linkClaims } from './common.js';

export default function screen({ params }) {
  const claims = linkClaims(params.token);
  if (!claims) return badLink('Verify your email');
  const status = h('div', { class: 'auth-status', role: 'status' }, h('p', { class: 'muted' }, 'Verifying…'));
  send(`/api/collections/${encodeURIComponent(claims.collectionId)}/confirm-verification`, { method: 'POST', body: { token: params.token } }).then(
    () => replace(status, h('p', { class: 'ok' }, `${claims.email || 'The email address'} is verified. You can close this page.`)),
    (err) => replace(status, h('p', { class: 'error', role: 'alert' }, `The link could not be used: ${err.message} Ask for a new one.`)),
  );
  return authPage('Verify your email', status);
}
