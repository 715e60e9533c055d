// Shared widgets. Every control gets a visible or aria label; every form shows the API's field
// errors next to the input named like the error key (`showErrors`). Tables keep a fixed row
// height and render skeleton rows while loading, so nothing shifts when data arrives.

import { h, replace, uid } from './dom.js';

export function button(label, onClick, { kind = '', type = 'button', disabled = false, title, icon, ariaLabel, attrs = {} } = {}) {
  return h(
    'button',
    { type, class: `btn ${kind ? `btn-${kind}` : ''}`.trim(), onClick, disabled, title, 'aria-label': ariaLabel, ...attrs },
    icon ? h('span', { class: 'icon', 'aria-hidden': 'true' }, icon) : null,
    label,
  );
}

/**
 * field({label: 'Email', name: 'email', input: h('input', {...}), help: 'shown below'})
 * Wires label→input, reserves an error slot `[data-error-for=name]` announced to screen readers.
 */
export function field({ label, name, input, help, inline = false }) {
  const id = input.id || uid('f');
  input.id = id;
  if (name && !input.name) input.name = name;
  const errorId = `${id}-error`;
  input.setAttribute('aria-describedby', errorId);
  return h(
    'div',
    { class: `field${inline ? ' field-inline' : ''}`, dataset: { field: name || '' } },
    inline ? [input, h('label', { for: id }, label)] : [h('label', { for: id }, label), input],
    help ? h('div', { class: 'help' }, help) : null,
    h('div', { class: 'field-error', id: errorId, dataset: { errorFor: name || '' }, role: 'alert' }),
  );
}

/** input('email', {type: 'email', value, required, autocomplete}) */
export function input(name, { type = 'text', value = '', ...rest } = {}) {
  return h('input', { name, type, value, ...rest });
}

export function select(name, options, { value = '', multiple = false, ...rest } = {}) {
  const values = Array.isArray(value) ? value.map(String) : [String(value)];
  return h(
    'select',
    { name, multiple, ...rest },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: values.includes(String(v)) }, text);
    }),
  );
}

export function checkbox(name, label, { checked = false, ...rest } = {}) {
  return field({ label, name, input: h('input', { type: 'checkbox', name, checked, ...rest }), inline: true });
}

/** Clears every error slot and the form-level message inside `root`. */
export function clearErrors(root) {
  root.querySelectorAll('.field-error').forEach((el) => replace(el));
  root.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  root.querySelectorAll('.form-error').forEach((el) => replace(el));
}

/**
 * Shows an ApiError inside `root`: each `data` key next to the field of that name (nested keys
 * like `fields.2.name` fall back to their longest matching prefix), the rest as the form message.
 */
export function showErrors(root, err, { prefix = '' } = {}) {
  clearErrors(root);
  const leftovers = [];
  const walk = (data, path) => {
    for (const [key, value] of Object.entries(data || {})) {
      const name = path ? `${path}.${key}` : key;
      if (value && typeof value === 'object' && 'message' in value && typeof value.message === 'string') {
        if (!place(root, name.slice(prefix.length ? prefix.length + 1 : 0) || name, value.message)) leftovers.push(`${name}: ${value.message}`);
      } else if (value && typeof value === 'object') {
        walk(value, name);
      }
    }
  };
  walk(err?.data, '');
  const slot = root.querySelector('.form-error');
  const message = [err?.message, ...leftovers].filter(Boolean).join(' ');
  if (slot) replace(slot, message);
  else if (message) toast(message, 'error');
}

function place(root, name, message) {
  const parts = name.split('.');
  for (let n = parts.length; n > 0; n -= 1) {
    const key = parts.slice(0, n).join('.');
    const slot = root.querySelector(`[data-error-for="${CSS.escape(key)}"]`);
    if (slot) {
      replace(slot, message);
      const inputEl = slot.closest('.field')?.querySelector('input,select,textarea');
      if (inputEl) inputEl.setAttribute('aria-invalid', 'true');
      return true;
    }
  }
  return false;
}

/** The form-level error line (put one near a form's submit button). */
export function formError() {
  return h('div', { class: 'form-error', role: 'alert' });
}

