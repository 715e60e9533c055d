// The whole view layer: `h` builds real DOM nodes, `replace` swaps a container's children.
// Screens are functions that return nodes; they re-render the parts that change by calling
// `replace` on a container they kept. No virtual DOM, no diffing, no templates.

/** h('button', {class: 'btn', onClick: fn, 'aria-label': 'Close'}, 'x') */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
      else if (key === 'ref') value(el);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key in el && typeof value !== 'string') el[key] = value; // value, checked, disabled, files…
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends strings, numbers, nodes and (nested) arrays of them; null/false are skipped. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces everything inside `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let nextId = 0;
/** A document-unique id for label/for and aria-describedby pairs. */
export function uid(prefix = 'vb') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** Escapes text for the rare place that needs an HTML string (never for user data in h()). */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** Debounces fn by ms (search boxes, live previews). */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
