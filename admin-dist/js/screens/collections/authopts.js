// Auth collection options: password sign-in and its identity fields, OTP, MFA, OAuth2 providers
// (client secrets are write-only: left empty, the stored one is kept), token durations and the
// mail templates. Every input writes into the draft under the JSON path it is named after.

import { h, replace } from '../../lib/dom.js';
import { button } from '../../lib/ui.js';
import { areaIn, boolIn, numIn, selectIn, textIn } from './bind.js';
import { autocomplete } from './rules.js';

/** The providers the server knows (src/worker/auth/oauth2/providers.rs). */
export const OAUTH2_PROVIDERS = [
  ['google', 'Google'],
  ['github', 'GitHub'],
  ['microsoft', 'Microsoft'],
  ['apple', 'Apple'],
  ['gitlab', 'GitLab'],
  ['discord', 'Discord'],
  ['oidc', 'OpenID Connect'],
  ['oidc2', 'OpenID Connect (2)'],
  ['oidc3', 'OpenID Connect (3)'],
];

const TOKENS = [
  ['authToken', 'Auth token'],
  ['verificationToken', 'Email verification token'],
  ['passwordResetToken', 'Password reset token'],
  ['emailChangeToken', 'Email change token'],
  ['fileToken', 'Protected file access token'],
];

const TEMPLATES = [
  ['verificationTemplate', 'Verification email'],
  ['resetPasswordTemplate', 'Password reset email'],
  ['confirmEmailChangeTemplate', 'Email change confirmation'],
];

function section(title, ...children) {
  return h('fieldset', { class: 'card auth-section' }, h('legend', {}, title), children);
}

function template(prefix, label, tpl) {
  return h(
    'div',
    { class: 'mail-template' },
    h('h3', {}, label),
    textIn(`${prefix}.subject`, `${label}: subject`, tpl, 'subject'),
    areaIn(`${prefix}.body`, `${label}: body (HTML)`, tpl, 'body', { rows: 4, code: true, help: 'Placeholders: {APP_NAME}, {APP_URL}, {TOKEN}, {OTP}, {RECORD:fieldName}.' }),
  );
}

