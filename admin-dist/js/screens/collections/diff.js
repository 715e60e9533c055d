// What saving an edited collection will do to its table, worked out by comparing the stored
// collection with the draft: renamed collection, added/renamed/dropped fields (matched by field
// id, so a rename is never mistaken for drop + add), type changes, rule, index and view-query
// changes. Shown in the confirmation dialog before the PATCH is sent.

import { h } from '../../lib/dom.js';
import { RULES, AUTH_RULES, ruleSummary } from './rules.js';

export function changes(before, after) {
  const out = [];
  if (before.name !== after.name) out.push({ kind: 'rename-collection', danger: false, text: ['Collection renamed: ', h('code', {}, before.name), ' → ', h('code', {}, after.name)] });
  const oldById = new Map((before.fields || []).map((f) => [f.id, f]));
  const kept = new Set();
  if (after.type !== 'view') {
    for (const f of after.fields || []) {
      const old = f.id && oldById.get(f.id);
      if (!old) {
        out.push({ kind: 'add', text: ['New field: ', h('code', {}, f.name || '(unnamed)'), ` (${f.type})`] });
        continue;
      }
      kept.add(f.id);
      if (old.name !== f.name) out.push({ kind: 'rename', text: ['Field renamed: ', h('code', {}, old.name), ' → ', h('code', {}, f.name)] });
      if (old.type !== f.type) out.push({ kind: 'retype', danger: true, text: ['Field type changed: ', h('code', {}, f.name), ` ${old.type} → ${f.type} (values may not convert)`] });
    }
    for (const f of before.fields || []) {
      if (!kept.has(f.id)) out.push({ kind: 'drop', danger: true, text: ['Field dropped: ', h('code', {}, f.name), ' — its data will be lost'] });
    }
  }
  const rules = after.type === 'auth' ? [...RULES, ...AUTH_RULES] : RULES;
  for (const r of rules) {
    const a = before[r.key] ?? null;
    const b = after[r.key] ?? null;
    if (a !== b) out.push({ kind: 'rule', text: [`${r.label}: `, ruleSummary(a), ' → ', ruleSummary(b)] });
  }
  const oldIdx = new Set(before.indexes || []);
  const newIdx = new Set(after.indexes || []);
  (after.indexes || []).filter((s) => !oldIdx.has(s)).forEach((s) => out.push({ kind: 'index-add', text: ['Index created: ', h('code', {}, s)] }));
  (before.indexes || []).filter((s) => !newIdx.has(s)).forEach((s) => out.push({ kind: 'index-drop', text: ['Index dropped: ', h('code', {}, s)] }));
  if (after.type === 'view' && before.viewQuery !== after.viewQuery) out.push({ kind: 'view', text: ['View query changed; its fields are regenerated from the new query.'] });
  return out;
}

/** The dialog body listing `changes`; destructive ones are marked. */
export function changeList(list) {
  if (!list.length) return h('p', { class: 'muted' }, 'No change to the table, its fields or its rules (other options only).');
  return h(
    'ul',
    { class: 'change-list' },
    list.map((c) => h('li', { class: `change change-${c.kind}${c.danger ? ' change-danger' : ''}`, dataset: { kind: c.kind } }, c.danger ? h('span', { class: 'badge badge-danger' }, '!') : null, ' ', c.text)),
  );
}
