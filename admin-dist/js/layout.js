// The app frame: navigation, the signed-in superuser, the theme switch, and the <main> that
// screens render into. Built once; navigation only swaps <main>'s content and the active link.

import { h, replace } from './lib/dom.js';
import { auth } from './lib/api.js';
import { button } from './lib/ui.js';
import { navigate } from './lib/router.js';

const THEME_KEY = 'vb_admin_theme';

/** The main navigation; `match` is the path prefix that marks an entry active. */
export const NAV = [
  { href: '/collections', label: 'Collections', icon: '▦' },
  { href: '/logs', label: 'Logs', icon: '≡' },
  { href: '/settings', label: 'Settings', icon: '⚙' },
  { href: '/cluster', label: 'Cluster', icon: '⊞' },
  { href: '/hooks', label: 'Hooks', icon: 'ƒ' },
  { href: '/sql', label: 'SQL', icon: '⌘' },
  { href: '/jobs', label: 'Jobs', icon: '↻' },
  { href: '/webhooks', label: 'Webhooks', icon: '⇄' },
];

export function applyTheme(theme = localStorage.getItem(THEME_KEY) || 'auto') {
  document.documentElement.dataset.theme = theme;
}

function nextTheme() {
  const order = ['auto', 'light', 'dark'];
  const now = localStorage.getItem(THEME_KEY) || 'auto';
  const next = order[(order.indexOf(now) + 1) % order.length];
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
  return next;
}

let frame = null;

/** Returns the <main> of the frame, building the frame on first use. */
export function mountFrame(root) {
  if (frame && root.contains(frame.el)) return frame;
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const links = NAV.map((n) => h('a', { href: `#${n.href}`, class: 'nav-link', dataset: { href: n.href } }, h('span', { class: 'icon', 'aria-hidden': 'true' }, n.icon), h('span', {}, n.label)));
  const themeBtn = button('', () => {
    themeBtn.lastChild.textContent = `Theme: ${nextTheme()}`;
  }, { kind: 'ghost', attrs: { 'data-action': 'theme' } });
  themeBtn.append(`Theme: ${localStorage.getItem(THEME_KEY) || 'auto'}`);
  const nav = h('nav', { class: 'sidenav', 'aria-label': 'Main' }, h('a', { class: 'brand', href: '#/collections' }, 'vaultbase'), h('div', { class: 'nav-links' }, links));
  const who = h('div', { class: 'who' });
  const top = h(
    'header',
    { class: 'topbar' },
    button('☰', () => document.body.classList.toggle('nav-open'), { kind: 'ghost', ariaLabel: 'Toggle navigation', attrs: { class: 'btn btn-ghost nav-toggle' } }),
    h('div', { class: 'spacer' }),
    themeBtn,
    who,
    button('Sign out', () => {
      auth.clear();
      navigate('/login');
    }, { kind: 'ghost', attrs: { 'data-action': 'sign-out' } }),
  );
  const el = h('div', { class: 'frame' }, h('a', { class: 'skip', href: '#main', onClick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'), nav, h('div', { class: 'content' }, top, main));
  replace(root, el);
  frame = { el, main, links, who };
  return frame;
}

/** Marks the nav entry for `path` active and shows who is signed in. */
export function updateFrame(path) {
  if (!frame) return;
  for (const a of frame.links) {
    const active = path === a.dataset.href || path.startsWith(`${a.dataset.href}/`);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(frame.who, auth.record?.email || '');
  document.body.classList.remove('nav-open');
}

export function dropFrame() {
  frame = null;
}
