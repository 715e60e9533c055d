// Settings › Mail: the sender, SMTP, and a test mail to any address with a template choice.

import { h } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, clearErrors, field, formError, input, pageHeader, select, showErrors } from '../../lib/ui.js';
import { boolField, loadSettings, pick, settingsForm, textField } from './form.js';

const TEMPLATES = [
  ['verification', 'Verification'],
  ['password-reset', 'Password reset'],
  ['email-change', 'Confirm email change'],
  ['otp', 'One-time password'],
  ['login-alert', 'Login alert'],
];

export default async function section() {
  const settings = await loadSettings();
  return h(
    'div',
    {},
    pageHeader('Mail settings', { crumbs: [{ label: 'Settings' }] }),
    settingsForm({
      settings,
      build: (s) => [
        h('div', { class: 'grid-2' }, textField(s, 'meta.senderName', 'Sender name'), textField(s, 'meta.senderAddress', 'Sender address', { type: 'email' })),
        h('h2', {}, 'SMTP server'),
        boolField(s, 'smtp.enabled', 'Use an SMTP server (recommended)'),
        h(
          'div',
          { class: 'grid-2' },
          textField(s, 'smtp.host', 'SMTP host'),
          textField(s, 'smtp.port', 'Port', { type: 'number', min: 0 }),
          textField(s, 'smtp.username', 'Username', { autocomplete: 'off' }),
          textField(s, 'smtp.password', 'Password', { type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' }),
          field({
            label: 'Auth method',
            name: 'smtp.authMethod',
            input: select('smtp.authMethod', [['', 'Default'], ['PLAIN', 'PLAIN'], ['LOGIN', 'LOGIN']], { value: pick(s, 'smtp.authMethod') || '' }),
          }),
          textField(s, 'smtp.localName', 'EHLO/HELO domain (optional)'),
        ),
        boolField(s, 'smtp.tls', 'Use TLS from the start (implicit TLS, usually port 465)'),
      ],
      toBody: (v) => {
        // The password is never sent back to us: an empty box means "keep it".
        if (!v.smtp.password) delete v.smtp.password;
        return v;
      },
    }),
    testMail(),
  );
}

function testMail() {
  const error = formError();
  const result = h('p', { class: 'ok', role: 'status' });
  const go = button('Send test mail', null, { kind: 'primary', type: 'submit' });
  const form = h(
    'form',
    {
      class: 'card test-mail',
      novalidate: true,
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        result.textContent = '';
        go.disabled = true;
        try {
          await send('/api/settings/test/email', { method: 'POST', body: { email: form.elements.email.value, template: form.elements.template.value } });
          result.textContent = `Test mail sent to ${form.elements.email.value}.`;
        } catch (err) {
          showErrors(form, err);
        } finally {
          go.disabled = false;
        }
      },
    },
    h('h2', {}, 'Send a test mail'),
    h('p', { class: 'muted' }, 'Save your SMTP settings first; the test uses what is saved.'),
    h(
      'div',
      { class: 'row' },
      field({ label: 'To address', name: 'email', input: input('email', { type: 'email', required: true, placeholder: 'you@example.com' }) }),
      field({ label: 'Template', name: 'template', input: select('template', TEMPLATES, { value: 'verification' }) }),
    ),
    error,
    result,
    h('div', { class: 'form-actions' }, go),
  );
  return form;
}
