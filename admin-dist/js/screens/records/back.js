// Where "back to the list" goes: the records table's last query (page, sort, filter) per
// collection, kept for the session so the form returns the user to the same view.

const KEY = 'vb_admin_records_query';

function all() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || {};
  } catch {
    return {};
  }
}

export function rememberListQuery(collection, queryString) {
  const next = all();
  next[collection] = queryString;
  sessionStorage.setItem(KEY, JSON.stringify(next));
}

/** The list's hash path with its remembered query, e.g. "/collections/posts?page=2". */
export function listPath(collection) {
  const qs = all()[collection];
  return `/collections/${encodeURIComponent(collection)}${qs ? `?${qs}` : ''}`;
}
