// Where `/api/oauth2-redirect` sends the provider's popup back to: the SDK in the opener already
// has the result over realtime; this page only tells the user and closes itself when it can.

import { h } from '../../lib/dom.js';
import { authPage } from './common.js';

export default function screen({ path }) {
  const ok = path.endsWith('-success');
  if (ok && window.opener) setTimeout(() => window.close(), 0);
  return authPage(
    ok ? 'Signed in' : 'Sign-in failed',
    ok
      ? h('p', { class: 'ok', role: 'status' }, 'The sign-in finished. You can close this window.')
      : h('p', { class: 'error', role: 'alert' }, 'The provider did not complete the sign-in. Close this window and try again.'),
  );
}