export function authOptions(draft, { suggest }) {
  draft.passwordAuth ||= { enabled: true, identityFields: ['email'] };
  draft.otp ||= { enabled: false, duration: 180, length: 8, emailTemplate: { subject: '', body: '' } };
  draft.otp.emailTemplate ||= { subject: '', body: '' };
  draft.mfa ||= { enabled: false, duration: 1800, rule: '' };
  draft.oauth2 ||= { enabled: false, mappedFields: {}, providers: [] };
  draft.oauth2.mappedFields ||= {};
  draft.oauth2.providers ||= [];
  draft.authAlert ||= { enabled: true, emailTemplate: { subject: '', body: '' } };
  draft.authAlert.emailTemplate ||= { subject: '', body: '' };
  TOKENS.forEach(([k]) => (draft[k] ||= { duration: 0 }));
  TEMPLATES.forEach(([k]) => (draft[k] ||= { subject: '', body: '' }));

  const identity = h('div', { class: 'identity-fields', role: 'group', 'aria-label': 'Identity fields' });
  const drawIdentity = () => {
    const candidates = draft.fields.filter((f) => f.name && ['text', 'email'].includes(f.type) && !f.hidden).map((f) => f.name);
    const chosen = new Set(draft.passwordAuth.identityFields || []);
    replace(
      identity,
      h('div', { class: 'label' }, 'Identity fields (sign in with any of them; each needs a unique index)'),
      h(
        'div',
        { class: 'row' },
        candidates.map((name) => {
          const box = h('input', { type: 'checkbox', checked: chosen.has(name), 'aria-label': `Identity field ${name}` });
          box.addEventListener('change', () => {
            const next = new Set(draft.passwordAuth.identityFields || []);
            if (box.checked) next.add(name);
            else next.delete(name);
            draft.passwordAuth.identityFields = candidates.filter((n) => next.has(n));
          });
          return h('label', { class: 'check' }, box, ` ${name}`);
        }),
      ),
      h('div', { class: 'field-error', dataset: { errorFor: 'passwordAuth.identityFields' }, role: 'alert' }),
    );
  };
  drawIdentity();

  const mfaRule = h('textarea', { name: 'mfa.rule', class: 'code', rows: 2, spellcheck: false, 'aria-label': 'MFA rule (empty = every sign-in)' });
  mfaRule.value = draft.mfa.rule || '';
  mfaRule.addEventListener('input', () => (draft.mfa.rule = mfaRule.value));
  autocomplete(mfaRule, suggest);

  const providers = h('div', { class: 'providers' });
  const drawProviders = () => {
    replace(
      providers,
      draft.oauth2.providers.map((p, i) => {
        const pre = `oauth2.providers.${i}`;
        const oidc = /^oidc/.test(p.name);
        return h(
          'div',
          { class: 'card provider' },
          h(
            'div',
            { class: 'grid-2' },
            selectIn(`${pre}.name`, `Provider ${i + 1}`, p, 'name', OAUTH2_PROVIDERS, { onChange: drawProviders }),
            textIn(`${pre}.displayName`, 'Display name', p, 'displayName'),
            textIn(`${pre}.clientId`, 'Client ID', p, 'clientId'),
            textIn(`${pre}.clientSecret`, 'Client secret', p, 'clientSecret', { type: 'password', placeholder: p._stored ? 'unchanged (stored)' : '' }),
            oidc ? textIn(`${pre}.authURL`, 'Auth URL', p, 'authURL') : null,
            oidc ? textIn(`${pre}.tokenURL`, 'Token URL', p, 'tokenURL') : null,
            oidc ? textIn(`${pre}.userInfoURL`, 'User info URL', p, 'userInfoURL') : null,
          ),
          h(
            'div',
            { class: 'row' },
            boolIn(`${pre}.pkce`, 'Use PKCE', p, 'pkce'),
            h('div', { class: 'spacer' }),
            button('Remove provider', () => {
              draft.oauth2.providers.splice(i, 1);
              drawProviders();
            }, { kind: 'ghost', ariaLabel: `Remove provider ${i + 1}` }),
          ),
        );
      }),
      button('+ Add provider', () => {
        const used = new Set(draft.oauth2.providers.map((p) => p.name));
        const name = (OAUTH2_PROVIDERS.find(([n]) => !used.has(n)) || OAUTH2_PROVIDERS[0])[0];
        draft.oauth2.providers.push({ name, clientId: '', clientSecret: '', displayName: '', authURL: '', tokenURL: '', userInfoURL: '', pkce: null, extra: {} });
        drawProviders();
      }),
    );
  };
  drawProviders();

  const node = h(
    'div',
    { class: 'auth-options' },
    section('Password sign-in', boolIn('passwordAuth.enabled', 'Enable sign-in with identity and password', draft.passwordAuth, 'enabled'), identity),
    section(
      'One-time password (OTP)',
      boolIn('otp.enabled', 'Enable sign-in with a mailed one-time password', draft.otp, 'enabled'),
      h('div', { class: 'grid-2' }, numIn('otp.duration', 'OTP lifetime (seconds)', draft.otp, 'duration', { min: 0, step: 1 }), numIn('otp.length', 'OTP length', draft.otp, 'length', { min: 0, step: 1 })),
      template('otp.emailTemplate', 'OTP email', draft.otp.emailTemplate),
    ),
    section(
      'Multi-factor authentication (MFA)',
      boolIn('mfa.enabled', 'Require a second sign-in method', draft.mfa, 'enabled'),
      numIn('mfa.duration', 'MFA window (seconds)', draft.mfa, 'duration', { min: 0, step: 1 }),
      h('div', { class: 'field' }, h('label', { for: (mfaRule.id = `mfa-rule-${Math.random().toString(36).slice(2)}`) }, 'MFA rule (empty = every sign-in)'), h('div', { class: 'ac-wrap' }, mfaRule), h('div', { class: 'field-error', dataset: { errorFor: 'mfa.rule' }, role: 'alert' })),
    ),
    section(
      'OAuth2',
      boolIn('oauth2.enabled', 'Enable OAuth2 sign-in', draft.oauth2, 'enabled'),
      providers,
      h('h3', {}, 'Map provider data to fields'),
      h('div', { class: 'grid-2' }, ['id', 'name', 'username', 'avatarURL'].map((k) => textIn(`oauth2.mappedFields.${k}`, `Provider ${k} → field`, draft.oauth2.mappedFields, k))),
    ),
    section('Token lifetimes (seconds)', h('div', { class: 'grid-2' }, TOKENS.map(([k, label]) => numIn(`${k}.duration`, label, draft[k], 'duration', { min: 0, step: 1 })))),
    section(
      'Mail templates',
      TEMPLATES.map(([k, label]) => template(k, label, draft[k])),
      boolIn('authAlert.enabled', 'Send a new-location sign-in alert', draft.authAlert, 'enabled'),
      template('authAlert.emailTemplate', 'Sign-in alert email', draft.authAlert.emailTemplate),
    ),
  );
  node.refresh = drawIdentity;
  return node;
}
