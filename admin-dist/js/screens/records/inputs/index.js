// The input for each field type. Every input module returns {node, read(out), check?()}:
// `read` adds its value to out.json (and uploads to out.files as [formKey, File]); `check`
// returns {errorKey: message} for mistakes caught before submitting (bad JSON, password mismatch).

import { autodate, bool, text } from './basic.js';
import { date } from './date.js';
import { file } from './file.js';
import { geoPoint } from './geopoint.js';
import { json } from './json.js';
import { password } from './password.js';
import { relation } from './relation.js';
import { select } from './select.js';

const BY_TYPE = { text, editor: text, number: text, email: text, url: text, bool, autodate, date, select, json, geoPoint, password, file, relation };

export function inputFor(field, ctx) {
  return (BY_TYPE[field.type] || text)(field, ctx);
}
