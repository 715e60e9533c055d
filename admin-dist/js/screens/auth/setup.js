// First run: the link printed at start-up (`/_/#/setup/<token>`) creates the first superuser,
// then signs in with it and lands on the collections.

import { h } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, field, formError, input } from '../../lib/ui.js';
import { authPage, signedIn, onSubmit } from './common.js';

export default function screen({ params, query }) {
  const form = h(
    'form',
    { class: 'auth-form', novalidate: true },
    h('p', { class: 'muted' }, 'Create the first superuser. The link works once.'),
    field({ label: 'Email', name: 'email', input: input('email', { type: 'email', autocomplete: 'username', required: true }) }),
    field({ label: 'Password', name: 'password', input: input('password', { type: 'password', autocomplete: 'new-password', required: true }), help: 'At least 8 characters.' }),
    field({ label: 'Confirm password', name: 'passwordConfirm', input: input('passwordConfirm', { type: 'password', autocomplete: 'new-password', required: true }) }),
    formError(),
    button('Create superuser and sign in', null, { kind: 'primary', type: 'submit', attrs: { class: 'btn btn-primary btn-block' } }),
  );
  onSubmit(
    form,
    async () => {
      const email = form.email.value.trim();
      const password = form.password.value;
      await send('/_/setup', { method: 'POST', body: { token: params.token, email, password, passwordConfirm: form.passwordConfirm.value } });
      const res = await send('/api/collections/_superusers/auth-with-password', { method: 'POST', body: { identity: email, password } });
      signedIn(res, query);
    },
    (err) => {
      if (err.status === 401) form.querySelector('.form-error')?.append(' ', h('a', { href: '#/login' }, 'Go to sign-in'));
    },
  );
  return authPage('Welcome to vaultbase', form);
}
