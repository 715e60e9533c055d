// Logs: the filter bar (PocketBase's filter language; its errors shown under it), a bar chart
// of requests over time from `/api/logs/stats` (inline SVG of a fixed height, so nothing moves
// when it loads), the paged list with level and status badges, one log's full `data`, and the
// log settings (in `/api/settings` `logs`).

import { h, replace } from '../lib/dom.js';
import { send } from '../lib/api.js';
import { navigate, setQuery } from '../lib/router.js';
import { button, checkbox, clearErrors, field, formError, input, modal, pageHeader, pager, select, showErrors, table, toast } from '../lib/ui.js';

const PER_PAGE = 30;
const CHART_HEIGHT_PX = 120;
const SVG_NS = 'http://www.w3.org/2000/svg';
const LEVELS = { '-4': ['DEBUG', ''], 0: ['INFO', 'badge-ok'], 4: ['WARN', 'badge-warn'], 8: ['ERROR', 'badge-danger'] };

export function levelBadge(level) {
  const [text, kind] = LEVELS[level] || [`L${level}`, ''];
  return h('span', { class: `badge ${kind}`, title: `level ${level}` }, text);
}

function statusBadge(status) {
  if (status == null) return h('span', { class: 'muted' }, '—');
  const kind = status >= 500 ? 'badge-danger' : status >= 400 ? 'badge-warn' : 'badge-ok';
  return h('span', { class: `badge ${kind}` }, String(status));
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  children.forEach((c) => el.append(typeof c === 'string' ? document.createTextNode(c) : c));
  return el;
}

const HOUR_MS = 3600 * 1000;
const MIN_SPAN_HOURS = 24;

/** The stats as one bucket per hour, empty hours included, over at least the last day. */
export function hourly(stats) {
  const at = (d) => Date.parse(String(d).replace(' ', 'T'));
  const byHour = new Map(stats.map((s) => [Math.floor(at(s.date) / HOUR_MS), s.total]));
  const now = Math.floor(Date.now() / HOUR_MS);
  const known = [...byHour.keys()].filter(Number.isFinite);
  const first = Math.min(now - MIN_SPAN_HOURS + 1, ...known);
  const last = Math.max(now, ...known);
  const out = [];
  for (let hr = first; hr <= last; hr += 1) out.push({ date: new Date(hr * HOUR_MS).toISOString().replace('T', ' ').slice(0, 16), total: byHour.get(hr) || 0 });
  return out;
}

/** Bars of `[{date, total}]` (hourly buckets), scaled to the highest. */
export function chart(raw) {
  const stats = hourly(raw);
  const width = 1000;
  const max = Math.max(1, ...stats.map((s) => s.total));
  const peak = Math.max(0, ...stats.map((s) => s.total));
  const total = stats.reduce((n, s) => n + s.total, 0);
  const bw = stats.length ? width / stats.length : width;
  const plot = svg(
    'svg',
    { viewBox: `0 0 ${width} ${CHART_HEIGHT_PX}`, preserveAspectRatio: 'none', class: 'logs-chart-svg', role: 'img', 'aria-label': `Requests over time: ${total} in ${stats.length} hourly buckets, at most ${peak} an hour` },
    ...stats.map((s, i) => {
      const hgt = s.total ? Math.max(2, (s.total / max) * (CHART_HEIGHT_PX - 4)) : 0;
      return svg('rect', { x: i * bw + bw * 0.1, y: CHART_HEIGHT_PX - hgt, width: Math.max(1, bw * 0.8), height: hgt, class: 'logs-bar' }, svg('title', {}, `${s.date}: ${s.total}`));
    }),
  );
  const first = stats[0]?.date || '';
  const last = stats[stats.length - 1]?.date || '';
  return h('figure', { class: 'logs-chart', dataset: { total: String(total) } }, plot, h('figcaption', { class: 'muted' }, h('span', {}, `${first} — ${last} UTC · ${total} requests${total ? ` · peak ${peak}/h` : ''}`)));
}

