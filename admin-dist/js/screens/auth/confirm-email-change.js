// The email-change link of any auth collection: the current password confirms the change to the
// new address named in the token.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, field, formError, input } from '../../lib/ui.js';
import { authPage, badLink, expiredNote, linkClaims, onSubmit } from './common.js';

export default function screen({ params }) {
  const claims = linkClaims(params.token);
  if (!claims) return badLink('Confirm the new email');
  const body = h('div', {});
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true },
    h('p', { class: 'muted' }, claims.newEmail ? `Change the account's email to ${claims.newEmail}.` : "Change the account's email."),
    expiredNote(claims),
    field({ label: 'Current password', name: 'password', input: input('password', { type: 'password', autocomplete: 'current-password', required: true }) }),
    formError(),
    button('Confirm new email', null, { kind: 'primary', type: 'submit', attrs: { class: 'btn btn-primary btn-block' } }),
  );
  onSubmit(form, async () => {
    await send(`/api/collections/${encodeURIComponent(claims.collectionId)}/confirm-email-change`, {
      method: 'POST',
      body: { token: params.token, password: form.password.value },
    });
    replace(body, h('p', { class: 'ok', role: 'status' }, 'The email was changed. Sign in with the new address from now on.'));
  });
  replace(body, form);
  return authPage('Confirm the new email', body);
}