/** Reads named inputs of a form into an object (checkbox → bool, number → Number, multi → array). */
export function formValues(form) {
  const out = {};
  for (const el of form.querySelectorAll('input[name],select[name],textarea[name]')) {
    if (el.type === 'file') continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'number') out[el.name] = el.value === '' ? null : Number(el.value);
    else if (el.multiple) out[el.name] = [...el.selectedOptions].map((o) => o.value);
    else out[el.name] = el.value;
  }
  return out;
}

/** A native <dialog>; resolves with the value passed to `close`. */
export function modal({ title, body, actions = [], wide = false }) {
  const titleId = uid('dlg');
  const dialog = h('dialog', { class: `modal${wide ? ' modal-wide' : ''}`, 'aria-labelledby': titleId });
  let resolve;
  const done = new Promise((r) => {
    resolve = r;
  });
  const close = (value) => {
    dialog.close();
    dialog.remove();
    resolve(value);
  };
  dialog.addEventListener('cancel', (e) => {
    e.preventDefault();
    close(undefined);
  });
  replace(
    dialog,
    h('header', { class: 'modal-head' }, h('h2', { id: titleId }, title), button('×', () => close(undefined), { kind: 'ghost', ariaLabel: 'Close' })),
    h('div', { class: 'modal-body' }, typeof body === 'function' ? body(close) : body),
    actions.length ? h('footer', { class: 'modal-foot' }, actions.map((a) => (typeof a === 'function' ? a(close) : a))) : null,
  );
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close, done };
}

