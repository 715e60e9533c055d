// What the records screens need to know about a collection's schema: which fields become columns
// and inputs, how a record is named in a cell or picker (presentable fields), date conversion
// between PocketBase's wire format and <input type="datetime-local">. No DOM, no requests.

import { collections } from '../../lib/api.js';

/**
 * The collection by id or name, from the cached list; a miss refetches once (the collection may
 * have been created elsewhere since the list was cached). null when it does not exist.
 */
export async function findCollection(idOrName) {
  const pick = (all) => all.find((c) => c.id === idOrName) || all.find((c) => c.name === idOrName) || null;
  return pick(await collections()) || pick(await collections({ force: true }));
}

/** Fields that never appear as columns or plain inputs (secrets; the id is handled apart). */
export function isSecret(field) {
  return field.type === 'password' || (field.name === 'tokenKey' && field.system);
}

/** Columns a records table can show, id first. */
export function columnFields(collection) {
  return collection.fields.filter((f) => !isSecret(f));
}

/** Relation fields, for `expand` (the table and form show the related record's name). */
export function relationNames(collection, only) {
  return collection.fields.filter((f) => f.type === 'relation' && (!only || only.includes(f.name))).map((f) => f.name);
}

const FALLBACK_NAME_FIELDS = ['name', 'title', 'username', 'email', 'label', 'slug'];

/** A short human name for a record: its presentable fields, else a name-like field, else its id. */
export function presentLabel(collection, record) {
  if (!record) return '';
  const parts = [];
  for (const f of collection?.fields || []) {
    if (!f.presentable) continue;
    const v = record[f.name];
    if (v == null || v === '' || (Array.isArray(v) && !v.length)) continue;
    parts.push(Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  if (parts.length) return parts.join(' · ');
  for (const name of FALLBACK_NAME_FIELDS) {
    if (typeof record[name] === 'string' && record[name]) return record[name];
  }
  return record.id;
}

/** Text-like fields of a collection a picker can search in. */
export function searchableFields(collection) {
  return collection.fields.filter((f) => !f.hidden && ['text', 'email', 'url', 'editor'].includes(f.type)).map((f) => f.name);
}

/** A safe double-quoted filter literal: quotes and backslashes are dropped rather than escaped. */
export function filterLiteral(text) {
  return `"${String(text).replace(/["\\]/g, '')}"`;
}

const IMAGE_EXT = /\.(png|jpe?g|gif|webp)$/i;
/** Whether the server can make a thumbnail of this stored file. */
export function isImage(filename) {
  return IMAGE_EXT.test(filename || '');
}

/** Single-valued fields hold a string; multi-valued ones (maxSelect > 1) an array. */
export function isMulti(field) {
  return (field.maxSelect || 0) > 1;
}

export function asList(value) {
  if (Array.isArray(value)) return value;
  return value == null || value === '' ? [] : [value];
}

/** "2024-01-02 10:00:00.000Z" → "2024-01-02T10:00:00" (the input shows UTC). */
export function toInputDate(wire) {
  if (!wire) return '';
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2})?/.exec(wire);
  return m ? `${m[1]}T${m[2]}${m[3] || ':00'}` : '';
}

/** "2024-01-02T10:00" or "…T10:00:05" → "2024-01-02 10:00:05.000Z"; "" stays "". */
export function fromInputDate(value) {
  if (!value) return '';
  const [date, time = '00:00'] = value.split('T');
  const [hh = '00', mm = '00', rest = '00'] = time.split(':');
  const [ss = '00', ms = '000'] = rest.split('.');
  return `${date} ${hh}:${mm}:${ss.padStart(2, '0')}.${ms.padEnd(3, '0').slice(0, 3)}Z`;
}
