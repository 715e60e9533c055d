// The API rules of a collection: each rule's three meanings made explicit (null = superusers
// only, "" = everyone including guests, text = a filter), the filter input with an autocomplete
// of field names and `@request` / `@collection` / datetime paths, and the server's validation
// error shown under the rule it concerns (its error slot is keyed by the rule's JSON name).

import { h, replace, uid } from '../../lib/dom.js';

export const RULES = [
  { key: 'listRule', label: 'List/Search rule', help: 'Who may list and search records.' },
  { key: 'viewRule', label: 'View rule', help: 'Who may read one record.' },
  { key: 'createRule', label: 'Create rule', help: 'Who may create records.', noView: true },
  { key: 'updateRule', label: 'Update rule', help: 'Who may update records.', noView: true },
  { key: 'deleteRule', label: 'Delete rule', help: 'Who may delete records.', noView: true },
];
export const AUTH_RULES = [
  { key: 'authRule', label: 'Auth rule', help: 'Extra condition every sign-in must meet ("" = none).' },
  { key: 'manageRule', label: 'Manage rule', help: 'Who may manage other users\u2019 email, password and verified flag.' },
];

const MODE_TEXT = {
  locked: 'Only superusers (the rule is null).',
  public: 'Everyone, guests included (the rule is an empty string).',
  filter: 'Requests whose record and request match the filter.',
};

export function ruleMode(value) {
  if (value === null || value === undefined) return 'locked';
  return value === '' ? 'public' : 'filter';
}

/** A short badge for overviews and the change list. */
export function ruleSummary(value) {
  const mode = ruleMode(value);
  if (mode === 'locked') return h('span', { class: 'badge' }, 'superusers only');
  if (mode === 'public') return h('span', { class: 'badge badge-warn' }, 'everyone');
  return h('code', { class: 'rule-code' }, value);
}

/**
 * ruleEditor({key, label, help, get, set, suggest}) — `get()`/`set(v)` read and write the draft;
 * `suggest()` returns every completable path (strings) at the time of typing.
 */
export function ruleEditor({ key, label, help, get, set, suggest, allowLocked = true }) {
  const selectId = uid('rule');
  const errorId = `${selectId}-error`;
  const initial = get();
  const area = h('textarea', { name: key, class: 'code rule-input', rows: 2, spellcheck: false, 'aria-label': `${label} filter`, 'aria-describedby': errorId, placeholder: 'e.g. @request.auth.id != "" && author = @request.auth.id' });
  area.value = typeof initial === 'string' ? initial : '';
  const modeSelect = h(
    'select',
    { id: selectId, class: 'rule-mode', dataset: { rule: key } },
    allowLocked ? h('option', { value: 'locked' }, 'Superusers only (null)') : null,
    h('option', { value: 'public' }, 'Everyone (empty rule)'),
    h('option', { value: 'filter' }, 'Custom filter'),
  );
  let mode = ruleMode(initial);
  if (!allowLocked && mode === 'locked') mode = 'public';
  modeSelect.value = mode;
  const explain = h('div', { class: 'help rule-explain' });
  const acWrap = h('div', { class: 'ac-wrap' }, area);
  const sync = () => {
    mode = modeSelect.value;
    acWrap.hidden = mode !== 'filter';
    replace(explain, MODE_TEXT[mode], mode === 'filter' && !area.value.trim() ? ' An empty filter allows everyone.' : '');
    set(mode === 'locked' ? null : mode === 'public' ? '' : area.value);
  };
  modeSelect.addEventListener('change', () => {
    sync();
    if (mode === 'filter') area.focus();
  });
  area.addEventListener('input', sync);
  autocomplete(area, suggest);
  sync();
  return h(
    'div',
    { class: 'field rule', dataset: { field: key } },
    h('label', { for: selectId }, label),
    help ? h('div', { class: 'help' }, help) : null,
    modeSelect,
    acWrap,
    explain,
    h('div', { class: 'field-error', id: errorId, dataset: { errorFor: key }, role: 'alert' }),
  );
}

const MAX_SUGGESTIONS = 8;

/**
 * Attaches a suggestion dropdown to a text input or textarea: it completes the path being typed
 * before the caret (letters, digits, `_`, `.`, `@`, `:`), ArrowUp/ArrowDown move, Enter or Tab
 * accept, Escape closes. `suggest()` gives the candidates; prefixes ending in "." are offered too.
 */
