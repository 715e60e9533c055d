// The hooks page: the files of the hooks dir with simple syntax highlighting, the error of
// the last reload (file and line), and the runs of the cron jobs the hooks registered, from
// `GET /api/vb/hooks`. Read-only: hook files are edited on disk and reloaded by the watcher.

import { h, replace } from '../lib/dom.js';
import { send } from '../lib/api.js';
import { button, pageHeader, table } from '../lib/ui.js';

const KEYWORDS = new Set(
  'break case catch class const continue debugger default delete do else export extends false finally for function if import in instanceof let new null of return super switch this throw true try typeof undefined var void while with yield async await'.split(' '),
);

/**
 * Splits JavaScript into [kind, text] tokens: comment, string, number, keyword, or plain text.
 * Not a parser: regex literals and template expressions are shown as plain text or strings.
 */
export function tokenize(src) {
  const out = [];
  let i = 0;
  let plain = '';
  const flush = () => {
    if (plain) out.push(['plain', plain]);
    plain = '';
  };
  while (i < src.length) {
    const c = src[i];
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? src.length : end;
      flush();
      out.push(['comment', src.slice(i, stop)]);
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      flush();
      out.push(['comment', src.slice(i, stop)]);
      i = stop;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') j += 1;
        else if (src[j] === '\n' && c !== '`') break;
        j += 1;
      }
      flush();
      out.push(['string', src.slice(i, j + 1)]);
      i = j + 1;
    } else if (/[0-9]/.test(c) && !/[\w$]/.test(src[i - 1] || '')) {
      const m = /^(0[xob][0-9a-f_]+|\d[\d_]*(\.\d+)?(e[+-]?\d+)?n?)/i.exec(src.slice(i));
      const text = m ? m[0] : c;
      flush();
      out.push(['number', text]);
      i += text.length;
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[\w$]+/.exec(src.slice(i));
      const word = m[0];
      if (KEYWORDS.has(word) && src[i - 1] !== '.') {
        flush();
        out.push(['keyword', word]);
      } else {
        plain += word;
      }
      i += word.length;
    } else {
      plain += c;
      i += 1;
    }
  }
  flush();
  return out;
}

function highlighted(src, errorLine) {
  const lines = [[]];
  for (const [kind, text] of tokenize(src)) {
    text.split('\n').forEach((part, n) => {
      if (n > 0) lines.push([]);
      if (part) lines[lines.length - 1].push(kind === 'plain' ? part : h('span', { class: `tok-${kind}` }, part));
    });
  }
  return h(
    'pre',
    { class: 'code-view', tabindex: 0, 'aria-label': 'File content' },
    h('code', {}, lines.map((parts, n) => h('span', { class: `code-line${n + 1 === errorLine ? ' code-line-error' : ''}`, dataset: { line: n + 1 } }, parts, '\n'))),
  );
}

function size(bytes) {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KB`;
}

function fileView(file, error) {
  if (!file) return h('p', { class: 'muted' }, 'Choose a file.');
  const errorLine = error && error.file && (error.file === file.name || error.file.endsWith(`/${file.name}`)) ? error.line : 0;
  return h(
    'section',
    { class: 'card hook-file', 'aria-label': file.name },
    h('h2', {}, file.name, ' ', h('span', { class: 'muted' }, size(file.size)), file.loaded ? h('span', { class: 'badge badge-ok' }, 'loaded') : null),
    file.content == null ? h('p', { class: 'muted' }, 'Too large or not text; not shown.') : highlighted(file.content, errorLine),
  );
}

const RUN_COLUMNS = [
  { key: 'started', label: 'Started' },
  { key: 'trigger', label: 'Trigger' },
  { key: 'worker', label: 'Worker' },
  { key: 'durationMs', label: 'Duration', render: (r) => (r.durationMs == null ? '—' : `${r.durationMs} ms`) },
  { key: 'outcome', label: 'Outcome', render: (r) => h('span', { class: `badge ${r.outcome === 'ok' ? 'badge-ok' : r.outcome === 'running' ? 'badge-warn' : 'badge-danger'}` }, r.outcome) },
  { key: 'error', label: 'Error' },
];

function render(data, slot, selected) {
  const error = data.errors[0];
  const files = data.files;
  let current = files.find((f) => f.name === selected) || files.find((f) => f.loaded) || files[0];
  const viewer = h('div', { class: 'hook-viewer' });
  const list = h('ul', { class: 'coll-list hook-list', 'aria-label': 'Hook files' });
  const pick = (f) => {
    current = f;
    list.querySelectorAll('a').forEach((a) => a.setAttribute('aria-current', String(a.dataset.name === f.name ? 'page' : false)));
    replace(viewer, fileView(f, error));
  };
  files.forEach((f) => list.append(h('li', {}, h('a', { href: `#/hooks?file=${encodeURIComponent(f.name)}`, dataset: { name: f.name }, onClick: (e) => { e.preventDefault(); pick(f); } }, f.name))));
  if (current) pick(current);
  replace(
    slot,
    h('p', { class: 'muted' }, `Directory: ${data.dir} · ${data.watch ? 'changes reload automatically' : 'changes need a restart (--hooksWatch=false)'}`),
    error
      ? h('div', { class: 'card hook-error', role: 'alert' }, h('h2', {}, 'The last reload failed'), h('p', {}, h('code', {}, `${error.file || '(no file)'}${error.line ? `:${error.line}` : ''}`), ' ', error.message), h('p', { class: 'muted' }, 'The previous hooks keep running until the files load again.'))
      : h('p', { class: 'ok hook-ok' }, 'No load errors.'),
    files.length
      ? h('div', { class: 'split hook-split' }, h('nav', { 'aria-label': 'Hook files' }, list, data.truncated ? h('p', { class: 'muted' }, 'More files not listed.') : null), viewer)
      : h('p', { class: 'muted' }, 'The hooks directory has no files. Put *.pb.js files there to add hooks.'),
    h('h2', {}, 'Cron jobs from hooks'),
    data.crons.length
      ? data.crons.map((c) => h('section', { class: 'hook-cron' }, h('h3', {}, h('code', {}, c.id), ' ', h('span', { class: 'muted' }, c.expression)), table({ columns: RUN_COLUMNS, rows: c.runs, rowKey: (r) => String(r.id), empty: 'No runs yet.', caption: `Runs of ${c.id}` })))
      : h('p', { class: 'muted' }, 'No cron jobs registered by hooks (cronAdd).'),
  );
}

export default function screen({ query }) {
  const slot = h('div', { class: 'hooks-body' }, table({ columns: [{ key: 'name', label: 'Files' }], loading: true, skeletonRows: 4 }));
  let selected = query.get('file') || '';
  const load = async () => {
    try {
      const data = await send('/api/vb/hooks');
      const active = slot.querySelector('.hook-list a[aria-current="page"]');
      if (active) selected = active.dataset.name;
      render(data, slot, selected);
    } catch (err) {
      replace(slot, h('p', { class: 'error', role: 'alert' }, err.message));
    }
  };
  load();
  return h('div', { class: 'page hooks-page' }, pageHeader('Hooks', { actions: [button('Reload view', load, { kind: 'ghost' })] }), slot);
}
