// "Forgotten password?" for superusers: asks for the reset email; the answer is the same whether
// or not the address exists, as the API's.

import { h, replace } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, field, formError, input } from '../../lib/ui.js';
import { authPage, onSubmit } from './common.js';

export default function screen() {
  const body = h('div', {});
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true },
    h('p', { class: 'muted' }, 'Enter the email of your superuser account; a link to set a new password will be sent to it.'),
    field({ label: 'Email', name: 'email', input: input('email', { type: 'email', autocomplete: 'username', required: true }) }),
    formError(),
    button('Send reset link', null, { kind: 'primary', type: 'submit', attrs: { class: 'btn btn-primary btn-block' } }),
  );
  onSubmit(form, async () => {
    const email = form.email.value.trim();
    await send('/api/collections/_superusers/request-password-reset', { method: 'POST', body: { email } });
    replace(body, h('p', { class: 'ok', role: 'status' }, `If ${email} belongs to a superuser, the reset link is on its way. Check the inbox.`));
  });
  replace(body, form);
  return authPage('Reset your password', body, h('p', { class: 'auth-links' }, h('a', { href: '#/login' }, 'Back to sign-in')));
}