export function autocomplete(inputEl, suggest) {
  const listId = uid('ac');
  const list = h('ul', { id: listId, class: 'ac-list', role: 'listbox', hidden: true, 'aria-label': 'Suggestions' });
  inputEl.setAttribute('role', 'combobox');
  inputEl.setAttribute('aria-autocomplete', 'list');
  inputEl.setAttribute('aria-expanded', 'false');
  inputEl.setAttribute('aria-controls', listId);
  inputEl.setAttribute('autocomplete', 'off');
  let items = [];
  let active = -1;
  let start = 0;

  const close = () => {
    items = [];
    active = -1;
    list.hidden = true;
    inputEl.setAttribute('aria-expanded', 'false');
    inputEl.removeAttribute('aria-activedescendant');
  };
  const paint = () => {
    replace(
      list,
      items.map((text, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            class: 'ac-item',
            'aria-selected': String(i === active),
            onMousedown: (e) => {
              e.preventDefault();
              accept(i);
            },
          },
          text,
        ),
      ),
    );
    if (active >= 0) {
      inputEl.setAttribute('aria-activedescendant', `${listId}-${active}`);
      list.children[active]?.scrollIntoView({ block: 'nearest' });
    } else inputEl.removeAttribute('aria-activedescendant');
  };
  const refresh = () => {
    const caret = inputEl.selectionStart ?? inputEl.value.length;
    const before = inputEl.value.slice(0, caret);
    const token = /[@\w.:]*$/.exec(before)[0];
    start = caret - token.length;
    if (!token) return close();
    const lower = token.toLowerCase();
    const all = suggest();
    items = all.filter((s) => s.toLowerCase().startsWith(lower) && s !== token).slice(0, MAX_SUGGESTIONS);
    if (!items.length) return close();
    active = 0;
    list.hidden = false;
    inputEl.setAttribute('aria-expanded', 'true');
    paint();
  };
  const accept = (i) => {
    const text = items[i];
    if (text == null) return;
    const caret = inputEl.selectionStart ?? inputEl.value.length;
    inputEl.value = inputEl.value.slice(0, start) + text + inputEl.value.slice(caret);
    const pos = start + text.length;
    inputEl.setSelectionRange(pos, pos);
    inputEl.dispatchEvent(new Event('input', { bubbles: true }));
    // A prefix such as "@request.auth." leads straight on to its children.
    if (text.endsWith('.')) refresh();
    else close();
  };
  inputEl.addEventListener('input', (e) => {
    if (e.isTrusted) refresh();
  });
  inputEl.addEventListener('keydown', (e) => {
    if (list.hidden) {
      if (e.key === 'ArrowDown' && (e.ctrlKey || e.altKey)) {
        refresh();
        e.preventDefault();
      }
      return;
    }
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length;
      paint();
    } else if (e.key === 'Enter' || e.key === 'Tab') {
      if (active >= 0) {
        e.preventDefault();
        accept(active);
      }
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  inputEl.addEventListener('blur', () => setTimeout(close, 100));
  inputEl.after(list);
  return { close, refresh };
}

const MACROS = ['@now', '@second', '@minute', '@hour', '@weekday', '@day', '@month', '@year', '@yesterday', '@tomorrow', '@todayStart', '@todayEnd', '@monthStart', '@monthEnd', '@yearStart', '@yearEnd'];
const REQUEST = ['@request.method', '@request.context', '@request.query.', '@request.headers.', '@request.auth.', '@request.body.'];

/**
 * Every path a rule of `draft` can use, from the draft's own fields (relations one level deep),
 * `@request.*`, `@collection.<name>.*` for every collection and the datetime macros.
 */
export function rulePaths(draft, all) {
  const names = (c) => (c?.fields || []).filter((f) => f.name).map((f) => f.name);
  const byId = new Map(all.map((c) => [c.id, c]));
  const out = new Set();
  for (const f of draft.fields || []) {
    if (!f.name) continue;
    out.add(f.name);
    if (f.type === 'relation' && byId.has(f.collectionId)) {
      out.add(`${f.name}.`);
      names(byId.get(f.collectionId)).forEach((n) => out.add(`${f.name}.${n}`));
    }
    if (['select', 'file', 'relation'].includes(f.type)) {
      out.add(`${f.name}:length`);
      out.add(`${f.name}:each`);
    }
    out.add(`@request.body.${f.name}`);
    out.add(`@request.body.${f.name}:isset`);
    out.add(`@request.body.${f.name}:changed`);
  }
  REQUEST.forEach((p) => out.add(p));
  out.add('@request.');
  out.add('@collection.');
  const authFields = new Set(['id', 'collectionId', 'collectionName']);
  all.filter((c) => c.type === 'auth').forEach((c) => names(c).forEach((n) => authFields.add(n)));
  if (draft.type === 'auth') names(draft).forEach((n) => authFields.add(n));
  authFields.forEach((n) => out.add(`@request.auth.${n}`));
  for (const c of all) {
    if (c.name.startsWith('_') && c.name !== '_superusers') continue;
    out.add(`@collection.${c.name}.`);
    names(c).forEach((n) => out.add(`@collection.${c.name}.${n}`));
  }
  MACROS.forEach((m) => out.add(m));
  return [...out];
}
