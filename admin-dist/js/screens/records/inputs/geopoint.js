// geoPoint fields: longitude and latitude as two number inputs, sent as {lon, lat}.

import { h, uid } from '../../../lib/dom.js';
import { group, helpOf, labelOf } from './common.js';

export function geoPoint(field, { record, readOnly }) {
  const point = record[field.name] || { lon: 0, lat: 0 };
  const make = (label, value, min, max) => {
    const id = uid('geo');
    const el = h('input', { type: 'number', id, step: 'any', min, max, readOnly });
    el.value = String(value ?? 0);
    return { el, node: h('div', { class: 'field' }, h('label', { for: id }, label), el) };
  };
  const lon = make('Longitude', point.lon, -180, 180);
  const lat = make('Latitude', point.lat, -90, 90);
  const node = group(field.name, labelOf(field), h('div', { class: 'row' }, lon.node, lat.node), { help: helpOf(field) });
  return {
    node,
    read(out) {
      out.json[field.name] = { lon: Number(lon.el.value || 0), lat: Number(lat.el.value || 0) };
    },
  };
}
