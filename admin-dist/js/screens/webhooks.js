// Webhooks: records of the `_webhooks` system collection (created, edited and deleted through
// its records API), shown with each hook's paused state and reason; the signing secret is
// shown once, in the answer to the create. What is not CRUD is vaultbase's
// `/api/vb/webhooks/{id}/…`: the delivery log, "send test event" and resume after a pause.

import { h, replace } from '../lib/dom.js';
import { fullList, send } from '../lib/api.js';
import { button, checkbox, clearErrors, confirmDialog, field, formError, input, modal, pageHeader, showErrors, table, toast } from '../lib/ui.js';
import { when } from './jobs.js';

const RECORDS = '/api/collections/_webhooks/records';
const BASE = '/api/vb/webhooks';
const DELIVERIES_SHOWN = 50;

function stateBadge(w) {
  if (w.active) return h('span', { class: 'badge badge-ok' }, 'active');
  return h('span', { class: 'badge badge-warn', title: w.pausedReason || 'turned off' }, w.pausedReason ? 'paused' : 'inactive');
}

/** "X-A: 1\nX-B: 2" ⇄ {"X-A": "1", "X-B": "2"} */
function headersText(obj) {
  return Object.entries(obj || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}
function parseHeaders(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const at = line.indexOf(':');
    if (at < 1) throw new Error(`"${line.trim()}" is not "Name: value".`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

export default async function screen() {
  const slot = h('div');
  let rows = [];
  const columns = [
    // Name over URL in one column, so a row with a pause reason and five actions fits.
    { key: 'url', label: 'Webhook', render: (w) => [w.name ? h('div', {}, w.name) : null, h('div', { class: w.name ? 'muted' : '', title: w.url }, w.url)] },
    { key: 'events', label: 'Events', render: (w) => (w.events || []).join(', ') },
    // The failure count sits with the state, not in a column of its own: with the reason and
    // five actions the row has to fit the content width.
    {
      key: 'active',
      label: 'State',
      render: (w) => [
        stateBadge(w),
        w.failures > 0 && !w.pausedReason ? h('span', { class: 'muted' }, ` ${w.failures} failed in a row`) : null,
        w.pausedReason ? h('div', { class: 'help paused-reason' }, w.pausedReason) : null,
      ],
    },
    {
      key: 'actions',
      label: 'Actions',
      render: (w) =>
        h(
          'div',
          { class: 'row-actions' },
          button('Edit', () => edit(w), { kind: 'ghost', ariaLabel: `Edit webhook ${w.url}` }),
          button('Deliveries', () => deliveries(w), { kind: 'ghost', ariaLabel: `Deliveries of ${w.url}` }),
          button('Send test', () => test(w), { kind: 'ghost', ariaLabel: `Send a test event to ${w.url}` }),
          !w.active && w.pausedReason ? button('Resume', () => resume(w), { kind: 'ghost', ariaLabel: `Resume webhook ${w.url}` }) : null,
          button('Delete', () => remove(w), { kind: 'ghost', ariaLabel: `Delete webhook ${w.url}` }),
        ),
    },
  ];
  const draw = (loading = false) => replace(slot, table({ caption: 'Webhooks', columns, rows, loading, skeletonRows: 4, empty: 'No webhooks yet.' }));
  const reload = async () => {
    try {
      rows = await fullList(RECORDS, { sort: 'created' });
    } catch (err) {
      toast(err.message, 'error');
    }
    draw();
  };

  const test = async (w) => {
    try {
      const res = await send(`${BASE}/${encodeURIComponent(w.id)}/test`, { method: 'POST' });
      toast(`Test event queued (job ${res.jobId}).`, 'ok');
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const resume = async (w) => {
    try {
      await send(`${BASE}/${encodeURIComponent(w.id)}/resume`, { method: 'POST' });
      toast('Webhook resumed.', 'ok');
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };
  const remove = async (w) => {
    if (!(await confirmDialog(`Delete the webhook to ${w.url}?`, { danger: true, confirmLabel: 'Delete' }))) return;
    try {
      await send(`${RECORDS}/${encodeURIComponent(w.id)}`, { method: 'DELETE' });
      reload();
    } catch (err) {
      toast(err.message, 'error');
    }
  };

  const edit = (w) => {
    const creating = !w;
    const m = modal({
      title: creating ? 'New webhook' : 'Edit webhook',
      wide: true,
      body: (close) => {
        const form = h(
          'form',
          {
            id: 'webhook-form',
            novalidate: true,
            onSubmit: async (e) => {
              e.preventDefault();
              clearErrors(form);
              const el = form.elements;
              let headers;
              try {
                headers = parseHeaders(el.headers.value);
              } catch (err) {
                showErrors(form, { message: '', data: { headers: { message: err.message } } });
                return;
              }
              const body = { name: el.name.value.trim(), url: el.url.value.trim(), events: el.events.value.split(',').map((x) => x.trim()).filter(Boolean), headers, active: el.active.checked };
              if (el.secret.value.trim()) body.secret = el.secret.value.trim();
              try {
                const saved = await send(creating ? RECORDS : `${RECORDS}/${encodeURIComponent(w.id)}`, { method: creating ? 'POST' : 'PATCH', body });
                close(true);
                reload();
                if (creating && saved.secret) showSecret(saved.secret);
                else toast('Webhook saved.', 'ok');
              } catch (err) {
                showErrors(form, err);
              }
            },
          },
          field({ label: 'Name', name: 'name', input: input('name', { value: w?.name || '', autocomplete: 'off' }) }),
          field({ label: 'URL', name: 'url', input: input('url', { type: 'url', value: w?.url || '', placeholder: 'https://example.com/hooks/vaultbase', required: true }) }),
          field({ label: 'Events', name: 'events', help: 'Comma separated collection.action, action one of create, update, delete, auth; * matches any (posts.*, *.create).', input: input('events', { value: (w?.events || []).join(', '), placeholder: 'posts.create, users.*' }) }),
          creating
            ? field({ label: 'Signing secret (optional)', name: 'secret', help: 'Leave empty to have one generated. It is shown once, after saving.', input: input('secret', { autocomplete: 'off' }) })
            : field({ label: 'New signing secret (optional)', name: 'secret', help: 'Leave empty to keep the current one, which is never shown again.', input: input('secret', { autocomplete: 'off' }) }),
          field({ label: 'Extra headers', name: 'headers', help: 'One "Name: value" per line.', input: h('textarea', { name: 'headers', rows: 3, class: 'code' }, headersText(w?.headers)) }),
          checkbox('active', 'Active', { checked: w ? w.active : true }),
          w?.pausedReason ? h('p', { class: 'help' }, `Paused: ${w.pausedReason}. Saving with Active ticked resumes it and resets its failure count.`) : null,
          formError(),
        );
        return form;
      },
      actions: [(close) => button('Cancel', () => close(false), { kind: 'ghost' }), button(creating ? 'Create' : 'Save', null, { kind: 'primary', type: 'submit', attrs: { form: 'webhook-form' } })],
    });
    m.dialog.querySelector('input')?.focus();
  };

  draw(true);
  reload();
  return h('div', { class: 'page webhooks-page' }, pageHeader('Webhooks', { actions: [button('Refresh', reload, { kind: 'ghost', ariaLabel: 'Refresh webhooks' }), button('New webhook', () => edit(null), { kind: 'primary' })] }), slot);
}

function showSecret(secret) {
  const box = input('secret-shown', { value: secret, readOnly: true, 'aria-label': 'Signing secret', class: 'secret-once' });
  modal({
    title: 'Webhook created',
    body: h('div', {}, h('p', {}, 'Copy the signing secret now: it is not shown again. Receivers use it to check the signature header of each delivery.'), box),
    actions: [(close) => button('Done', () => close(true), { kind: 'primary' })],
  });
  box.select();
}

async function deliveries(w) {
  const slot = h('div', {}, table({ caption: 'Deliveries', columns: [{ key: 'x', label: 'Delivery' }], rows: [], loading: true, skeletonRows: 5 }));
  modal({ title: `Deliveries to ${w.url}`, wide: true, body: slot, actions: [(close) => button('Close', () => close(false), { kind: 'ghost' })] });
  try {
    const res = await send(`${BASE}/${encodeURIComponent(w.id)}/deliveries`, { query: { limit: DELIVERIES_SHOWN } });
    replace(
      slot,
      table({
        caption: 'Deliveries',
        rows: res.items,
        empty: 'Nothing delivered yet.',
        columns: [
          { key: 'created', label: 'Time (UTC)', render: (d) => when(d.created) },
          { key: 'event', label: 'Event' },
          { key: 'attempt', label: 'Attempt' },
          { key: 'status', label: 'HTTP', render: (d) => h('span', { class: `badge ${d.status >= 200 && d.status < 300 ? 'badge-ok' : 'badge-danger'}` }, d.status || 'failed') },
          { key: 'latencyMs', label: 'Latency', render: (d) => `${d.latencyMs} ms` },
          { key: 'error', label: 'Error / response', render: (d) => (d.error ? h('span', { class: 'error', title: d.error }, d.error) : h('span', { title: d.response || '' }, d.response || '—')) },
        ],
      }),
    );
  } catch (err) {
    replace(slot, h('p', { class: 'error', role: 'alert' }, err.message));
  }
}
