// Superuser sign-in: password, one-time code (OTP) and the second factor when MFA asks for one,
// each shown only when `_superusers/auth-methods` says it is enabled.

import { h, replace } from '../../lib/dom.js';
import { ApiError, send } from '../../lib/api.js';
import { button, field, formError, input, showErrors, clearErrors } from '../../lib/ui.js';
import { authPage, besideField, signedIn } from './common.js';

const BASE = '/api/collections/_superusers';

export default async function screen({ query }) {
  const slot = h('div', { class: 'auth-body' }, h('p', { class: 'muted' }, 'Loading sign-in options…'));
  const page = authPage('Sign in', slot);
  let methods;
  try {
    methods = await send(`${BASE}/auth-methods`);
  } catch (err) {
    replace(slot, h('p', { class: 'error', role: 'alert' }, err.message));
    return page;
  }
  const state = { methods, query, slot, mfaId: '' };
  showFirstFactor(state);
  return page;
}

function showFirstFactor(state) {
  const { methods } = state;
  const parts = [];
  if (methods.password?.enabled) parts.push(passwordForm(state));
  if (methods.otp?.enabled) parts.push(h('div', { class: 'auth-or' }, h('span', {}, 'or')), otpForm(state));
  if (!parts.length) parts.push(h('p', { class: 'error', role: 'alert' }, 'No sign-in method is enabled for superusers.'));
  if (methods.password?.enabled) parts.push(h('p', { class: 'auth-links' }, h('a', { href: '#/request-password-reset' }, 'Forgotten password?')));
  replace(state.slot, parts);
}

/** Handles a response or error of a factor: done, the MFA challenge, or errors in `form`. */
async function finish(state, form, call, errorField) {
  clearErrors(form);
  const submit = form.querySelector('[type=submit]');
  if (submit) submit.disabled = true;
  try {
    signedIn(await call(), state.query);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && err.body?.mfaId) {
      state.mfaId = err.body.mfaId;
      showSecondFactor(state, form.dataset.factor);
      return;
    }
    showErrors(form, err);
    if (errorField) besideField(form, err, errorField);
  } finally {
    if (submit) submit.disabled = false;
  }
}

function passwordForm(state, { email = '' } = {}) {
  const form = h(
    'form',
    { class: 'auth-form', dataset: { factor: 'password' }, novalidate: true },
    field({ label: 'Email', name: 'identity', input: input('identity', { type: 'email', value: email, autocomplete: 'username', required: true }) }),
    field({ label: 'Password', name: 'password', input: input('password', { type: 'password', autocomplete: 'current-password', required: true }) }),
    formError(),
    button('Sign in', null, { kind: 'primary', type: 'submit', attrs: { class: 'btn btn-primary btn-block' } }),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { identity: form.identity.value.trim(), password: form.password.value };
    if (state.mfaId) body.mfaId = state.mfaId;
    finish(state, form, () => send(`${BASE}/auth-with-password`, { method: 'POST', body }), 'password');
  });
  return form;
}

/** Two steps in one form: the email asks for a code, then the code signs in. */
function otpForm(state, { email = '' } = {}) {
  let otpId = '';
  const emailInput = input('email', { type: 'email', value: email, autocomplete: 'username', required: true });
  const codeSlot = h('div', { class: 'otp-code' });
  const submit = button('Send code', null, { type: 'submit', attrs: { class: 'btn btn-block' } });
  const form = h(
    'form',
    { class: 'auth-form', dataset: { factor: 'otp' }, novalidate: true },
    field({ label: 'Send a one-time code to', name: 'email', input: emailInput }),
    codeSlot,
    formError(),
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!otpId) {
      clearErrors(form);
      submit.disabled = true;
      try {
        const res = await send(`${BASE}/request-otp`, { method: 'POST', body: { email: emailInput.value.trim() } });
        otpId = res.otpId;
        emailInput.readOnly = true;
        replace(
          codeSlot,
          h('p', { class: 'muted' }, 'If the address belongs to a superuser, a code is on its way.'),
          field({ label: 'Code from the email', name: 'password', input: input('password', { autocomplete: 'one-time-code', inputmode: 'numeric', required: true }) }),
        );
        replace(submit, 'Sign in with the code');
        codeSlot.querySelector('input')?.focus();
      } catch (err) {
        showErrors(form, err);
      } finally {
        submit.disabled = false;
      }
      return;
    }
    const body = { otpId, password: form.querySelector('[name=password]').value.trim() };
    if (state.mfaId) body.mfaId = state.mfaId;
    finish(state, form, () => send(`${BASE}/auth-with-otp`, { method: 'POST', body }), 'password');
  });
  return form;
}

/** After the first factor: any other enabled method completes the sign-in. */
function showSecondFactor(state, used) {
  const { methods } = state;
  const email = state.slot.querySelector('[name=identity],[name=email]')?.value || '';
  const options = [];
  if (used !== 'otp' && methods.otp?.enabled) options.push(otpForm(state, { email }));
  if (used !== 'password' && methods.password?.enabled) options.push(passwordForm(state, { email }));
  replace(
    state.slot,
    h('p', { class: 'auth-step', role: 'status' }, 'Multi-factor authentication: confirm it is you with a second method.'),
    options.length ? options : h('p', { class: 'error', role: 'alert' }, 'No second method is enabled; ask another superuser to check the MFA settings.'),
    h('p', { class: 'auth-links' }, button('Start over', () => {
      state.mfaId = '';
      showFirstFactor(state);
    }, { kind: 'ghost' })),
  );
}
