// Boot: theme, routes, and the render loop on hash changes. A screen that is not public needs a
// valid superuser token; without one the user lands on sign-in and comes back afterwards.

import './routes.js';
import { h, replace } from './lib/dom.js';
import { auth } from './lib/api.js';
import { current, match, navigate } from './lib/router.js';
import { applyTheme, dropFrame, mountFrame, updateFrame } from './layout.js';

const root = document.getElementById('app');
let cleanup = null;
let renderSeq = 0;

applyTheme();

async function render() {
  const seq = ++renderSeq;
  const { path, query } = current();
  if (path === '/' || path === '') {
    navigate(auth.valid ? '/collections' : '/login');
    return;
  }
  const found = match(path);
  if (!found) {
    mountFrame(root);
    showIn(mountFrame(root).main, h('div', { class: 'page' }, h('h1', {}, 'Not found'), h('p', {}, `Nothing lives at ${path}.`), h('a', { href: '#/collections' }, 'Back to collections')));
    return;
  }
  if (!found.route.public && !auth.valid) {
    navigate('/login', { redirect: path + (query.toString() ? `?${query}` : '') });
    return;
  }
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a screen's cleanup must not stop navigation */
    }
    cleanup = null;
  }
  let target;
  if (found.route.bare) {
    dropFrame();
    target = root;
  } else {
    target = mountFrame(root).main;
    updateFrame(path);
  }
  try {
    const mod = await found.route.load();
    const node = await mod.default({ params: found.params, query, path });
    if (seq !== renderSeq) {
      node?.cleanup?.();
      return;
    }
    cleanup = node?.cleanup || null;
    showIn(target, node);
  } catch (err) {
    if (seq !== renderSeq) return;
    console.error(err);
    showIn(target, h('div', { class: 'page' }, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, err?.message || String(err))));
  }
}

function showIn(target, node) {
  replace(target, node);
  const heading = target.querySelector('h1');
  if (heading && !target.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', render);
auth.onChange(() => {
  if (!auth.valid && !match(current().path)?.route.public) render();
});
render();
