// Settings › Files storage: the local disk or an S3-compatible bucket, and a connection test.

import { h } from '../../lib/dom.js';
import { send } from '../../lib/api.js';
import { button, pageHeader } from '../../lib/ui.js';
import { boolField, loadSettings, settingsForm, textField } from './form.js';

/** The S3 inputs under `prefix` ('s3' or 'backups.s3'). */
export function s3Fields(s, prefix) {
  return [
    boolField(s, `${prefix}.enabled`, 'Use S3 storage'),
    h(
      'div',
      { class: 'grid-2' },
      textField(s, `${prefix}.endpoint`, 'Endpoint', { placeholder: 'https://s3.example.com' }),
      textField(s, `${prefix}.bucket`, 'Bucket'),
      textField(s, `${prefix}.region`, 'Region'),
      textField(s, `${prefix}.accessKey`, 'Access key', { autocomplete: 'off' }),
      textField(s, `${prefix}.secret`, 'Secret', { type: 'password', autocomplete: 'new-password', placeholder: 'unchanged' }),
    ),
    boolField(s, `${prefix}.forcePathStyle`, 'Force path-style addressing'),
  ];
}

/** Drops an empty S3 secret (never sent back to us: empty means "keep it"). */
export function keepSecret(obj) {
  if (obj && !obj.secret) delete obj.secret;
}

/** A "Test S3" button and the line that shows its answer. */
export function s3Test(filesystem) {
  const out = h('span', { class: 'test-result', role: 'status' });
  const btn = button('Test S3 connection', async () => {
    btn.disabled = true;
    out.className = 'test-result muted';
    out.textContent = 'Testing…';
    try {
      await send('/api/settings/test/s3', { method: 'POST', body: { filesystem } });
      out.className = 'test-result ok';
      out.textContent = 'S3 connection works.';
    } catch (err) {
      out.className = 'test-result error';
      out.textContent = err.message;
    } finally {
      btn.disabled = false;
    }
  });
  return [out, btn];
}

export default async function section() {
  const settings = await loadSettings();
  return h(
    'div',
    {},
    pageHeader('Files storage', { crumbs: [{ label: 'Settings' }] }),
    h('p', { class: 'muted' }, 'Uploaded files are kept on the local disk (pb_data/storage) unless S3 is enabled. Save before testing: the test uses the saved settings.'),
    settingsForm({
      settings,
      build: (s) => s3Fields(s, 's3'),
      toBody: (v) => {
        keepSecret(v.s3);
        return v;
      },
      extraActions: s3Test('storage'),
    }),
  );
}