export default async function screen({ params, query }) {
  if (params.id) return detail(params.id);
  const state = { filter: query.get('filter') || '', page: Number(query.get('page')) || 1, sort: query.get('sort') || '-created' };
  const chartSlot = h('div', { class: 'logs-chart-slot card' }, chart([]));
  const listSlot = h('div', { class: 'logs-list' });
  const pagerSlot = h('div', { class: 'pager-slot' });
  const filterInput = input('filter', { id: 'logs-filter', value: state.filter, placeholder: 'e.g. data.status >= 400 && data.url ~ "/api/"', autocomplete: 'off', spellcheck: false });
  const filterError = h('div', { class: 'field-error', id: 'logs-filter-error', role: 'alert' });
  filterInput.setAttribute('aria-describedby', 'logs-filter-error');
  let seq = 0;

  const columns = [
    { key: 'level', label: 'Level', render: (r) => levelBadge(r.level) },
    { key: 'status', label: 'Status', render: (r) => statusBadge(r.data?.status) },
    { key: 'message', label: 'Message', render: (r) => h('a', { href: `#/logs/${r.id}` }, r.message || '(no message)') },
    { key: 'execTime', label: 'Time', render: (r) => (r.data?.execTime != null ? `${Number(r.data.execTime).toFixed(2)} ms` : '—') },
    { key: 'created', label: 'Created', sortable: true },
  ];
  const drawList = (rows, loading) => replace(listSlot, table({ caption: 'Logs', columns, rows, loading, sort: state.sort, onSort: (s) => { state.sort = s; state.page = 1; load(); }, onRowClick: (r) => navigate(`/logs/${r.id}`), empty: 'No logs match.' }));

  const load = async () => {
    const mine = ++seq;
    setQuery({ filter: state.filter, page: state.page > 1 ? state.page : '', sort: state.sort !== '-created' ? state.sort : '' });
    drawList([], true);
    replace(filterError);
    filterInput.removeAttribute('aria-invalid');
    const [list, stats] = await Promise.allSettled([
      send('/api/logs', { query: { page: state.page, perPage: PER_PAGE, sort: state.sort, filter: state.filter } }),
      send('/api/logs/stats', { query: { filter: state.filter } }),
    ]);
    if (mine !== seq) return;
    if (list.status === 'fulfilled' && stats.status === 'fulfilled') {
      const res = list.value;
      drawList(res.items, false);
      replace(chartSlot, chart(stats.value));
      replace(pagerSlot, pager({ page: res.page, totalPages: res.totalPages, totalItems: res.totalItems, onPage: (p) => { state.page = p; load(); } }));
      return;
    }
    // The list answers a bad filter with a generic message, the stats with a precise one:
    // show every distinct message (the stats' first), under the filter input.
    const messages = [stats, list]
      .filter((r) => r.status === 'rejected')
      .flatMap((r) => [r.reason?.message, ...Object.values(r.reason?.data || {}).map((v) => v?.message)])
      .filter(Boolean);
    drawList([], false);
    replace(chartSlot, chart([]));
    replace(pagerSlot);
    replace(filterError, [...new Set(messages)].join(' '));
    filterInput.setAttribute('aria-invalid', 'true');
  };

  const bar = h(
    'form',
    {
      class: 'filter-bar',
      role: 'search',
      onSubmit: (e) => {
        e.preventDefault();
        state.filter = filterInput.value.trim();
        state.page = 1;
        load();
      },
    },
    h('div', { class: 'field' }, h('label', { for: 'logs-filter' }, 'Filter logs'), h('div', { class: 'row' }, filterInput, button('Apply', null, { type: 'submit', kind: 'primary' }), button('Clear', () => { filterInput.value = ''; state.filter = ''; state.page = 1; load(); }, { kind: 'ghost', ariaLabel: 'Clear the filter' })), filterError),
  );
  load();
  return h('div', { class: 'page' }, pageHeader('Logs', { actions: [button('Refresh', load, { kind: 'ghost', ariaLabel: 'Refresh logs' }), button('Log settings', settingsDialog)] }), bar, chartSlot, listSlot, pagerSlot);
}

