// The fields editor: one row per field (name, type, move up/down, remove) with its options
// folded underneath — the common flags and every type's own options, as PocketBase 0.40 names
// them in the collection JSON. Rows are redrawn after add/move/remove, so each input's `name`
// (`fields.<index>.<option>`) always matches the index the server reports errors under.

import { h, replace } from '../../lib/dom.js';
import { button } from '../../lib/ui.js';
import { boolIn, listIn, numIn, selectIn, textIn } from './bind.js';

export const FIELD_TYPES = [
  ['text', 'Plain text', 'T'],
  ['editor', 'Rich editor', '¶'],
  ['number', 'Number', '#'],
  ['bool', 'Bool', '◩'],
  ['email', 'Email', '@'],
  ['url', 'URL', '⛓'],
  ['date', 'Date', '◷'],
  ['autodate', 'Autodate', '⟳'],
  ['select', 'Select', '☰'],
  ['file', 'File', '⎙'],
  ['relation', 'Relation', '⇢'],
  ['json', 'JSON', '{}'],
  ['geoPoint', 'Geo point', '⌖'],
  ['password', 'Password', '*'],
];

/** The options a new field of each type starts with (PocketBase's zero values). */
const DEFAULTS = {
  text: { min: 0, max: 0, pattern: '', autogeneratePattern: '', primaryKey: false },
  editor: { maxSize: 0, convertURLs: false },
  number: { min: null, max: null, onlyInt: false },
  bool: {},
  email: { exceptDomains: [], onlyDomains: [] },
  url: { exceptDomains: [], onlyDomains: [] },
  date: { min: '', max: '' },
  autodate: { onCreate: true, onUpdate: false },
  select: { values: [], maxSelect: 1 },
  file: { maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [], protected: false },
  relation: { collectionId: '', cascadeDelete: false, minSelect: 0, maxSelect: 1 },
  json: { maxSize: 0 },
  geoPoint: {},
  password: { min: 0, max: 0, pattern: '', cost: 0 },
};

export function newField(type, name = '') {
  return { name, type, required: false, hidden: false, presentable: false, system: false, help: '', ...structuredClone(DEFAULTS[type] || {}) };
}

/** Keeps common keys and the new type's options when a field's type is changed. */
export function retype(f, type) {
  const keep = { id: f.id, name: f.name, type, required: f.required, hidden: f.hidden, presentable: f.presentable, system: f.system, help: f.help || '' };
  Object.keys(f).forEach((k) => delete f[k]);
  Object.assign(f, newField(type), keep);
  if (!keep.id) delete f.id;
}

function typeOptions(f, p, ctx) {
  const n = (key) => `${p}.${key}`;
  switch (f.type) {
    case 'text':
      return [
        numIn(n('min'), 'Min length', f, 'min', { min: 0, step: 1 }),
        numIn(n('max'), 'Max length', f, 'max', { min: 0, step: 1, help: '0 means 5000 characters.' }),
        textIn(n('pattern'), 'Pattern (regex)', f, 'pattern', { placeholder: '^[a-z0-9-]+$' }),
        textIn(n('autogeneratePattern'), 'Autogenerate pattern', f, 'autogeneratePattern', { placeholder: '[a-z0-9]{15}' }),
      ];
    case 'editor':
      return [numIn(n('maxSize'), 'Max size (bytes)', f, 'maxSize', { min: 0, step: 1, help: '0 means 5 MiB.' }), boolIn(n('convertURLs'), 'Convert URLs to relative', f, 'convertURLs')];
    case 'number':
      return [numIn(n('min'), 'Min', f, 'min', { nullable: true }), numIn(n('max'), 'Max', f, 'max', { nullable: true }), boolIn(n('onlyInt'), 'Integers only', f, 'onlyInt')];
    case 'email':
    case 'url':
      return [listIn(n('exceptDomains'), 'Except domains', f, 'exceptDomains'), listIn(n('onlyDomains'), 'Only domains', f, 'onlyDomains')];
    case 'date':
      return [textIn(n('min'), 'Min date', f, 'min', { placeholder: '2024-01-01 00:00:00.000Z' }), textIn(n('max'), 'Max date', f, 'max', { placeholder: '2030-12-31 23:59:59.999Z' })];
    case 'autodate':
      return [boolIn(n('onCreate'), 'Set on create', f, 'onCreate'), boolIn(n('onUpdate'), 'Set on update', f, 'onUpdate')];
    case 'select':
      return [listIn(n('values'), 'Values', f, 'values', { placeholder: 'draft, published' }), numIn(n('maxSelect'), 'Max select', f, 'maxSelect', { min: 0, step: 1, help: '1 = single value; more = multiple.' })];
    case 'file':
      return [
        numIn(n('maxSelect'), 'Max files', f, 'maxSelect', { min: 0, step: 1, help: '1 = single file.' }),
        numIn(n('maxSize'), 'Max size per file (bytes)', f, 'maxSize', { min: 0, step: 1, help: '0 means 5 MiB.' }),
        listIn(n('mimeTypes'), 'Allowed MIME types', f, 'mimeTypes', { placeholder: 'image/png, image/jpeg' }),
        listIn(n('thumbs'), 'Thumb sizes', f, 'thumbs', { placeholder: '100x100, 0x300' }),
        boolIn(n('protected'), 'Protected (needs a file token)', f, 'protected'),
      ];
    case 'relation': {
      const targets = ctx.all.map((c) => [c.id, `${c.name}${c.system ? ' (system)' : ''}`]);
      if (ctx.selfTarget) targets.unshift(ctx.selfTarget);
      return [
        selectIn(n('collectionId'), 'Related collection', f, 'collectionId', [['', '— choose —'], ...targets], { disabled: Boolean(f.id && f.collectionId) }),
        boolIn(n('cascadeDelete'), 'Cascade delete', f, 'cascadeDelete', { help: 'Delete this record when the related one is deleted.' }),
        numIn(n('minSelect'), 'Min select', f, 'minSelect', { min: 0, step: 1 }),
        numIn(n('maxSelect'), 'Max select', f, 'maxSelect', { min: 0, step: 1, help: '1 = single relation.' }),
      ];
    }
    case 'json':
      return [numIn(n('maxSize'), 'Max size (bytes)', f, 'maxSize', { min: 0, step: 1, help: '0 means 1 MiB.' })];
    case 'password':
      return [
        numIn(n('min'), 'Min length', f, 'min', { min: 0, step: 1 }),
        numIn(n('max'), 'Max length', f, 'max', { min: 0, step: 1, help: 'At most 71.' }),
        textIn(n('pattern'), 'Pattern (regex)', f, 'pattern'),
        numIn(n('cost'), 'Bcrypt cost', f, 'cost', { min: 0, step: 1, help: '4–31; 0 = default.' }),
      ];
    default:
      return [];
  }
}

