// Settings › Import collections: paste or upload PocketBase's collections JSON, review what it
// would change against the current collections (added, changed with the fields that change,
// deleted when "delete missing" is ticked), then confirm — `PUT /api/collections/import`.

import { h, replace } from '../../lib/dom.js';
import { collections, invalidateCollections, send } from '../../lib/api.js';
import { button, checkbox, clearErrors, codeArea, formError, pageHeader, showErrors, toast } from '../../lib/ui.js';

const IGNORED_KEYS = new Set(['created', 'updated']);

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What changes inside one collection: top-level properties and fields by id (or name). */
export function diffCollection(old, next) {
  const props = Object.keys({ ...old, ...next }).filter((k) => !IGNORED_KEYS.has(k) && k !== 'fields' && k in next && !same(old[k], next[k]));
  const key = (f) => f.id || f.name;
  const oldFields = new Map((old.fields || []).map((f) => [key(f), f]));
  const newFields = new Map((next.fields || []).map((f) => [key(f), f]));
  const fieldsAdded = [...newFields.keys()].filter((k) => !oldFields.has(k)).map((k) => newFields.get(k).name);
  const fieldsRemoved = [...oldFields.keys()].filter((k) => !newFields.has(k)).map((k) => oldFields.get(k).name);
  const fieldsChanged = [...newFields.keys()].filter((k) => oldFields.has(k) && !same(oldFields.get(k), { ...oldFields.get(k), ...newFields.get(k) })).map((k) => newFields.get(k).name);
  return { props, fieldsAdded, fieldsRemoved, fieldsChanged, changed: props.length + fieldsAdded.length + fieldsRemoved.length + fieldsChanged.length > 0 };
}

/** {added: [c], changed: [{c, diff}], deleted: [c]} against the current collections. */
export function review(current, incoming, deleteMissing) {
  const byId = new Map(current.map((c) => [c.id, c]));
  const byName = new Map(current.map((c) => [c.name, c]));
  const matched = new Set();
  const added = [];
  const changed = [];
  for (const c of incoming) {
    const old = (c.id && byId.get(c.id)) || byName.get(c.name);
    if (!old) {
      added.push(c);
      continue;
    }
    matched.add(old.id);
    const diff = diffCollection(old, c);
    if (diff.changed) changed.push({ c, old, diff });
  }
  const deleted = deleteMissing ? current.filter((c) => !matched.has(c.id) && !c.system) : [];
  return { added, changed, deleted };
}

function reviewView({ added, changed, deleted }) {
  const item = (text, kind) => h('li', { class: `diff-${kind}` }, text);
  if (!added.length && !changed.length && !deleted.length) return h('p', { class: 'muted' }, 'No differences: the import would change nothing.');
  return h(
    'div',
    { class: 'import-review' },
    added.length ? [h('h3', {}, `Added (${added.length})`), h('ul', {}, added.map((c) => item(`${c.name} (${c.type || 'base'}, ${(c.fields || []).length} fields)`, 'added')))] : null,
    changed.length
      ? [
          h('h3', {}, `Changed (${changed.length})`),
          h(
            'ul',
            {},
            changed.map(({ c, old, diff }) =>
              item(
                [
                  h('strong', {}, old.name === c.name ? c.name : `${old.name} → ${c.name}`),
                  diff.fieldsAdded.length ? ` · fields added: ${diff.fieldsAdded.join(', ')}` : '',
                  diff.fieldsChanged.length ? ` · fields changed: ${diff.fieldsChanged.join(', ')}` : '',
                  diff.fieldsRemoved.length ? ` · fields removed: ${diff.fieldsRemoved.join(', ')} (their data is dropped)` : '',
                  diff.props.length ? ` · options: ${diff.props.join(', ')}` : '',
                ],
                'changed',
              ),
            ),
          ),
        ]
      : null,
    deleted.length ? [h('h3', {}, `Deleted (${deleted.length})`), h('ul', {}, deleted.map((c) => item(`${c.name} — the collection and all its records`, 'deleted')))] : null,
  );
}

export default async function section() {
  const editor = codeArea({ name: 'collections', label: 'Collections JSON', rows: 16 });
  const area = editor.querySelector('textarea');
  const fileInput = h('input', { type: 'file', accept: '.json,application/json', id: 'import-file', name: 'import-file' });
  fileInput.addEventListener('change', async () => {
    const f = fileInput.files[0];
    if (f) area.value = await f.text();
  });
  const deleteBox = checkbox('deleteMissing', 'Delete collections (and their records) that are missing from the import');
  const out = h('div', { class: 'review-slot', 'aria-live': 'polite' });
  const error = formError();
  let pending = null;

  const form = h(
    'form',
    {
      class: 'card',
      onSubmit: async (e) => {
        e.preventDefault();
        clearErrors(form);
        replace(out);
        pending = null;
        let parsed;
        try {
          parsed = JSON.parse(area.value);
        } catch (err) {
          showErrors(form, { message: '', data: { collections: { message: `Not valid JSON: ${err.message}` } } });
          return;
        }
        if (!Array.isArray(parsed) || parsed.some((c) => !c || typeof c !== 'object' || !c.name)) {
          showErrors(form, { message: '', data: { collections: { message: 'Expected an array of collections, each with a name.' } } });
          return;
        }
        const deleteMissing = form.elements.deleteMissing.checked;
        const current = await collections({ force: true });
        pending = { collections: parsed, deleteMissing };
        const confirmBtn = button('Confirm and import', () => apply(confirmBtn), { kind: 'danger', attrs: { 'data-confirm': '' } });
        replace(out, h('section', { class: 'card' }, h('h2', {}, 'Review the changes'), reviewView(review(current, parsed, deleteMissing)), h('div', { class: 'form-actions' }, button('Cancel', () => replace(out), { kind: 'ghost' }), confirmBtn)));
        confirmBtn.focus();
      },
    },
    editor,
    h('div', { class: 'field' }, h('label', { for: 'import-file' }, 'Or load a JSON file'), fileInput),
    deleteBox,
    error,
    h('div', { class: 'form-actions' }, button('Review', null, { kind: 'primary', type: 'submit' })),
  );

  const apply = async (btn) => {
    if (!pending) return;
    btn.disabled = true;
    try {
      await send('/api/collections/import', { method: 'PUT', body: pending });
      invalidateCollections();
      replace(out, h('p', { class: 'ok', role: 'status' }, 'Collections imported.'));
      toast('Collections imported.', 'ok');
    } catch (err) {
      btn.disabled = false;
      showErrors(form, err);
      error.scrollIntoView({ block: 'nearest' });
    }
  };

  return h('div', {}, pageHeader('Import collections', { crumbs: [{ label: 'Settings' }] }), form, out);
}
