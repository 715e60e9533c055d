// `/collections/new` and `/collections/:id/edit`: the collection editor. One draft object is
// edited by every tab (fields, rules, indexes, view query, auth options); all tab panels stay in
// the DOM so the server's validation errors land next to their inputs whichever tab is open,
// and the tabs holding errors are marked. Saving an existing collection first shows what will
// happen to its table (diff.js); delete asks for the name; truncate empties the table.

import { h, replace, debounce } from '../../lib/dom.js';
import { collections, invalidateCollections, send } from '../../lib/api.js';
import { button, clearErrors, confirmDialog, field, formError, modal, pageHeader, showErrors, table, toast, formatCell } from '../../lib/ui.js';
import { navigate } from '../../lib/router.js';
import { collectionsSidebar } from './sidebar.js';
import { clone } from './bind.js';
import { fieldsEditor } from './fields.js';
import { RULES, AUTH_RULES, ruleEditor, rulePaths } from './rules.js';
import { indexesEditor, renameInIndexes } from './indexes.js';
import { authOptions } from './authopts.js';
import { changeList, changes } from './diff.js';

/** Pause in typing before the view query is previewed (ms). */
const PREVIEW_DEBOUNCE_MS = 500;
const PREVIEW_ROWS = 5;

export default async function screen({ params, query }) {
  const isNew = !params.id;
  const [all, scaffolds, original] = await Promise.all([
    collections(),
    send('/api/collections/meta/scaffolds'),
    isNew ? Promise.resolve(null) : send(`/api/collections/${encodeURIComponent(params.id)}`),
  ]);
  let draft;
  if (original) {
    draft = clone(original);
    (draft.oauth2?.providers || []).forEach((p) => (p._stored = true));
  } else {
    const type = ['base', 'auth', 'view'].includes(query.get('type')) ? query.get('type') : 'base';
    draft = clone(scaffolds[type]);
  }
  draft.indexes ||= [];
  draft.fields ||= [];

  const body = h('div', { class: 'coll-editor-body' });
  const form = h('form', { class: 'coll-editor', novalidate: true, onSubmit: (e) => { e.preventDefault(); save(); } });
  const saveBtn = button(isNew ? 'Create collection' : 'Save changes', null, { kind: 'primary', type: 'submit', attrs: { 'data-action': 'save' } });
  let tabBar;
  let cleanupPreview = () => {};

  const suggest = () => rulePaths(draft, all);

  const drawBody = () => {
    cleanupPreview();
    const panels = [];
    const nameInput = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off', placeholder: 'posts', spellcheck: false, disabled: Boolean(original?.system) });
    nameInput.value = draft.name || '';
    nameInput.addEventListener('input', () => (draft.name = nameInput.value));
    const typeSelect = h('select', { name: 'type', disabled: !isNew }, ['base', 'auth', 'view'].map((t) => h('option', { value: t }, `${t[0].toUpperCase()}${t.slice(1)} collection`)));
    typeSelect.value = draft.type;
    typeSelect.addEventListener('change', () => {
      // A new collection takes the chosen type's scaffold; the name and the user's own fields stay.
      const next = clone(scaffolds[typeSelect.value]);
      next.name = draft.name;
      if (next.type !== 'view') next.fields.push(...draft.fields.filter((f) => !f.system && !next.fields.some((s) => s.name === f.name)));
      draft = next;
      draft.indexes ||= [];
      drawBody();
    });
    if (draft.type === 'view') {
      panels.push({ id: 'query', label: 'Query', node: viewQueryPanel() });
    } else {
      panels.push({ id: 'fields', label: 'Fields', node: fieldsEditor(draft, { all: all.filter((c) => c.id !== draft.id), selfTarget: draft.id ? [draft.id, `${draft.name} (this collection)`] : null }) });
    }
    panels.push({ id: 'rules', label: 'API rules', node: rulesPanel() });
    if (draft.type !== 'view') panels.push({ id: 'indexes', label: 'Indexes', node: indexesEditor(draft) });
    if (draft.type === 'auth') panels.push({ id: 'auth', label: 'Auth options', node: authOptions(draft, { suggest }) });
    tabBar = tabStrip(panels);
    replace(
      body,
      h(
        'div',
        { class: 'row coll-basics' },
        field({ label: 'Name', name: 'name', input: nameInput, help: original?.system ? 'System collections keep their name.' : null }),
        field({ label: 'Type', name: 'type', input: typeSelect, help: isNew ? null : 'The type cannot change after creation.' }),
      ),
      tabBar.el,
    );
  };

  function rulesPanel() {
    const list = draft.type === 'view' ? RULES.filter((r) => !r.noView) : RULES;
    const extra = draft.type === 'auth' ? AUTH_RULES : [];
    return h(
      'div',
      { class: 'rules-panel' },
      h('p', { class: 'help' }, 'Superusers bypass every rule. Type @ or a field name in a filter for suggestions (↑/↓, Enter, Esc).'),
      [...list, ...extra].map((r) =>
        ruleEditor({
          ...r,
          get: () => draft[r.key] ?? null,
          set: (v) => (draft[r.key] = v),
          suggest,
        }),
      ),
    );
  }

  function viewQueryPanel() {
    const area = h('textarea', { name: 'viewQuery', class: 'code', rows: 8, spellcheck: false, placeholder: 'SELECT id, title FROM posts WHERE …' });
    area.value = draft.viewQuery || '';
    const preview = h('div', { class: 'view-preview', 'aria-live': 'polite' });
    const previewError = h('div', { class: 'field-error view-preview-error', role: 'alert' });
    let controller = null;
    const run = debounce(async () => {
      const q = area.value.trim().replace(/;+\s*$/, '');
      controller?.abort();
      if (!q) {
        replace(preview, h('p', { class: 'muted' }, 'Type a SELECT to see its first rows.'));
        replace(previewError);
        return;
      }
      controller = new AbortController();
      replace(preview, table({ columns: [{ key: 'a', label: '…' }], loading: true, skeletonRows: PREVIEW_ROWS }));
      try {
        // Wrapping the query keeps the preview a single read, whatever the user typed.
        const res = await send('/api/sql', { method: 'POST', body: { query: `SELECT * FROM (${q}) LIMIT ${PREVIEW_ROWS}` }, signal: controller.signal });
        replace(previewError);
        const columns = res.columns.map((c, i) => ({ key: String(i), label: c.name, render: (row) => formatCell(row[i]) }));
        replace(preview, h('p', { class: 'help' }, `First ${PREVIEW_ROWS} rows (live preview):`), table({ columns, rows: res.rows, rowKey: (r) => JSON.stringify(r), empty: 'The query returns no rows.', caption: 'View query preview' }));
      } catch (err) {
        if (err.name === 'AbortError') return;
        replace(preview);
        replace(previewError, err.data?.query?.message || err.message);
      }
    }, PREVIEW_DEBOUNCE_MS);
    area.addEventListener('input', () => {
      draft.viewQuery = area.value;
      run();
    });
    run();
    cleanupPreview = () => controller?.abort();
    const fieldsNote = draft.fields.length
      ? h('p', { class: 'help' }, 'Fields (generated from the query): ', draft.fields.map((f) => `${f.name} (${f.type})`).join(', '))
      : null;
    return h('div', { class: 'view-panel' }, field({ label: 'View query (SQL)', name: 'viewQuery', input: area, help: 'Must select an id column; the fields are generated from the query.' }), previewError, preview, fieldsNote);
  }

  function payload() {
    const out = clone(draft);
    for (const key of ['created', 'updated']) delete out[key];
    if (out.type === 'view') delete out.fields;
    if (!out.id) delete out.id;
    (out.oauth2?.providers || []).forEach((p, i) => {
      const src = draft.oauth2.providers[i];
      if (src._stored && !p.clientSecret) delete p.clientSecret;
      delete p._stored;
    });
    return out;
  }

  async function save() {
    clearErrors(form);
    if (!isNew) {
      const renames = new Map();
      const now = new Map(draft.fields.filter((f) => f.id).map((f) => [f.id, f.name]));
      original.fields.forEach((f) => now.has(f.id) && now.get(f.id) !== f.name && renames.set(f.name, now.get(f.id)));
      if (renames.size) {
        draft.indexes = renameInIndexes(draft.indexes, renames);
        tabBar.refreshAll();
      }
      const list = changes(original, draft);
      const ok = await confirmDialog('Saving applies these changes to the collection and its table:', {
        title: `Save ${original.name}?`,
        confirmLabel: 'Apply changes',
        danger: list.some((c) => c.danger),
        details: changeList(list),
      });
      if (!ok) return;
    }
    saveBtn.disabled = true;
    try {
      const saved = isNew
        ? await send('/api/collections', { method: 'POST', body: payload() })
        : await send(`/api/collections/${encodeURIComponent(original.id)}`, { method: 'PATCH', body: payload() });
      invalidateCollections();
      toast(isNew ? `Created ${saved.name}.` : `Saved ${saved.name}.`, 'ok');
      navigate(`/collections/${encodeURIComponent(saved.id)}/edit`);
    } catch (err) {
      showErrors(form, err);
      tabBar?.markErrors();
    } finally {
      saveBtn.disabled = false;
    }
  }

  async function remove() {
    const confirmInput = h('input', { type: 'text', autocomplete: 'off', spellcheck: false });
    const err = formError();
    const del = button('Delete collection', null, { kind: 'danger', disabled: true, attrs: { 'data-confirm': '' } });
    confirmInput.addEventListener('input', () => (del.disabled = confirmInput.value !== original.name));
    const m = modal({
      title: `Delete ${original.name}?`,
      body: h(
        'form',
        { onSubmit: (e) => { e.preventDefault(); if (!del.disabled) del.click(); } },
        h('p', {}, 'This drops the table and every record in it. It cannot be undone.'),
        field({ label: `Type ${original.name} to confirm`, input: confirmInput }),
        err,
      ),
      actions: [(close) => button('Cancel', () => close(false), { kind: 'ghost' }), del],
    });
    del.addEventListener('click', async () => {
      del.disabled = true;
      try {
        await send(`/api/collections/${encodeURIComponent(original.id)}`, { method: 'DELETE' });
        invalidateCollections();
        m.close(true);
        toast(`Deleted ${original.name}.`, 'ok');
        navigate('/collections');
      } catch (e) {
        replace(err, e.message);
        del.disabled = false;
      }
    });
    confirmInput.focus();
  }

  async function truncate() {
    const ok = await confirmDialog(`Delete every record of ${original.name}? Cascading relations apply. The collection itself stays.`, { title: 'Truncate collection?', danger: true, confirmLabel: 'Delete all records' });
    if (!ok) return;
    try {
      await send(`/api/collections/${encodeURIComponent(original.id)}/truncate`, { method: 'DELETE' });
      invalidateCollections();
      toast(`${original.name} is empty now.`, 'ok');
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  drawBody();
  replace(
    form,
    body,
    h('div', { class: 'coll-editor-foot' }, formError(), h('div', { class: 'row' }, h('a', { class: 'btn btn-ghost', href: original ? `#/collections/${encodeURIComponent(original.id)}` : '#/collections' }, 'Cancel'), saveBtn)),
  );
  const actions = original
    ? [
        h('a', { class: 'btn', href: `#/collections/${encodeURIComponent(original.id)}` }, 'Records'),
        original.type !== 'view' ? button('Truncate', truncate, { attrs: { 'data-action': 'truncate' } }) : null,
        original.system ? null : button('Delete', remove, { kind: 'danger', attrs: { 'data-action': 'delete' } }),
      ]
    : [];
  const node = h(
    'div',
    { class: 'split' },
    collectionsSidebar(original ? original.id : null),
    h(
      'section',
      { class: 'page' },
      pageHeader(original ? `Edit ${original.name}` : 'New collection', { crumbs: [{ label: 'Collections', href: '#/collections' }, original ? { label: original.name, href: `#/collections/${encodeURIComponent(original.id)}` } : null].filter(Boolean), actions }),
      form,
    ),
  );
  node.cleanup = () => cleanupPreview();
  return node;
}

/**
 * Tabs whose panels all stay in the DOM (hidden when inactive), so error slots exist for every
 * input; `markErrors()` flags tabs with errors and opens the first of them.
 */
function tabStrip(items) {
  const bar = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Collection settings' });
  const wrap = h('div', { class: 'tabs-wrap' }, bar);
  const buttons = [];
  const show = (id, focus = false) => {
    items.forEach((item, i) => {
      const on = item.id === id;
      buttons[i].setAttribute('aria-selected', String(on));
      buttons[i].tabIndex = on ? 0 : -1;
      item.panel.hidden = !on;
      // Panels built from the field list (index columns, identity fields) catch up with edits.
      if (on && item.node.refresh) item.node.refresh();
      if (on && focus) buttons[i].focus();
    });
  };
  items.forEach((item, i) => {
    const btn = h('button', { type: 'button', role: 'tab', id: `tab-${item.id}`, 'aria-controls': `panel-${item.id}`, dataset: { tab: item.id }, onClick: () => show(item.id) }, item.label, h('span', { class: 'tab-error', 'aria-hidden': 'true' }));
    btn.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
      const next = items[(i + (e.key === 'ArrowRight' ? 1 : -1) + items.length) % items.length];
      show(next.id, true);
    });
    buttons.push(btn);
    bar.append(btn);
    item.panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: `panel-${item.id}`, 'aria-labelledby': `tab-${item.id}` }, item.node);
    wrap.append(item.panel);
  });
  show(items[0].id);
  return {
    el: wrap,
    show,
    refreshAll() {
      items.forEach((item) => item.node.refresh && item.node.refresh());
    },
    markErrors() {
      let first = null;
      // A rule's error concerns its filter text, not the mode select `showErrors` flagged.
      wrap.querySelectorAll('.rule select[aria-invalid]').forEach((sel) => {
        sel.removeAttribute('aria-invalid');
        sel.closest('.rule').querySelector('.rule-input')?.setAttribute('aria-invalid', 'true');
      });
      items.forEach((item, i) => {
        const bad = [...item.panel.querySelectorAll('.field-error')].some((el) => el.textContent.trim());
        buttons[i].classList.toggle('has-error', bad);
        buttons[i].querySelector('.tab-error').textContent = bad ? ' !' : '';
        if (bad && !first) first = item;
      });
      if (first) {
        show(first.id);
        first.panel.querySelector('[aria-invalid="true"]')?.focus();
      }
    },
  };
}
