// The password-reset email link of any auth collection: the collection is the token's
// `collectionId` claim; the new password goes to that collection's confirm endpoint.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, field, formError, input } from '../../lib/ui.js';
import { authPage, badLink, expiredNote, linkClaims, onSubmit } from './common.js';

export default function screen({ params }) {
  const claims = linkClaims(params.token);
  if (!claims) return badLink('Set a new password');
  const body = h('div', {});
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true },
    claims.email ? h('p', { class: 'muted' }, `For ${claims.email}`) : null,
    expiredNote(claims),
    field({ label: 'New password', name: 'password', input: input('password', { type: 'password', autocomplete: 'new-password', required: true }) }),
    field({ label: 'Confirm new password', name: 'passwordConfirm', input: input('passwordConfirm', { type: 'password', autocomplete: 'new-password', required: true }) }),
    formError(),
    button('Set new password', null, { kind: 'primary', type: 'submit', attrs: { class: 'btn btn-primary btn-block' } }),
  );
  onSubmit(form, async () => {
    await send(`/api/collections/${encodeURIComponent(claims.collectionId)}/confirm-password-reset`, {
      method: 'POST',
      body: { token: params.token, password: form.password.value, passwordConfirm: form.passwordConfirm.value },
    });
    replace(body, h('p', { class: 'ok', role: 'status' }, 'The password was changed. You can sign in with the new one now.'));
  });
  replace(body, form);
  return authPage('Set a new password', body);
}
