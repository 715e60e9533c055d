// Settings › Application: name, URL, batch API limits and the trusted proxy headers.

import { h } from '../../lib/dom.js';
import { field, input, pageHeader } from '../../lib/ui.js';
import { boolField, loadSettings, settingsForm, textField } from './form.js';

export default async function section() {
  const settings = await loadSettings();
  return h(
    'div',
    {},
    pageHeader('Application', { crumbs: [{ label: 'Settings' }] }),
    settingsForm({
      settings,
      build: (s) => [
        h('div', { class: 'grid-2' }, textField(s, 'meta.appName', 'Application name', { required: true }), textField(s, 'meta.appURL', 'Application URL', { type: 'url' })),
        boolField(s, 'meta.hideControls', 'Hide collection create and edit controls'),
        h('h2', {}, 'Batch API'),
        boolField(s, 'batch.enabled', 'Enable the batch API (/api/batch)'),
        h(
          'div',
          { class: 'grid-2' },
          textField(s, 'batch.maxRequests', 'Max requests in one batch', { type: 'number', min: 0 }),
          textField(s, 'batch.timeout', 'Timeout (seconds)', { type: 'number', min: 0 }),
          textField(s, 'batch.maxBodySize', 'Max body size (bytes, 0 = default)', { type: 'number', min: 0 }),
        ),
        h('h2', {}, 'Trusted proxy'),
        field({
          label: 'Client IP proxy headers',
          name: 'trustedProxy.headers',
          help: 'Comma separated, e.g. X-Forwarded-For, CF-Connecting-IP. Leave empty when not behind a proxy.',
          input: input('trustedProxy.headers', { value: (s.trustedProxy?.headers || []).join(', ') }),
        }),
        boolField(s, 'trustedProxy.useLeftmostIP', 'Use the leftmost IP of the header (instead of the rightmost)'),
      ],
      toBody: (v) => {
        v.trustedProxy.headers = String(v.trustedProxy.headers || '')
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        return v;
      },
    }),
  );
}