/** confirmDialog('Delete 3 records?', {danger: true, confirmLabel: 'Delete'}) → Promise<bool> */
export function confirmDialog(message, { title = 'Are you sure?', danger = false, confirmLabel = 'Confirm', details } = {}) {
  const m = modal({
    title,
    body: h('div', {}, h('p', {}, message), details || null),
    actions: [
      (close) => button('Cancel', () => close(false), { kind: 'ghost' }),
      (close) => button(confirmLabel, () => close(true), { kind: danger ? 'danger' : 'primary', attrs: { 'data-confirm': '' } }),
    ],
  });
  return m.done.then(Boolean);
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: `toast toast-${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * table({columns: [{key, label, render?(row), sortable?}], rows, loading, sort, onSort,
 *        onRowClick, selectable, selected: Set, onSelect, skeletonRows, empty})
 */
export function table({ columns, rows = [], loading = false, sort = '', onSort, onRowClick, selectable = false, selected = new Set(), onSelect, skeletonRows = 10, empty = 'Nothing here yet.', rowKey = (r) => r.id, caption }) {
  const sortKey = sort.replace(/^[-+]/, '');
  const desc = sort.startsWith('-');
  const head = h(
    'tr',
    {},
    selectable
      ? h(
          'th',
          { class: 'col-select' },
          h('input', {
            type: 'checkbox',
            'aria-label': 'Select all rows',
            checked: rows.length > 0 && rows.every((r) => selected.has(rowKey(r))),
            onChange: (e) => onSelect && onSelect(e.target.checked ? new Set(rows.map(rowKey)) : new Set()),
          }),
        )
      : null,
    columns.map((c) => {
      const active = c.key === sortKey;
      const label = c.sortable && onSort ? h('button', { type: 'button', class: 'th-sort', onClick: () => onSort(active && !desc ? `-${c.key}` : c.key) }, c.label, active ? (desc ? ' ↓' : ' ↑') : '') : c.label;
      return h('th', { scope: 'col', 'aria-sort': active ? (desc ? 'descending' : 'ascending') : null }, label);
    }),
  );
  const width = columns.length + (selectable ? 1 : 0);
  let body;
  if (loading) {
    body = Array.from({ length: skeletonRows }, () => h('tr', { class: 'skeleton' }, Array.from({ length: width }, () => h('td', {}, h('span', { class: 'skeleton-bar' })))));
  } else if (!rows.length) {
    body = h('tr', {}, h('td', { colspan: width, class: 'empty' }, empty));
  } else {
    body = rows.map((row) => {
      const key = rowKey(row);
      return h(
        'tr',
        {
          class: onRowClick ? 'clickable' : '',
          tabindex: onRowClick ? 0 : null,
          onClick: onRowClick ? (e) => !e.target.closest('input,button,a') && onRowClick(row) : null,
          onKeydown: onRowClick ? (e) => e.key === 'Enter' && e.target === e.currentTarget && onRowClick(row) : null,
          dataset: { id: key },
        },
        selectable
          ? h(
              'td',
              { class: 'col-select' },
              h('input', {
                type: 'checkbox',
                'aria-label': `Select row ${key}`,
                checked: selected.has(key),
                onChange: (e) => {
                  const next = new Set(selected);
                  if (e.target.checked) next.add(key);
                  else next.delete(key);
                  onSelect && onSelect(next);
                },
              }),
            )
          : null,
        columns.map((c) => h('td', { dataset: { col: c.key } }, c.render ? c.render(row) : formatCell(row[c.key]))),
      );
    });
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, caption ? h('caption', { class: 'sr-only' }, caption) : null, h('thead', {}, head), h('tbody', {}, body)));
}

export function formatCell(value) {
  if (value == null || value === '') return h('span', { class: 'muted' }, '—');
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return value.length ? value.join(', ') : h('span', { class: 'muted' }, '—');
  if (typeof value === 'object') return h('code', { class: 'cell-json' }, JSON.stringify(value).slice(0, 120));
  const text = String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** pager({page, totalPages, onPage}) — totalPages -1 (skipTotal) shows prev/next only. */
export function pager({ page, totalPages = -1, totalItems = -1, onPage, hasMore = true }) {
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pagination' },
    button('Previous', () => onPage(page - 1), { kind: 'ghost', disabled: page <= 1 }),
    h('span', { class: 'muted' }, totalPages > 0 ? `Page ${page} of ${totalPages}${totalItems >= 0 ? ` · ${totalItems} total` : ''}` : `Page ${page}`),
    button('Next', () => onPage(page + 1), { kind: 'ghost', disabled: totalPages > 0 ? page >= totalPages : !hasMore }),
  );
}

/** tabs([{id, label, render: () => Node}], activeId) → element; switching re-renders the panel. */
export function tabs(items, activeId = items[0]?.id) {
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel' });
  const bar = h('div', { class: 'tabs', role: 'tablist' });
  const show = (id) => {
    bar.querySelectorAll('[role=tab]').forEach((b) => b.setAttribute('aria-selected', String(b.dataset.tab === id)));
    const item = items.find((i) => i.id === id);
    replace(panel, item ? item.render() : null);
  };
  items.forEach((i) => bar.append(h('button', { type: 'button', role: 'tab', dataset: { tab: i.id }, onClick: () => show(i.id) }, i.label)));
  show(activeId);
  return h('div', { class: 'tabs-wrap' }, bar, panel);
}

/** A page header: title, optional breadcrumbs and actions on the right. */
export function pageHeader(title, { crumbs = [], actions = [] } = {}) {
  return h(
    'header',
    { class: 'page-head' },
    h('div', {}, crumbs.length ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, crumbs.map((c) => (c.href ? h('a', { href: c.href }, c.label) : h('span', {}, c.label)))) : null, h('h1', {}, title)),
    h('div', { class: 'page-actions' }, actions),
  );
}

/** Renders a promise's result into a placeholder, with a loading line and the error shown. */
export function async(promise, render, { loading = 'Loading…' } = {}) {
  const slot = h('div', { class: 'async' }, h('p', { class: 'muted' }, loading));
  Promise.resolve(promise).then(
    (value) => replace(slot, render(value)),
    (err) => replace(slot, h('p', { class: 'error', role: 'alert' }, err?.message || String(err))),
  );
  return slot;
}

/** A monospace editor; `language` only labels it. */
export function codeArea({ name, value = '', label, rows = 10, readOnly = false, onInput, spellcheck = false }) {
  const area = h('textarea', { name, class: 'code', rows, readOnly, spellcheck, onInput: onInput ? (e) => onInput(e.target.value) : null });
  area.value = value;
  return label ? field({ label, name, input: area }) : area;
}