/**
 * fieldsEditor(draft, ctx) — ctx: {all: collections, onChange()}; returns a node that redraws
 * itself on structural changes.
 */
export function fieldsEditor(draft, ctx) {
  const root = h('div', { class: 'fields-editor' });
  const open = new WeakSet();
  const draw = (focusIndex) => {
    const fields = draft.fields;
    const rows = fields.map((f, i) => fieldRow(f, i, fields.length));
    const addType = h('select', { 'aria-label': 'New field type', class: 'add-type' }, FIELD_TYPES.map(([v, label]) => h('option', { value: v }, label)));
    replace(
      root,
      h('ol', { class: 'field-rows' }, rows),
      h(
        'div',
        { class: 'row add-field' },
        addType,
        button('+ Add field', () => {
          const f = newField(addType.value);
          draft.fields.push(f);
          open.add(f);
          draw(draft.fields.length - 1);
          ctx.onChange && ctx.onChange();
        }),
      ),
    );
    if (focusIndex != null) root.querySelector(`[name="fields.${focusIndex}.name"]`)?.focus();
  };
  const move = (i, by) => {
    const j = i + by;
    if (j < 0 || j >= draft.fields.length) return;
    const [f] = draft.fields.splice(i, 1);
    draft.fields.splice(j, 0, f);
    draw();
    root.querySelector(`[data-index="${j}"] [data-move="${by < 0 ? 'up' : 'down'}"]`)?.focus();
    ctx.onChange && ctx.onChange();
  };
  const fieldRow = (f, i, count) => {
    const p = `fields.${i}`;
    const locked = Boolean(f.system);
    const icon = (FIELD_TYPES.find((t) => t[0] === f.type) || [])[2] || '?';
    const label = f.name || `field ${i + 1}`;
    const details = h(
      'details',
      { class: 'field-opts', open: open.has(f), onToggle: (e) => (e.target.open ? open.add(f) : open.delete(f)) },
      h('summary', {}, 'Options'),
      h(
        'div',
        { class: 'grid-2' },
        typeOptions(f, p, ctx),
        textIn(`${p}.help`, 'Help text', f, 'help'),
      ),
      h(
        'div',
        { class: 'row field-flags' },
        f.type !== 'autodate' ? boolIn(`${p}.required`, 'Nonempty (required)', f, 'required') : null,
        boolIn(`${p}.hidden`, 'Hidden (superusers only)', f, 'hidden'),
        boolIn(`${p}.presentable`, 'Presentable', f, 'presentable'),
      ),
    );
    return h(
      'li',
      { class: `field-row${locked ? ' is-system' : ''}`, dataset: { index: i, fieldName: f.name } },
      h(
        'div',
        { class: 'field-head' },
        h('span', { class: 'field-icon', 'aria-hidden': 'true', title: f.type }, icon),
        textIn(`${p}.name`, `Field ${i + 1} name`, f, 'name', { disabled: locked, placeholder: 'field_name', onChange: () => ctx.onChange && ctx.onChange() }),
        selectIn(`${p}.type`, `Field ${i + 1} type`, f, 'type', FIELD_TYPES.map(([v, l]) => [v, l]), {
          disabled: locked,
          onChange: (type) => {
            retype(f, type);
            open.add(f);
            draw();
            ctx.onChange && ctx.onChange();
          },
        }),
        h(
          'div',
          { class: 'field-buttons' },
          locked ? h('span', { class: 'badge' }, 'system') : null,
          button('↑', () => move(i, -1), { kind: 'ghost', ariaLabel: `Move ${label} up`, disabled: i === 0, attrs: { 'data-move': 'up' } }),
          button('↓', () => move(i, 1), { kind: 'ghost', ariaLabel: `Move ${label} down`, disabled: i === count - 1, attrs: { 'data-move': 'down' } }),
          locked
            ? null
            : button('✕', () => {
                draft.fields.splice(i, 1);
                draw();
                ctx.onChange && ctx.onChange();
              }, { kind: 'ghost', ariaLabel: `Remove ${label}`, attrs: { 'data-remove': '' } }),
        ),
      ),
      details,
    );
  };
  draw();
  root.redraw = draw;
  return root;
}