async function detail(id) {
  let log;
  try {
    log = await send(`/api/logs/${encodeURIComponent(id)}`);
  } catch (err) {
    return h('div', { class: 'page' }, pageHeader('Log', { crumbs: [{ label: 'Logs', href: '#/logs' }] }), h('p', { class: 'error', role: 'alert' }, err.message));
  }
  const rows = Object.entries(log.data || {});
  return h(
    'div',
    { class: 'page log-detail' },
    pageHeader(log.message || 'Log', { crumbs: [{ label: 'Logs', href: '#/logs' }, { label: log.id }], actions: [h('a', { class: 'btn', href: '#/logs' }, 'Back to logs')] }),
    h(
      'div',
      { class: 'card' },
      h(
        'dl',
        { class: 'kv' },
        h('dt', {}, 'ID'), h('dd', {}, h('code', {}, log.id)),
        h('dt', {}, 'Level'), h('dd', {}, levelBadge(log.level)),
        h('dt', {}, 'Created'), h('dd', {}, log.created),
        h('dt', {}, 'Message'), h('dd', {}, log.message),
        rows.map(([k, v]) => [h('dt', {}, `data.${k}`), h('dd', { dataset: { key: k } }, typeof v === 'object' && v !== null ? h('pre', {}, JSON.stringify(v, null, 2)) : v === '' ? h('span', { class: 'muted' }, '(empty)') : String(v))]),
      ),
    ),
    h('h2', {}, 'Raw JSON'),
    h('pre', { class: 'log-json' }, JSON.stringify(log, null, 2)),
  );
}

async function settingsDialog() {
  let settings;
  try {
    settings = await send('/api/settings');
  } catch (err) {
    toast(err.message, 'error');
    return;
  }
  const logs = settings.logs || {};
  const m = modal({
    title: 'Log settings',
    body: (close) => {
      const form = h(
        'form',
        {
          id: 'log-settings-form',
          onSubmit: async (e) => {
            e.preventDefault();
            clearErrors(form);
            const body = {
              logs: {
                maxDays: Number(form.elements['logs.maxDays'].value),
                minLevel: Number(form.elements['logs.minLevel'].value),
                logIP: form.elements['logs.logIP'].checked,
                logAuthId: form.elements['logs.logAuthId'].checked,
              },
            };
            try {
              await send('/api/settings', { method: 'PATCH', body });
              toast('Log settings saved.', 'ok');
              close(true);
            } catch (err) {
              showErrors(form, err);
            }
          },
        },
        field({ label: 'Max days retention', name: 'logs.maxDays', help: '0 turns request logging off.', input: input('logs.maxDays', { type: 'number', min: 0, value: logs.maxDays ?? 5 }) }),
        field({ label: 'Minimum level', name: 'logs.minLevel', input: select('logs.minLevel', [['-4', 'DEBUG (-4)'], ['0', 'INFO (0)'], ['4', 'WARN (4)'], ['8', 'ERROR (8)']], { value: String(logs.minLevel ?? 0) }) }),
        checkbox('logs.logIP', 'Log the client IP', { checked: Boolean(logs.logIP) }),
        checkbox('logs.logAuthId', 'Log the auth id of the requester', { checked: Boolean(logs.logAuthId) }),
        formError(),
      );
      return form;
    },
    actions: [(close) => button('Cancel', () => close(false), { kind: 'ghost' }), button('Save', null, { kind: 'primary', type: 'submit', attrs: { form: 'log-settings-form' } })],
  });
  m.dialog.querySelector('input')?.focus();
}
