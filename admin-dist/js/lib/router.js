// Hash routing: '#/collections/abc?filter=x' → {path: '/collections/abc', params: {id: 'abc'},
// query: URLSearchParams}. Screens are loaded lazily, so only what a page needs is fetched.

const routes = [];

/**
 * route('/collections/:id', () => import('../screens/records/list.js'), {public: true})
 * A public route renders without a signed-in superuser (sign-in, setup, email-link pages);
 * `bare: true` renders without the app frame (sidebar, top bar).
 */
export function route(pattern, load, options = {}) {
  const keys = [];
  const source = pattern
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        keys.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  routes.push({ pattern, regex: new RegExp(`^${source}/?$`), keys, load, ...options });
}

export function current() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = hash.split('?');
  return { path, query: new URLSearchParams(search) };
}

export function match(path) {
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      const params = {};
      r.keys.forEach((key, i) => {
        params[key] = decodeURIComponent(m[i + 1]);
      });
      return { route: r, params };
    }
  }
  return null;
}

/** navigate('/collections/abc', {filter: 'x'}) */
export function navigate(path, query) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString() : '';
  const target = `#${path}${qs ? `?${qs}` : ''}`;
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}

/** Updates the query of the current route without re-rendering (sort, page, filter). */
export function setQuery(query) {
  const { path } = current();
  const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString();
  history.replaceState(null, '', `#${path}${qs ? `?${qs}` : ''}`);
}

export function link(path) {
  return `#${path}`;
}
