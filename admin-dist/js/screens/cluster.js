// The cluster page: every worker with its pid, uptime, restarts and counters, from
// `GET /api/vb/cluster`, refreshed every few seconds while the page is open.

import { h, replace } from '../lib/dom.js';
import { send } from '../lib/api.js';
import { button, pageHeader, table } from '../lib/ui.js';

const REFRESH_MS = 3000;

function duration(seconds) {
  if (seconds == null) return '—';
  const d = Math.floor(seconds / 86400);
  const hrs = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d) return `${d}d ${hrs}h`;
  if (hrs) return `${hrs}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const num = (v) => (v == null ? '—' : Number(v).toLocaleString());

function stateBadge(state) {
  const kind = state === 'ready' ? 'ok' : state === 'backoff' || state === 'exited' ? 'danger' : 'warn';
  return h('span', { class: `badge badge-${kind}` }, state || 'unknown');
}

const COLUMNS = [
  { key: 'id', label: 'Worker', render: (w) => h('span', {}, `#${w.id}`, w.answering ? h('span', { class: 'muted' }, ' (answered)') : null) },
  { key: 'pid', label: 'PID', render: (w) => (w.pid == null ? '—' : String(w.pid)) },
  { key: 'state', label: 'State', render: (w) => stateBadge(w.state) },
  { key: 'uptimeS', label: 'Uptime', render: (w) => duration(w.uptimeS) },
  { key: 'restarts', label: 'Restarts', render: (w) => num(w.restarts) },
  { key: 'requests', label: 'Requests', render: (w) => num(w.requests) },
  { key: 'busDrops', label: 'Bus drops', render: (w) => num(w.busDrops) },
  { key: 'writeLockWaits', label: 'Write-lock waits', render: (w) => num(w.writeLockWaits) },
];

function summary(data) {
  const t = data.totals;
  const item = (label, value) => h('div', { class: 'stat' }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label muted' }, label));
  return h(
    'div',
    { class: 'stats' },
    item('Mode', data.mode === 'cluster' ? `cluster · ${data.workers.length} workers` : 'serve · 1 worker'),
    item('Supervisor PID', data.supervisorPid == null ? '—' : String(data.supervisorPid)),
    item('Requests', num(t.requests)),
    item('Bus drops', num(t.busDrops)),
    item('Write-lock waits', num(t.writeLockWaits)),
    item('Restarts', num(t.restarts)),
  );
}

export default function screen() {
  const stats = h('div', { class: 'stats-slot' });
  const grid = h('div', {}, table({ columns: COLUMNS, loading: true, skeletonRows: 2 }));
  const status = h('p', { class: 'muted cluster-status', role: 'status' }, 'Loading…');
  let timer = null;
  let stopped = false;
  let controller = null;

  async function refresh() {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    try {
      const data = await send('/api/vb/cluster', { signal: controller.signal });
      if (stopped) return;
      replace(stats, summary(data));
      replace(grid, table({ columns: COLUMNS, rows: data.workers, rowKey: (w) => String(w.id), caption: 'Workers', empty: 'No workers reported.' }));
      replace(status, `Version ${data.version} · updated ${new Date().toLocaleTimeString()} · refreshes every ${REFRESH_MS / 1000} s`);
      status.classList.remove('error');
    } catch (err) {
      if (err.name === 'AbortError' || stopped) return;
      replace(status, err.message);
      status.classList.add('error');
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  const node = h(
    'div',
    { class: 'page cluster-page' },
    pageHeader('Cluster', { actions: [button('Refresh', refresh, { kind: 'ghost' })] }),
    h('p', { class: 'muted' }, 'Each worker is a process of its own on the same port; the supervisor restarts one that dies. Counters count since that worker started.'),
    stats,
    grid,
    status,
  );
  node.cleanup = () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
  refresh();
  return node;
}
